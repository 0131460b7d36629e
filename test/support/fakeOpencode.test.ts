/**
 * The fake opencode keeps the shape the real one has, where the core's tests rely on it: an
 * export of what it imported is byte for byte the real 1.18.33 export it came from
 * (test/fixtures/blobs, made by `opencode export`); a delete takes the children along; a failed
 * import leaves what a real one leaves (the row and what came before the bad message).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FakeOpencode } from './fakeOpencode.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'blobs');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-fake-self-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function exported(fake: FakeOpencode, id: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of await fake.exportSession(id)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

it.each(['child.json', 'task.json', 'tools.json'])('import then export of the real export %s gives it back byte for byte', async (name) => {
  const text = await readFile(path.join(FIXTURES, name), 'utf8');
  const { info } = JSON.parse(text) as { info: { id: string; directory: string; projectID: string } };
  const fake = new FakeOpencode({ projectId: info.projectID });
  await fake.importFile(path.join(FIXTURES, name), info.directory, info.id);
  expect(await exported(fake, info.id)).toBe(text);
  expect((await fake.listSessions())[0]).toMatchObject({ id: info.id, directory: info.directory, project_id: info.projectID });
});

it('a delete takes the children along; an unknown session is gone', async () => {
  const fake = new FakeOpencode();
  const parent = await fake.addSession({ directory: dir });
  const child = await fake.addSession({ directory: dir, parentID: parent });
  const grandchild = await fake.addSession({ directory: dir, parentID: child });
  const other = await fake.addSession({ directory: dir });
  await fake.deleteSession(parent, dir);
  expect([...fake.sessions.keys()]).toEqual([other]);
  await expect(fake.exportSession(grandchild)).rejects.toMatchObject({ code: 'session-gone' });
});

it('a failed import keeps the session row and its first message, as opencode 1.18.33 does', async () => {
  const fake = new FakeOpencode();
  const id = await fake.addSession({ directory: dir, messages: 4 });
  const file = path.join(dir, 'blob.json');
  await writeFile(file, await exported(fake, id));
  await fake.deleteSession(id, dir);
  fake.failNext('import', id);
  await expect(fake.importFile(file, dir, id)).rejects.toMatchObject({ code: 'import-rejected' });
  expect(fake.messageCount(id)).toBe(1);
  await fake.deleteSession(id, dir);
  await fake.importFile(file, dir, id);
  expect(fake.messageCount(id)).toBe(4);
});
