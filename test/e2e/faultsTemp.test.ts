/**
 * A host's temp space: temp files are private (a 0700 folder, 0600 files) and removed after
 * success and after failure; an unwritable or full TMPDIR on the pulling host is a clear error that
 * leaves the local sessions as they were, and a full one on the pushing host (where opencode's
 * export output is cut short, exit 0) a clear error that leaves the pointer where it was. Real
 * opencode on two hosts, a local-folder remote.
 *
 * The temp folder is watched two ways: a wrapper around the real opencode lists it each time
 * sessmig starts opencode (exact moments: every blob is on disk before the first import), and
 * the test polls it while sessmig runs. The test process runs with umask 0, so a file created
 * without an explicit mode would show up as world-readable.
 * The read-only and the full TMPDIR are small tmpfs mounts when running as root (CI); without
 * root the read-only one is a chmod 0555 folder and the full one is skipped, saying why.
 */
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { recordFault } from '../support/reliability.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig, type SessmigRun } from './harness.js';

let scene: Scene;
let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let remote: string;
let remoteDir: string;
let wrapperA: string;
let wrapperB: string;
const ids = { big: '', small: '' };
const mounts: string[] = [];
let umask: number;

/** The real opencode, but first the sessmig temp folders under $SNAP_ROOT are listed into $SNAP_LOG. */
async function writeWatchingOpencode(host: Host): Promise<string> {
  const file = path.join(host.root, 'opencode-watching');
  await writeFile(
    file,
    `#!/bin/bash
if [ -n "$SNAP_ROOT" ]; then
  find "$SNAP_ROOT" -mindepth 1 -path "$SNAP_ROOT/sessmig-*" -printf '%m %y %P\\n' >> "$SNAP_LOG" 2>/dev/null
fi
if [ "$1" = export ] && [ -n "$FAIL_EXPORT" ]; then echo "injected export failure" >&2; exit 1; fi
if [ "$1" = import ] && [ -n "$FAIL_IMPORT" ] && [[ "$2" == "$SNAP_ROOT"/* ]]; then echo "injected import failure" >&2; exit 1; fi
exec ${JSON.stringify(host.opencodeBin)} "$@"
`,
  );
  await chmod(file, 0o755);
  return file;
}

interface Seen {
  mode: number;
  dir: boolean;
  /** relative to TMPDIR */
  name: string;
}

/** Lists sessmig's temp folders under `tmp` (not opencode's own), with modes. */
async function listTemp(tmp: string): Promise<Seen[]> {
  const out: Seen[] = [];
  const walk = async (dir: string) => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const full = path.join(dir, name);
      const stat = await lstat(full).catch(() => undefined);
      if (!stat) continue;
      out.push({ mode: stat.mode & 0o777, dir: stat.isDirectory(), name: path.relative(tmp, full) });
      if (stat.isDirectory()) await walk(full);
    }
  };
  for (const name of await readdir(tmp)) if (name.startsWith('sessmig-')) {
    const stat = await lstat(path.join(tmp, name)).catch(() => undefined);
    if (!stat) continue;
    out.push({ mode: stat.mode & 0o777, dir: stat.isDirectory(), name });
    if (stat.isDirectory()) await walk(path.join(tmp, name));
  }
  return out;
}

/** Runs sessmig with TMPDIR = a fresh folder, watching it; returns the run and everything seen in it. */
async function watched(host: Host, args: string[], cwd: string, env: Record<string, string> = {}) {
  const tmp = await mkdtemp(path.join(host.root, 'tmp-'));
  const log = path.join(host.root, `snap-${path.basename(tmp)}.log`);
  const seen = new Map<string, Seen>();
  let running = true;
  const poll = (async () => {
    while (running) {
      for (const entry of await listTemp(tmp)) seen.set(`${entry.name} ${entry.mode}`, entry);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  const run = await sessmig(host, [...args, '--remote', remote, '--json'], { cwd, env: { TMPDIR: tmp, SNAP_ROOT: tmp, SNAP_LOG: log, ...env } });
  running = false;
  await poll;
  for (const line of (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean)) {
    const [mode, type, name] = line.split(' ') as [string, string, string];
    seen.set(`${name} ${Number.parseInt(mode, 8)}`, { mode: Number.parseInt(mode, 8), dir: type === 'd', name });
  }
  const left = await listTemp(tmp);
  return { run, seen: [...seen.values()], left };
}

function expectPrivate(seen: Seen[], expected: RegExp[]): void {
  const wrong = seen.filter((entry) => entry.mode !== (entry.dir ? 0o700 : 0o600));
  expect(wrong.map((entry) => `${entry.name} ${entry.mode.toString(8)}`)).toEqual([]);
  for (const pattern of expected) expect(seen.map((entry) => entry.name), `saw no ${pattern}`).toContainEqual(expect.stringMatching(pattern));
}

/** Every session of a host with what a change would touch: one query through opencode. */
function snapshot(host: Host) {
  return host.db<{ id: string; time_updated: number; messages: number; parts: number }>(
    'SELECT s.id, s.time_updated, (SELECT count(*) FROM message m WHERE m.session_id = s.id) AS messages, ' +
      '(SELECT count(*) FROM part p WHERE p.session_id = s.id) AS parts FROM session s ORDER BY s.id',
  );
}

function expectCleanError(run: SessmigRun, code: number, pattern: RegExp): void {
  expect(run.exitCode, explain(run)).toBe(code);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).toMatch(/hint: /);
  expect(run.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m); // no stack trace
}

/** A small tmpfs at `dir` (root only); the reason when it cannot be made. */
function mountTmpfs(dir: string, options: string): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs (CI runs as root)';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
    mounts.push(dir);
    return undefined;
  } catch (error) {
    return `mount -t tmpfs failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
}

beforeAll(async () => {
  umask = process.umask(0);
  scene = await startScene(['laptop', 'box']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  ids.big = (await a.run(repoA, 'a long answer [[big 200]]')).sessionID;
  ids.small = (await a.run(repoA, 'a short one')).sessionID;
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  remote = pathToFileURL(remoteDir).href;
  wrapperA = await writeWatchingOpencode(a);
  wrapperB = await writeWatchingOpencode(b);
}, 240_000);

afterAll(async () => {
  for (const dir of mounts.reverse()) {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    }
  }
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
  process.umask(umask);
});

describe('temp files', () => {
  it('push: a 0700 folder of 0600 files, gone after success', async () => {
    // One `opencode export` per session (--jobs 1): the wrapper sees the first blob on disk.
    const { run, seen, left } = await watched(a, ['push', '--jobs', '1', '--opencode', wrapperA], repoA, { SESSMIG_EXPORT_VIA: 'cli' });
    expect(run.exitCode, explain(run)).toBe(0);
    expectPrivate(seen, [/^sessmig-[^/]+$/, /\/export-\d+\.json\.gz$/, /\/opencode-.+\.out$/]);
    expect(left).toEqual([]);
    recordFault({ area: 'security', fault: 'temp files during a push (exports, opencode output)', target: 'file', outcome: 'folder 0700, files 0600 (umask 0); none left after success' });
  });

  it('pull: a 0700 folder of 0600 files, gone after success', async () => {
    // One `opencode import` per session: every downloaded blob is on disk when the first import starts.
    const { run, seen, left } = await watched(b, ['pull', '--jobs', '1', '--opencode', wrapperB], repoB, { SESSMIG_REPLAY: 'never' });
    expect(run.exitCode, explain(run)).toBe(0);
    expectPrivate(seen, [/^sessmig-[^/]+$/, /\/pull-0\.json$/, /\/pull-1\.json$/]);
    expect(left).toEqual([]);
    recordFault({ area: 'security', fault: 'temp files during a pull (downloaded blobs, opencode output)', target: 'file', outcome: 'folder 0700, files 0600 (umask 0); none left after success' });
  });

  it('are removed after a failed push and a failed pull (the pull leaves the sessions as they were); opencode serve output is private too', async () => {
    await a.run(repoA, 'changed MARK-CHANGED', { session: ids.big });
    const push = await watched(a, ['push', '--jobs', '1', '--opencode', wrapperA], repoA, { SESSMIG_EXPORT_VIA: 'cli', FAIL_EXPORT: '1' });
    expectCleanError(push.run, 1, /injected export failure/);
    expectPrivate(push.seen, [/^sessmig-[^/]+$/]);
    expect(push.left).toEqual([]);
    // The push that works goes through one opencode serve: its output files are temp files too.
    const served = await watched(a, ['push', '--opencode', wrapperA], repoA, { SESSMIG_EXPORT_VIA: 'server' });
    expect(served.run.exitCode, explain(served.run)).toBe(0);
    expectPrivate(served.seen, [/^sessmig-[^/]+$/, /\/opencode-serve-.+\.out$/]);
    expect(served.left).toEqual([]);

    const before = await snapshot(b);
    const pull = await watched(b, ['pull', '--jobs', '1', '--opencode', wrapperB], repoB, { SESSMIG_REPLAY: 'never', FAIL_IMPORT: '1' });
    expectCleanError(pull.run, 1, /import of ses_\w+ (did not succeed|failed)/);
    expectPrivate(pull.seen, [/^sessmig-[^/]+$/, /\/pull-0\.json$/]);
    expect(pull.left).toEqual([]);
    expect(await snapshot(b)).toEqual(before);
    recordFault({ area: 'security', fault: 'temp files after a failed push (export fails) and a failed pull (import fails); opencode serve output files', target: 'file', outcome: 'exit 1; files 0600, none left; local sessions unchanged' });
  });
});

describe('a host cannot write its temp files', () => {
  it('a read-only TMPDIR: exit 2, says so, nothing imported', async (ctx) => {
    const dir = path.join(b.root, 'tmp-readonly');
    await mkdir(dir);
    const why = mountTmpfs(dir, 'ro,size=1m');
    if (why) {
      if (process.getuid?.() === 0) return ctx.skip(why); // root ignores permission bits: a chmod proves nothing
      await chmod(dir, 0o555);
    }
    const before = await snapshot(b);
    const run = await sessmig(b, ['pull', '--remote', remote], { cwd: repoB, env: { TMPDIR: dir } });
    expectCleanError(run, 2, /cannot create a temp folder in .*tmp-readonly/);
    expect(run.stderr).toMatch(/TMPDIR/);
    expect(await snapshot(b)).toEqual(before);
    recordFault({ area: 'fault', fault: 'TMPDIR read-only on the pulling host', target: 'file', outcome: 'exit 2, "cannot create a temp folder"; nothing imported' });
  });

  it('a full TMPDIR (64 KiB tmpfs, a 200 KiB session): exit 2, says so, nothing half-imported; the re-run finishes', async (ctx) => {
    const dir = path.join(b.root, 'tmp-full');
    await mkdir(dir);
    const why = mountTmpfs(dir, 'size=64k,mode=1777');
    if (why) return ctx.skip(why);
    const before = await snapshot(b);
    const run = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB, env: { TMPDIR: dir } });
    expectCleanError(run, 2, /no space left on device|ENOSPC/i);
    expect(run.stderr).toMatch(/nothing was imported/);
    expect(await snapshot(b)).toEqual(before);
    expect((await readdir(dir)).filter((name) => name.startsWith('sessmig-'))).toEqual([]);

    const again = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(again.exitCode, explain(again)).toBe(0);
    expect(again.json.sessions.find((s: { id: string }) => s.id === ids.big).action).toBe('replace');
    expect(await b.messageCounts(ids.big)).toEqual(await a.messageCounts(ids.big));
    recordFault({ area: 'fault', fault: 'TMPDIR full on the pulling host (ENOSPC while downloading)', target: 'file', outcome: 'exit 2, "no space left on device", nothing imported; re-run with space pulls all' });
  });

  it('a full TMPDIR on the pushing host (opencode export cut short): exit 2, says so, pointer unchanged', async (ctx) => {
    const dir = path.join(a.root, 'tmp-full');
    await mkdir(dir);
    const why = mountTmpfs(dir, 'size=64k,mode=1777');
    if (why) return ctx.skip(why);
    const before = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    await a.run(repoA, 'changed again', { session: ids.big });
    // One `opencode export` process: opencode exits 0 with its output cut at the full disk.
    const run = await sessmig(a, ['push', '--remote', remote], { cwd: repoA, env: { TMPDIR: dir, SESSMIG_EXPORT_VIA: 'cli' } });
    expectCleanError(run, 2, /cut short: the temp folder .* is full|no space left on device/i);
    expect(run.stderr).not.toMatch(/printed invalid JSON/);
    expect((await readdir(dir)).filter((name) => name.startsWith('sessmig-'))).toEqual([]);
    const after = await sessmig(a, ['ls', '--remote', remote, '--json'], { cwd: repoA });
    expect(after.json.worktrees).toEqual(before.json.worktrees);
    recordFault({ area: 'fault', fault: 'TMPDIR full on the pushing host (opencode export output cut short)', target: 'file', outcome: 'exit 2, "the temp folder … is full"; pointer unchanged' });
  });
});
