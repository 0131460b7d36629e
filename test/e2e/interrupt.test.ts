/**
 * Interrupted and killed runs (SIGINT, SIGKILL) mid-push and mid-pull: the pointer and both
 * hosts' sessions stay as they were, SIGINT exits promptly with 130, and the re-run finishes.
 * The hang that makes the timing deterministic is injected around the real opencode
 * (test/support/faultyOpencode.ts); the signals and processes are real.
 */
import { execa } from 'execa';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFaultyOpencode } from '../support/faultyOpencode.js';
import type { Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, SESSMIG_BIN, sessmig } from './harness.js';
import { recordFault } from '../support/reliability.js';

let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let remoteDir: string;
let remote: string;
let faultyA: string;
let faultyB: string;
let pidFile: string;
const ids: string[] = [];

let scene: Scene;

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  for (const n of [1, 2]) ids.push((await a.run(repoA, `work ${n}`)).sessionID);
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  remote = pathToFileURL(remoteDir).href;
  faultyA = await writeFaultyOpencode(a.root, a.opencodeBin);
  faultyB = await writeFaultyOpencode(b.root, b.opencodeBin);
  pidFile = path.join(a.root, 'hung.pids');
}, 240_000);

afterAll(async () => {
  // Processes left hanging by the SIGKILL cases (their parent was killed before it could).
  const pids = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

/** Starts sessmig, waits until the injected hang is reached, sends `signal`. */
async function interrupt(host: Host, args: string[], cwd: string, env: Record<string, string>, signal: NodeJS.Signals) {
  const tmp = await mkdtemp(path.join(host.root, 'tmp-'));
  const child = execa(process.execPath, [SESSMIG_BIN, ...args], {
    cwd,
    env: { ...host.env, SESSMIG_OPENCODE: host.opencodeBin, TMPDIR: tmp, FAULT_PID_FILE: pidFile, ...env },
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
  });
  const before = (await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).length;
  const deadline = Date.now() + 120_000;
  while ((await readFile(pidFile, 'utf8').catch(() => '')).split('\n').filter(Boolean).length === before) {
    if (Date.now() > deadline) throw new Error('the injected hang was never reached');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const t0 = Date.now();
  child.kill(signal);
  const result = await child;
  return { result, ms: Date.now() - t0, tmp };
}

async function currentCheckpoint(): Promise<string | null> {
  const run = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
  return run.json.worktrees[0]?.checkpoint ?? null;
}

describe('interrupted push', () => {
  it('SIGINT mid-push: exits 130 promptly, pointer unchanged, temp files gone; the re-run finishes', async () => {
    const first = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA });
    expect(first.exitCode, explain(first)).toBe(0);
    for (const id of ids) await a.run(repoA, 'more', { session: id });
    const { result, ms, tmp } = await interrupt(a, ['push', '--remote', remote, '--opencode', faultyA], repoA, { FAULT_HANG_EXPORT: '1', SESSMIG_EXPORT_VIA: 'cli' }, 'SIGINT');
    expect(result.exitCode, String(result.stderr)).toBe(130);
    expect(String(result.stderr)).toMatch(/interrupted by SIGINT; nothing was committed/);
    expect(ms).toBeLessThan(10_000);
    // sessmig's own temp folder is gone (opencode keeps a folder of its own in TMPDIR).
    expect((await readdir(tmp)).filter((name) => name.startsWith('sessmig-'))).toEqual([]);
    expect(await currentCheckpoint()).toBe(first.json.checkpoint);
    const again = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA });
    expect(again.exitCode, explain(again)).toBe(0);
    expect(again.json.checkpoint).not.toBe(first.json.checkpoint);
    recordFault({ area: 'fault', fault: 'SIGINT mid-push', target: 'file', outcome: 'exit 130 within 10 s, "nothing was committed"; pointer unchanged; temp files gone; re-run finishes' });
  });

  it('SIGKILL mid-push: pointer unchanged; the re-run finishes', async () => {
    const before = await currentCheckpoint();
    await a.run(repoA, 'again', { session: ids[0]! });
    const { result } = await interrupt(a, ['push', '--remote', remote, '--opencode', faultyA], repoA, { FAULT_HANG_EXPORT: '1', SESSMIG_EXPORT_VIA: 'cli' }, 'SIGKILL');
    expect(result.signal).toBe('SIGKILL');
    expect(await currentCheckpoint()).toBe(before);
    const again = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA });
    expect(again.exitCode, explain(again)).toBe(0);
    expect(await currentCheckpoint()).toBe(again.json.checkpoint);
    recordFault({ area: 'fault', fault: 'SIGKILL mid-push', target: 'file', outcome: 'pointer unchanged; re-run finishes' });
  });
});

describe('interrupted pull', () => {
  it('SIGINT during the 2nd import: exits 130, the local sessions are as before; the re-run finishes', async () => {
    const before = await b.sessions();
    const { result } = await interrupt(
      b,
      ['pull', '--remote', remote, '--opencode', faultyB, '--jobs', '1'],
      repoB,
      { FAULT_HANG_IMPORT_NTH: '2', FAULT_COUNTER_FILE: path.join(b.root, 'count-int'), SESSMIG_REPLAY: 'never' /* the hang is on opencode import */ },
      'SIGINT',
    );
    expect(result.exitCode, String(result.stderr)).toBe(130);
    expect(await b.sessions()).toEqual(before);
    const again = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(again.exitCode, explain(again)).toBe(0);
    expect((await b.sessions()).map((s) => s.id).sort()).toEqual([...ids].sort());
    recordFault({ area: 'fault', fault: 'SIGINT mid-pull (during the 2nd import)', target: 'file', outcome: 'exit 130; local sessions as before; re-run finishes' });
  });

  it('SIGKILL mid-pull: the re-run repairs whatever the killed run left', async () => {
    await a.run(repoA, 'newer', { session: ids[1]! });
    expect((await sessmig(a, ['push', '--remote', remote], { cwd: repoA })).exitCode).toBe(0);
    const { result } = await interrupt(
      b,
      ['pull', '--remote', remote, '--opencode', faultyB, '--jobs', '1'],
      repoB,
      { FAULT_HANG_IMPORT_NTH: '1', FAULT_COUNTER_FILE: path.join(b.root, 'count-kill'), SESSMIG_REPLAY: 'never' /* the hang is on opencode import */ },
      'SIGKILL',
    );
    expect(result.signal).toBe('SIGKILL');
    // Killed between the delete of the replaced session and its import: the re-run brings the
    // remote copy in (the local one is in the backup the killed run wrote first).
    const again = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(again.exitCode, explain(again)).toBe(0);
    const view = await b.view(ids[1]!);
    expect(view.messages).toBe((await a.view(ids[1]!)).messages);
    recordFault({ area: 'fault', fault: 'SIGKILL mid-pull (between delete and import of a replaced session)', target: 'file', outcome: 're-run brings the session back whole (backup written first)' });
  });
});
