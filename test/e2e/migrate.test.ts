/**
 * `--migrate` on real parts: ownership flips, safe replace, divergence, and failures that leave
 * sessions and the pointer as they were. Real opencode on simulated hosts; remotes: a local folder
 * and a loopback S3 (s3rver). opencode faults are injected around the real binary
 * (test/support/faultyOpencode.ts); the S3 server is really killed.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFaultyOpencode } from '../support/faultyOpencode.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';
import { recordFault } from '../support/reliability.js';
import { disposeWorld, makeWorld, on, type World } from '../support/migrateWorld.js';

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(async () => {
  await llm?.close();
});

// The round trip on S3 (conditional writes through the SDK); the file remote's ownership and CAS
// are covered by the contention tests below and the remote contract tests.
const roundTripKinds = process.env.SESSMIG_TEST_E2E_TARGETS === 'all' ? (['file', 's3'] as const) : (['s3'] as const);
describe.each(roundTripKinds)('the migrate round trip (%s remote)', (kind) => {
  let w: World;
  let main: string;
  let child: string;
  beforeAll(async () => {
    w = await makeWorld(llm, kind);
    main = (await w.laptop.run(w.repoL, 'start the work MARK-1 [[task dig into it]]')).sessionID;
    child = (await w.laptop.children(main))[0]!;
  }, 240_000);
  afterAll(() => disposeWorld(w));

  it('laptop push --migrate releases the worktree', async () => {
    const run = await on(w, w.laptop, w.repoL, ['push', '--migrate']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.owner).toBeNull();
    const status = await on(w, w.laptop, w.repoL, ['status']);
    expect(status.json.owner).toBeNull();
    expect(status.json.handedAway).not.toBeNull();
  });

  it('a plain push by a host that does not own the worktree is refused, naming the owner', async () => {
    const run = await on(w, w.laptop, w.repoL, ['push']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.stderr).toMatch(/released|owned by/);
    expect(run.stderr).toMatch(/pull --migrate/);
  });

  it('box pull --migrate takes the sessions and the ownership', async () => {
    const run = await on(w, w.box, w.repoB, ['pull', '--migrate']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.claimed).toBe(true);
    expect(run.json.owner.hostname).toBeTruthy();
    const [view, childView] = await w.box.views([main, child]);
    expect(view!.directory).toBe(w.repoB);
    expect(childView!.parentID).toBe(main);
    const status = await on(w, w.box, w.repoB, ['status']);
    expect(status.json.ownedByThisHost).toBe(true);
    expect(status.json.sessions.map((s: { state: string }) => s.state)).toEqual(['same', 'same']);
  });

  it("box continues the session and hands it back; the laptop gets the new message, no duplicates", { timeout: 600_000 }, async () => {
    const before = await w.laptop.view(main);
    await w.box.run(w.repoB, 'continue on the box MARK-BOX', { session: main });
    const onBox = await w.box.view(main);
    expect(onBox.messages).toBeGreaterThan(before.messages);
    const statusBox = await on(w, w.box, w.repoB, ['status']);
    expect(statusBox.json.sessions.find((s: { id: string }) => s.id === main).state).toBe('changed-locally');
    const pushed = await on(w, w.box, w.repoB, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(pushed.json.sessions.find((s: { id: string }) => s.id === child).action).toBe('reused');
    const statusLaptop = await on(w, w.laptop, w.repoL, ['status']);
    expect(statusLaptop.json.sessions.find((s: { id: string }) => s.id === main).state).toBe('changed-remotely');
    const pulled = await on(w, w.laptop, w.repoL, ['pull', '--migrate']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.claimed).toBe(true);
    expect(pulled.json.sessions.find((s: { id: string }) => s.id === main).action).toBe('replace');
    const [after, childAfter] = await w.laptop.views([main, child]);
    expect(after!.messages).toBe(onBox.messages);
    expect(after!.parts).toBe(onBox.parts);
    expect(after!.directory).toBe(w.repoL);
    expect(childAfter!.parentID).toBe(main);
    expect(JSON.stringify(await w.laptop.exportSession(main))).toContain('MARK-BOX');
    expect((await w.laptop.sessions()).length).toBe(2);
    // The replaced copy was backed up, and status lists the backup.
    const status = await on(w, w.laptop, w.repoL, ['status']);
    expect(status.json.ownedByThisHost).toBe(true);
    expect(status.json.backups.length).toBeGreaterThan(0);
  });
});

describe('the S3 server dies mid-push', () => {
  let w: World;
  const ids: string[] = [];
  beforeAll(async () => {
    w = await makeWorld(llm, 's3');
    for (const n of [1, 2, 3]) ids.push((await w.laptop.run(w.repoL, `session ${n}`)).sessionID);
    ids.sort();
  }, 240_000);
  afterAll(() => disposeWorld(w));

  it('leaves the pointer as it was; the re-run finishes without re-uploading', async () => {
    const first = await on(w, w.laptop, w.repoL, ['push', '--session', ids[0]!]);
    expect(first.exitCode, explain(first)).toBe(0);
    for (const id of ids) await w.laptop.run(w.repoL, 'more', { session: id });
    // Kill the real S3 server just before the last session's export (--jobs 1: in id order).
    const faulty = await writeFaultyOpencode(w.laptop.root, w.laptop.opencodeBin);
    const run = await on(w, w.laptop, w.repoL, ['push', '--opencode', faulty, '--jobs', '1'], {
      FAULT_HOOK_EXPORT: ids[2]!,
      FAULT_HOOK_CMD: `kill -9 ${w.s3!.pids().join(' ')}`,
      SESSMIG_EXPORT_VIA: 'cli', // the hook is on `opencode export`
    });
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.stderr).toMatch(/cannot reach|ECONNREFUSED|unreachable/i);
    await w.s3!.stop();
    await w.s3!.start();
    const ls = await on(w, w.laptop, w.repoL, ['ls']);
    expect(ls.json.worktrees[0].checkpoint).toBe(first.json.checkpoint);
    // The same command again (same export path: blob bytes, hence names, depend on it).
    const again = await on(w, w.laptop, w.repoL, ['push', '--jobs', '1'], { SESSMIG_EXPORT_VIA: 'cli' });
    expect(again.exitCode, explain(again)).toBe(0);
    const uploaded = Object.fromEntries(again.json.sessions.map((s: { id: string; uploaded: boolean }) => [s.id, s.uploaded]));
    expect(uploaded).toEqual({ [ids[0]!]: false, [ids[1]!]: false, [ids[2]!]: true });
    recordFault({ area: 'fault', fault: 'S3 server killed mid-push (before the last export)', target: 's3rver', outcome: 'exit 1, "cannot reach"; pointer unchanged; the re-run uploads only the missing blob' });
  });
});
