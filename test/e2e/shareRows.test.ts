/**
 * Per-session state that a delete + import would destroy (#23 item 7), on real opencode 1.18.33:
 * a session's share (opencode's `session_share` row: share id, secret, url — without it the
 * session can no longer be unshared) survives the three paths that delete a local session and
 * import it again: a pull that replaces it, `sessmig undo`, and a pull that fails and rolls back.
 * The session carries an attached image, whose file part opencode's import strips of
 * `synthetic: true` (#23 item 9): each path puts it back.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { writeFaultyOpencode } from '../support/faultyOpencode.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { explain, sessmig } from './harness.js';

const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

describe('a session share survives replace, undo and rollback', () => {
  let llm: FakeLlm;
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let dir: string;
  let url: string;
  let id: string;
  const share = { id: 'shr_MARKSHARE', secret: '3f1c9d2e-secret-MARK', url: 'https://opncd.ai/s/MARKSHARE', time_created: 1795990000000, time_updated: 1795990000001 };
  const shareOnB = async () => b.db(`SELECT session_id, id, secret, url, time_created, time_updated FROM session_share WHERE session_id = '${id}'`);
  const synthetic = async () => {
    const blob = await b.exportSession(id);
    return blob.messages[0].parts.find((part: { type: string }) => part.type === 'file')?.synthetic;
  };
  const continueAndPush = async (mark: string) => {
    await a.run(repoA, `more ${mark}`, { session: id });
    const pushed = await sessmig(a, ['push', '--remote', url], { cwd: repoA });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
  };

  beforeAll(async () => {
    llm = await startFakeLlm();
    a = await createHost('laptop', { llm });
    b = await createHost('box', { llm });
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'app');
    await Promise.all([createRepo(repoA), createRepo(repoB)]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    url = pathToFileURL(dir).href;
    await writeFile(path.join(repoA, 'pic.png'), PNG);
    const run = await a.opencode(['run', '--format', 'json', 'describe the picture', '-f', 'pic.png'], { cwd: repoA, timeoutMs: 60_000 });
    id = JSON.parse(run.stdout.split('\n').find((line) => line.includes('"sessionID"'))!).sessionID;
    expect((await sessmig(a, ['push', '--remote', url], { cwd: repoA })).exitCode).toBe(0);
    const pulled = await sessmig(b, ['pull', '--remote', url], { cwd: repoB });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    // What `/share` leaves in opencode's database (the share service itself is not reachable here).
    await b.opencode(['db', `INSERT INTO session_share (session_id, id, secret, url, time_created, time_updated) VALUES ('${id}', '${share.id}', '${share.secret}', '${share.url}', ${share.time_created}, ${share.time_updated})`], { cwd: repoB });
    expect(await shareOnB()).toEqual([{ session_id: id, ...share }]);
  }, 300_000);
  afterAll(async () => {
    for (const host of [a, b]) await host?.cleanup();
    await llm?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a pull that replaces the session keeps its share', async () => {
    await continueAndPush('MARK-REPLACE');
    const pulled = await sessmig(b, ['pull', '--remote', url, '--json'], { cwd: repoB });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.sessions[0].action).toBe('replace');
    expect(JSON.stringify(await b.exportSession(id))).toContain('MARK-REPLACE');
    expect(await shareOnB()).toEqual([{ session_id: id, ...share }]);
    expect(await synthetic()).toBe(true);
    expect(pulled.stdout + pulled.stderr).not.toContain(share.secret);
  });

  it('undo of that pull keeps the share (and puts back what the import dropped)', async () => {
    const undone = await sessmig(b, ['undo', '--remote', url, '--json'], { cwd: repoB });
    expect(undone.exitCode, explain(undone)).toBe(0);
    expect(JSON.stringify(await b.exportSession(id))).not.toContain('MARK-REPLACE');
    expect(await shareOnB()).toEqual([{ session_id: id, ...share }]);
    expect(await synthetic()).toBe(true);
    expect(undone.stderr).toMatch(/dropped 1 field\(s\).*synthetic.*put them back/);
  });

  it('a pull that fails after deleting the session rolls back with the share', async () => {
    await continueAndPush('MARK-ROLLBACK');
    const faulty = await writeFaultyOpencode(b.root, b.opencodeBin);
    const run = await sessmig(b, ['pull', '--remote', url, '--opencode', faulty, '--force'], {
      cwd: repoB,
      env: { FAULT_FAIL_IMPORT_NTH: '1', FAULT_COUNTER_FILE: path.join(b.root, 'import-count'), SESSMIG_REPLAY: 'never' },
    });
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.stderr).toMatch(/restoring the local sessions/);
    expect(JSON.stringify(await b.exportSession(id))).not.toContain('MARK-ROLLBACK');
    expect(await shareOnB()).toEqual([{ session_id: id, ...share }]);
    expect(await synthetic()).toBe(true);
  });
});
