/**
 * Bad input and trouble (issue: the core's list): every case gives a clear one-line error with a
 * hint and the documented exit code, never a stack trace, and leaves sessions and the pointer
 * as they were. Real opencode and real remotes; opencode faults are injected around the real
 * binary by test/support/faultyOpencode.ts (say so where used).
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFaultyOpencode } from '../support/faultyOpencode.js';
import { createRepo, type Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';
import { recordFault } from '../support/reliability.js';

let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let remoteDir: string;
let remote: string;
let faulty: string;
const ids = { plain: '', task: '', child: '', busy: '', victim: '' };

function expectCleanError(run: SessmigRun, code: number, pattern: RegExp): void {
  expect(run.exitCode, explain(run)).toBe(code);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).toMatch(/hint: /);
  expect(run.stderr).not.toMatch(/^\s+at .+\(.*:\d+:\d+\)/m); // no stack trace
}

async function blobFiles(): Promise<string[]> {
  const root = path.join(remoteDir, 'sessmig', 'v1', 'worktrees');
  const [wt] = await readdir(root);
  const dir = path.join(root, wt!, 'blobs');
  return (await readdir(dir)).map((name) => path.join(dir, name));
}

let scene: Scene;

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  ids.plain = (await a.run(repoA, 'plain MARK-PLAIN')).sessionID;
  ids.task = (await a.run(repoA, 'delegate [[task child work]]')).sessionID;
  ids.child = (await a.children(ids.task))[0]!;
  ids.victim = (await a.run(repoA, 'will be deleted mid-push')).sessionID;
  // A mid-turn session: a real session whose last assistant message lost its time.completed,
  // put back through opencode's own import (how opencode stores a turn still running).
  ids.busy = (await a.run(repoA, 'busy one')).sessionID;
  const blob = await a.exportSession(ids.busy);
  const last = [...blob.messages].reverse().find((m: { info: { role: string } }) => m.info.role === 'assistant');
  delete last.info.time.completed;
  const file = path.join(a.root, 'busy.json');
  await writeFile(file, JSON.stringify(blob));
  await a.opencode(['session', 'delete', ids.busy], { cwd: repoA });
  await a.opencode(['import', file], { cwd: repoA });
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  remote = pathToFileURL(remoteDir).href;
  faulty = await writeFaultyOpencode(a.root, a.opencodeBin);
}, 300_000);

afterAll(async () => {
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

describe('push', () => {
  it('refuses to run outside a git worktree (exit 2)', async () => {
    const run = await sessmig(a, ['push', '--remote', remote], { cwd: a.workDir });
    expectCleanError(run, 2, /not inside a git worktree/);
    recordFault({ area: 'bad input', fault: 'push outside a git worktree', target: 'file', outcome: 'exit 2, "not inside a git worktree"' });
  });

  it('says when opencode is missing (exit 2)', async () => {
    const run = await sessmig(a, ['push', '--remote', remote, '--opencode', '/nonexistent/opencode'], { cwd: repoA });
    expectCleanError(run, 2, /opencode not found/);
    recordFault({ area: 'fault', fault: 'opencode binary missing', target: 'file', outcome: 'exit 2, "opencode not found"' });
  });

  it('refuses a malformed --session id before running anything (exit 2)', async () => {
    const run = await sessmig(a, ['push', '--remote', remote, '--session', 'ses_$(touch /tmp/pwned)'], { cwd: repoA });
    expectCleanError(run, 2, /not an opencode session id/);
    recordFault({ area: 'bad input', fault: 'hostile --session id (shell metacharacters)', target: 'file', outcome: 'exit 2 before anything runs, "not an opencode session id"' });
  });

  it('is a clean no-op with no sessions (exit 0)', async () => {
    const empty = path.join(a.workDir, 'empty');
    await createRepo(empty);
    const run = await sessmig(a, ['push', '--remote', remote, '--worktree', 'empty-one', '--json'], { cwd: empty });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.status).toBe('nothing');
  });

  it('flags a mid-turn session as busy, with a warning', async () => {
    const run = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.stderr).toMatch(new RegExp(`warning: session ${ids.busy}.*mid-turn`));
    const busy = run.json.sessions.find((s: { id: string }) => s.id === ids.busy);
    expect(busy.busy).toBe(true);
    expect(run.json.sessions.filter((s: { busy: boolean }) => s.busy)).toHaveLength(1);
  });

  it('a failing opencode export fails the push and leaves the pointer where it was (exit 1)', async () => {
    // Fault injected around the real opencode (test/support/faultyOpencode.ts).
    const before = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    await a.run(repoA, 'more work', { session: ids.plain }); // so the push has something new to export
    // The fault hooks `opencode export`: force the one-process-per-session export path.
    const run = await sessmig(a, ['push', '--remote', remote, '--opencode', faulty], { cwd: repoA, env: { FAULT_FAIL_EXPORT: ids.plain, SESSMIG_EXPORT_VIA: 'cli' } });
    expectCleanError(run, 1, new RegExp(`export of ${ids.plain} failed.*injected export failure`));
    const after = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    const current = (r: SessmigRun) => r.json.worktrees.find((w: { checkpoint: string | null }) => w.checkpoint)?.checkpoint;
    expect(current(after)).toBe(current(before));
    recordFault({ area: 'fault', fault: 'opencode export exits non-zero (injected)', target: 'file', outcome: 'exit 1; pointer unchanged' });
  });

  it('a hung opencode export is killed after --opencode-timeout; the pointer stays (exit 1)', async () => {
    // The hang is injected around the real opencode (test/support/faultyOpencode.ts).
    const before = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    await a.run(repoA, 'changed again', { session: ids.plain });
    const t0 = Date.now();
    const run = await sessmig(a, ['push', '--remote', remote, '--opencode', faulty, '--opencode-timeout', '3'], {
      cwd: repoA,
      env: { FAULT_HANG_EXPORT: '1', SESSMIG_EXPORT_VIA: 'cli' },
    });
    expectCleanError(run, 1, /did not finish within 3 s; sessmig killed it/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    const after = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    expect(after.json.worktrees).toEqual(before.json.worktrees);
    recordFault({ area: 'fault', fault: 'opencode export hangs (injected)', target: 'file', outcome: 'killed after --opencode-timeout; exit 1; pointer unchanged' });
  });

  it('skips a session deleted between listing and export, records it, exits 3', async () => {
    // The deletion is real (opencode session delete), timed by test/support/faultyOpencode.ts.
    await a.run(repoA, 'changed since the last push', { session: ids.victim }); // else the push reuses its blob
    // The fault hooks `opencode export`: force the one-process-per-session export path. One export
    // at a time: with two, the other export's start-up write waited on the deletion's write lock
    // past opencode's ~5 s busy timeout on a loaded machine and failed ("database is locked", seen
    // once in five full runs) — lock contention is not what this test is about.
    const run = await sessmig(a, ['push', '--remote', remote, '--opencode', faulty, '--jobs', '1', '--json'], {
      cwd: repoA,
      env: { FAULT_DELETE_BEFORE_EXPORT: ids.victim, SESSMIG_EXPORT_VIA: 'cli' },
    });
    expect(run.exitCode, explain(run)).toBe(3);
    expect(run.json.skipped).toEqual([{ id: ids.victim, reason: expect.stringMatching(/deleted/) }]);
    expect(run.stderr).toContain(ids.victim);
    const manifestFile = (await readdir(path.dirname((await blobFiles())[0]!).replace(/blobs$/, 'checkpoints'))).sort().pop()!;
    const manifest = JSON.parse(await readFile(path.join(path.dirname((await blobFiles())[0]!).replace(/blobs$/, 'checkpoints'), manifestFile), 'utf8'));
    expect(manifest.skipped.map((s: { id: string }) => s.id)).toEqual([ids.victim]);
    expect(manifest.sessions.map((s: { id: string }) => s.id)).not.toContain(ids.victim);
    recordFault({ area: 'fault', fault: 'session deleted between listing and export', target: 'file', outcome: 'skipped and recorded in the manifest; exit 3' });
  });
});

describe('pull', () => {
  it('refuses a bad --checkpoint (exit 2)', async () => {
    const run = await sessmig(b, ['pull', '--remote', remote, '--checkpoint', '../../etc/passwd'], { cwd: repoB });
    expectCleanError(run, 2, /checkpoint id .* is not valid/);
    recordFault({ area: 'bad input', fault: '--checkpoint ../../etc/passwd', target: 'file', outcome: 'exit 2, "checkpoint id … is not valid"' });
  });

  it('an import that fails half-way leaves the local sessions as they were (exit 1)', async () => {
    // The 2nd import really runs, then exits non-zero (test/support/faultyOpencode.ts).
    const faultyB = await writeFaultyOpencode(b.root, b.opencodeBin);
    const before = await b.sessions();
    const run = await sessmig(b, ['pull', '--remote', remote, '--opencode', faultyB, '--jobs', '1'], {
      cwd: repoB,
      env: { FAULT_FAIL_IMPORT_NTH: '2', FAULT_COUNTER_FILE: path.join(b.root, 'import-count'), SESSMIG_REPLAY: 'never' /* the fault is on opencode import */ },
    });
    expectCleanError(run, 1, /import of ses_\w+ did not succeed|import of ses_\w+ failed/);
    expect(run.stderr).toMatch(/restoring the local sessions/);
    expect(await b.sessions()).toEqual(before);
    recordFault({ area: 'fault', fault: 'opencode import fails half-way (partial import, injected)', target: 'file', outcome: 'exit 1; rolled back, local sessions as before' });
  });

  it('refuses a blob whose content does not match its sha256 and imports nothing of it (exit 3)', async () => {
    const manifestDir = path.dirname((await blobFiles())[0]!).replace(/blobs$/, 'checkpoints');
    const manifest = JSON.parse(await readFile(path.join(manifestDir, (await readdir(manifestDir)).sort().pop()!), 'utf8'));
    const target = manifest.sessions.find((s: { id: string }) => s.id === ids.plain);
    const file = (await blobFiles()).find((f) => f.includes(target.sha256))!;
    const original = await readFile(file);
    const text = gunzipSync(original).toString('utf8').replace('MARK-PLAIN', 'MARK-EVIL!');
    await writeFile(file, gzipSync(Buffer.from(text)));
    try {
      const run = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
      expect(run.exitCode, explain(run)).toBe(3);
      const plain = run.json.sessions.find((s: { id: string }) => s.id === ids.plain);
      expect(plain.action).toBe('refused');
      expect(run.stderr).toMatch(/does not match its checksum|bytes in the remote, expected/);
      const local = (await b.sessions()).map((s) => s.id);
      expect(local).not.toContain(ids.plain);
      expect(local).toContain(ids.task);
      expect(local).toContain(ids.child);
    } finally {
      await writeFile(file, original);
    }
    recordFault({ area: 'fault', fault: 'blob content altered in the remote (sha256 mismatch)', target: 'file', outcome: 'session refused (exit 3), nothing of it imported; the others are' });
  });

  it('refuses a malformed manifest (exit 1) and a future format (upgrade message)', async () => {
    const manifestDir = path.dirname((await blobFiles())[0]!).replace(/blobs$/, 'checkpoints');
    const name = (await readdir(manifestDir)).sort().pop()!;
    const file = path.join(manifestDir, name);
    const original = await readFile(file);
    try {
      await writeFile(file, original.subarray(0, 100));
      let run = await sessmig(b, ['pull', '--remote', remote], { cwd: repoB });
      expectCleanError(run, 1, /is not valid JSON/);
      await writeFile(file, JSON.stringify({ ...JSON.parse(original.toString()), formatVersion: 99 }));
      run = await sessmig(b, ['pull', '--remote', remote], { cwd: repoB });
      expectCleanError(run, 1, /format version 99.*upgrade sessmig/);
    } finally {
      await writeFile(file, original);
    }
    recordFault({ area: 'bad input', fault: 'manifest truncated / of a future format version', target: 'file', outcome: 'exit 1, "is not valid JSON" / "upgrade sessmig"' });
  });
});

describe('S3 trouble', () => {
  let s3: S3Target;
  beforeAll(async () => {
    s3 = await startS3rver();
  }, 60_000);
  afterAll(async () => {
    await s3?.dispose();
  });

  it('an unreachable endpoint is a clear error (exit 1)', async () => {
    const run = await sessmig(a, ['ls', '--remote', 's3://some-bucket/x'], { cwd: repoA, env: { ...s3.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' } });
    expectCleanError(run, 1, /cannot list .*ECONNREFUSED|cannot reach/);
    recordFault({ area: 'fault', fault: 'S3 endpoint unreachable', target: 's3rver', outcome: 'exit 1, "cannot reach"' });
  });

  it('a missing bucket says so (exit 2)', async () => {
    const run = await sessmig(a, ['ls', '--remote', 's3://no-such-bucket/x'], { cwd: repoA, env: s3.env });
    expectCleanError(run, 2, /bucket no-such-bucket does not exist/);
    recordFault({ area: 'bad input', fault: 'S3 bucket does not exist', target: 's3rver', outcome: 'exit 2, "bucket … does not exist"' });
  });

  it('bad credentials are access denied, and the secret is never printed (exit 2)', async () => {
    const secret = 'TOPSECRETvalue1234567890';
    const run = await sessmig(a, ['ls', '--remote', s3.remoteUrl('x/'), '--json'], { cwd: repoA, env: { ...s3.env, AWS_ACCESS_KEY_ID: 'WRONGKEY', AWS_SECRET_ACCESS_KEY: secret } });
    expectCleanError(run, 2, /access denied/);
    expect(run.stdout + run.stderr).not.toContain(secret);
    recordFault({ area: 'security', fault: 'wrong S3 credentials', target: 's3rver', outcome: 'exit 2, "access denied"; the secret is never printed' });
  });
});
