/**
 * How many opencode processes a push starts (issue 22): the exports' `opencode serve` starts beside
 * the listing, and that listing also reads the row sizes the served export is checked against — so
 * a push runs at most one `opencode db` and one `opencode serve` before its exports, and an
 * incremental push (one session changed) exports through that server, not an `opencode export`
 * process. Where `sqlite3` is installed (.ci/run installs it), the first command of a binary also
 * asks `opencode db path` and later ones read through sqlite3: no `opencode db` at all. Real
 * opencode on two hosts, a local-folder remote; a wrapper around the real binary only records each
 * process it starts (test/support/recordingOpencode.ts; nothing is faked). The pulled host must hold exactly what
 * the source has, so the faster path cannot have lost anything.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { recordingOpencode } from '../support/recordingOpencode.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let scene: Scene;
let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let remoteDir: string;
let remote: string;
let recorder: Awaited<ReturnType<typeof recordingOpencode>>;
const ids: string[] = [];
/** sessmig finds sqlite3 on PATH (opencode/directRead.ts). */
const SQLITE3 = (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && existsSync(path.join(dir, 'sqlite3')));

/** sessmig's opencode processes in one command, by first argument (`db path` as `db-path`; `--version` left out). */
async function counted(args: string[]): Promise<{ run: Awaited<ReturnType<typeof sessmig>>; calls: string[] }> {
  await recorder.clear();
  const run = await sessmig(a, [...args, '--remote', remote, '--opencode', recorder.bin, '--json'], { cwd: repoA });
  const calls = (await recorder.events())
    .filter((event) => event.kind === 'start' && event.cmd !== '--version')
    .map((event) => (event.cmd === 'db' && event.arg === 'path' ? 'db-path' : event.cmd));
  return { run, calls };
}

/**
 * A session's messages as host b holds them, or (`want`) as host a does, with both checkouts' paths
 * written as <repo>: the pull moves the paths opencode acts on (patch files, tool file paths) onto
 * b's checkout and leaves the others (a message's path.cwd) as the source wrote them.
 */
async function sameAs(id: string, side: 'got' | 'want' = 'got'): Promise<unknown> {
  const text = JSON.stringify((await (side === 'want' ? a : b).exportSession(id)).messages);
  return JSON.parse(text.split(repoA).join('<repo>').split(repoB).join('<repo>'));
}

beforeAll(async () => {
  scene = await startScene(['a', 'b']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  remote = pathToFileURL(remoteDir).href;
  recorder = await recordingOpencode(a.root, a.opencodeBin);
  ids.push((await a.run(repoA, 'first session [[big 2]]')).sessionID);
  ids.push((await a.run(repoA, 'second session [[write notes.txt hello]]')).sessionID);
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

describe('push starts at most one opencode db (none once sqlite3 answers) and one opencode serve', () => {
  it('a first push: the listing reads the row sizes, no second opencode db before the exports', async () => {
    const { run, calls } = await counted(['push']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.sessions.filter((s: { exported: boolean }) => s.exported)).toHaveLength(2);
    expect(calls.filter((c) => c === 'serve')).toHaveLength(1);
    expect(calls.filter((c) => c === 'export')).toEqual([]);
    expect(calls.filter((c) => c === 'db')).toHaveLength(1);
    expect(calls.filter((c) => c === 'db-path')).toHaveLength(SQLITE3 ? 1 : 0);
  }, 180_000);

  it('an incremental push exports the changed session through the server, and the pull holds it whole', async () => {
    await a.run(repoA, 'more', { session: ids[0]! });
    const { run, calls } = await counted(['push']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.sessions.filter((s: { exported: boolean }) => s.exported).map((s: { id: string }) => s.id)).toEqual([ids[0]]);
    expect(calls.filter((c) => c === 'export')).toEqual([]);
    expect(calls.filter((c) => c === 'serve')).toHaveLength(1);
    expect(calls.filter((c) => c === 'db')).toHaveLength(SQLITE3 ? 0 : 1);
    expect(calls.filter((c) => c === 'db-path')).toEqual([]);

    const pull = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(pull.exitCode, explain(pull)).toBe(0);
    for (const id of ids) {
      expect(await sameAs(id)).toEqual(await sameAs(id, 'want'));
    }
  }, 240_000);

  it('a large session goes through opencode export beside the server (its check would hold it whole in memory)', async () => {
    // A session of about 9 MiB, made as the bench makes its large one: a real session's export with
    // one text part inflated, imported by opencode itself in place of the original.
    const large = (await a.run(repoA, 'a long answer [[big 4]]')).sessionID;
    const blob = await a.exportSession(large);
    const part = blob.messages.flatMap((m: { parts: { type: string; text?: string }[] }) => m.parts).find((p: { type: string; text?: string }) => p.type === 'text' && p.text);
    part.text = 'lorem ipsum dolor sit amet '.repeat(Math.ceil((9 * 1024 * 1024) / 27));
    const file = path.join(a.root, 'large.json');
    await writeFile(file, JSON.stringify(blob));
    await a.opencode(['session', 'delete', large], { cwd: repoA });
    await a.opencode(['import', file], { cwd: repoA, timeoutMs: 120_000 });
    await a.run(repoA, 'more', { session: ids[1]! }); // and a small one changed: two exports, one server

    const { run, calls } = await counted(['push']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.sessions.filter((s: { exported: boolean }) => s.exported).map((s: { id: string }) => s.id).sort()).toEqual([large, ids[1]].sort());
    expect(calls.filter((c) => c === 'export')).toHaveLength(1);
    expect(calls.filter((c) => c === 'serve')).toHaveLength(1);

    const pull = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(pull.exitCode, explain(pull)).toBe(0);
    for (const id of [large, ids[1]!]) {
      expect(await sameAs(id)).toEqual(await sameAs(id, 'want'));
    }
  }, 300_000);
});
