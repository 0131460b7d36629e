/**
 * Day two on real parts: todos that survive the trip (opencode export leaves them out), and
 * `sessmig undo` after a pull that replaced a session. Both remote kinds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { explain, sessmig } from './harness.js';

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(async () => {
  await llm?.close();
});

const strip = (todos: { content: string; status: string; priority: string; position: number }[]) =>
  todos.map(({ content, status, priority, position }) => ({ content, status, priority, position }));

/** A session as opencode exports it, minus what an import legitimately rewrites. */
function comparable(blob: { info: Record<string, unknown>; messages: unknown[] }) {
  const { time, directory: _d, projectID: _p, path: _path, ...info } = blob.info as { time: Record<string, unknown> } & Record<string, unknown>;
  const { updated: _u, ...times } = time;
  return { info: { ...info, time: times }, messages: blob.messages };
}

// Todos ride in the manifest and undo is local: nothing here depends on the remote kind (the
// remote kinds are covered by roundtrip and the remote contract tests), so one kind keeps the
// suite's time down; SESSMIG_TEST_E2E_TARGETS=all runs the S3 one too.
const dayTwoKinds = process.env.SESSMIG_TEST_E2E_TARGETS === 'all' ? (['file', 's3'] as const) : (['file'] as const);
describe.each(dayTwoKinds)('todos and undo (%s remote)', (kind) => {
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let url: string;
  let env: Record<string, string> = {};
  let s3: S3Target | undefined;
  let dir: string | undefined;
  let id: string;
  beforeAll(async () => {
    a = await createHost('laptop', { llm });
    b = await createHost('box', { llm });
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'app');
    await createRepo(repoA);
    await createRepo(repoB);
    if (kind === 's3') {
      s3 = await startS3rver();
      url = s3.remoteUrl('d2/');
      env = s3.env;
    } else {
      dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
      url = pathToFileURL(dir).href;
    }
    id = (await a.run(repoA, 'plan the work [[todo]]')).sessionID;
    expect((await a.todos(id)).length).toBe(3);
  }, 240_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    await s3?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a session with a todo list arrives with the same todos, and a re-pull does not duplicate them', async () => {
    const pushed = await sessmig(a, ['push', '--remote', url, '--json'], { cwd: repoA, env });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const pulled = await sessmig(b, ['pull', '--remote', url, '--json'], { cwd: repoB, env });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(strip(await b.todos(id))).toEqual(strip(await a.todos(id)));
    const again = await sessmig(b, ['pull', '--remote', url, '--json'], { cwd: repoB, env });
    expect(again.exitCode, explain(again)).toBe(0);
    expect(await b.todos(id)).toHaveLength(3);
    expect(strip(await b.todos(id))).toEqual(strip(await a.todos(id)));
  });

  it('undo brings back the local session a pull replaced, exactly as it was', async () => {
    const before = comparable(await b.exportSession(id));
    const beforeTodos = strip(await b.todos(id));
    await a.run(repoA, 'more on the laptop MARK-NEWER', { session: id });
    expect((await sessmig(a, ['push', '--remote', url], { cwd: repoA, env })).exitCode).toBe(0);
    const pulled = await sessmig(b, ['pull', '--remote', url, '--json'], { cwd: repoB, env });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.sessions[0].action).toBe('replace');
    expect(JSON.stringify(await b.exportSession(id))).toContain('MARK-NEWER');

    const list = await sessmig(b, ['undo', '--list', '--json'], { cwd: repoB, env });
    expect(list.exitCode, explain(list)).toBe(0);
    expect(list.json.pulls[0].restores.map((r: { id: string }) => r.id)).toEqual([id]);

    const undone = await sessmig(b, ['undo', '--remote', url, '--json'], { cwd: repoB, env });
    expect(undone.exitCode, explain(undone)).toBe(0);
    expect(undone.json.restored).toEqual([{ id, messages: before.messages.length }]);
    expect(comparable(await b.exportSession(id))).toEqual(before);
    expect(strip(await b.todos(id))).toEqual(beforeTodos);
    expect((await b.view(id)).directory).toBe(repoB);

    // The earliest pull (new session) can be undone as well: the session is then gone.
    const first = await sessmig(b, ['undo', '--remote', url, '--json'], { cwd: repoB, env });
    expect(first.exitCode, explain(first)).toBe(0);
    expect(first.json.removed).toEqual([id]);
    expect((await b.sessions()).map((s) => s.id)).not.toContain(id);
    const none = await sessmig(b, ['undo', '--remote', url], { cwd: repoB, env });
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/no pull on this host can be undone/);
  });
});
