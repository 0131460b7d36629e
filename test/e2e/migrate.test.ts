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

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(async () => {
  await llm?.close();
});

interface World {
  laptop: Host;
  box: Host;
  repoL: string;
  repoB: string;
  url: string;
  env: Record<string, string>;
  s3?: S3Target;
  dir?: string;
}

async function makeWorld(kind: 'file' | 's3'): Promise<World> {
  const laptop = await createHost('laptop', { llm });
  const box = await createHost('box', { llm });
  const repoL = path.join(laptop.workDir, 'app');
  const repoB = path.join(box.workDir, 'checkout', 'app');
  await createRepo(repoL);
  await createRepo(repoB);
  if (kind === 's3') {
    const s3 = await startS3rver();
    return { laptop, box, repoL, repoB, url: s3.remoteUrl('m/'), env: s3.env, s3 };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  return { laptop, box, repoL, repoB, url: pathToFileURL(dir).href, env: {}, dir };
}

async function disposeWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  await w.laptop.cleanup();
  await w.box.cleanup();
  await w.s3?.dispose();
  if (w.dir) await rm(w.dir, { recursive: true, force: true });
}

function on(w: World, host: Host, repo: string, args: string[], env: Record<string, string> = {}): Promise<SessmigRun> {
  return sessmig(host, [...args, '--remote', w.url, '--json'], { cwd: repo, env: { ...w.env, ...env } });
}

// The round trip on S3 (conditional writes through the SDK); the file remote's ownership and CAS
// are covered by the contention tests below and the remote contract tests.
const roundTripKinds = process.env.SESSMIG_TEST_E2E_TARGETS === 'all' ? (['file', 's3'] as const) : (['s3'] as const);
describe.each(roundTripKinds)('the migrate round trip (%s remote)', (kind) => {
  let w: World;
  let main: string;
  let child: string;
  beforeAll(async () => {
    w = await makeWorld(kind);
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
    const view = await w.box.view(main);
    expect(view.directory).toBe(w.repoB);
    expect((await w.box.view(child)).parentID).toBe(main);
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
    const after = await w.laptop.view(main);
    expect(after.messages).toBe(onBox.messages);
    expect(after.parts).toBe(onBox.parts);
    expect(after.directory).toBe(w.repoL);
    expect((await w.laptop.view(child)).parentID).toBe(main);
    expect(JSON.stringify(await w.laptop.exportSession(main))).toContain('MARK-BOX');
    expect((await w.laptop.sessions()).length).toBe(2);
    // The replaced copy was backed up, and status lists the backup.
    const status = await on(w, w.laptop, w.repoL, ['status']);
    expect(status.json.ownedByThisHost).toBe(true);
    expect(status.json.backups.length).toBeGreaterThan(0);
  });
});

describe('contention, divergence and faults (file remote)', () => {
  let w: World;
  let main: string;
  let third: Host;
  let repoT: string;
  beforeAll(async () => {
    w = await makeWorld('file');
    third = await createHost('third', { llm });
    repoT = path.join(third.workDir, 'app');
    await createRepo(repoT);
    main = (await w.laptop.run(w.repoL, 'shared work MARK-2')).sessionID;
    const first = await on(w, w.laptop, w.repoL, ['push', '--migrate']);
    expect(first.exitCode, explain(first)).toBe(0);
  }, 240_000);
  afterAll(async () => {
    await third?.cleanup();
    await disposeWorld(w);
  });

  it('two hosts claiming at the same moment: exactly one wins, the other gets a clear error', async () => {
    const [r1, r2] = await Promise.all([on(w, w.box, w.repoB, ['pull', '--migrate']), on(w, third, repoT, ['pull', '--migrate'])]);
    const codes = [r1.exitCode, r2.exitCode].sort();
    expect(codes, `${explain(r1)}\n${explain(r2)}`).toEqual([0, 1]);
    const loser = r1.exitCode === 1 ? r1 : r2;
    expect(loser.stderr).toMatch(/another host moved the pointer|owned by/);
    const winner = r1.exitCode === 0 ? w.box : third;
    const status = await on(w, w.laptop, w.repoL, ['status']);
    expect(status.json.owner.hostId).toBe((await on(w, winner, winner === w.box ? w.repoB : repoT, ['status'])).json.thisHost.hostId);
    // Make the box the owner for what follows.
    if (winner !== w.box) {
      expect((await on(w, third, repoT, ['push', '--migrate'])).exitCode).toBe(0);
      expect((await on(w, w.box, w.repoB, ['pull', '--migrate'])).exitCode).toBe(0);
    }
    recordFault({ area: 'fault', fault: 'two hosts claim (pull --migrate) at the same moment', target: 'file', outcome: 'exactly one wins; the other exits 1 naming the race; no session lost' });
  });

  it('both sides continue the same session: pull refuses, --keep-local keeps, --force takes the remote and keeps a backup', async () => {
    await w.box.run(w.repoB, 'box side MARK-B', { session: main });
    expect((await on(w, w.box, w.repoB, ['push'])).exitCode).toBe(0);
    await w.laptop.run(w.repoL, 'laptop side MARK-L', { session: main });
    const localBefore = await w.laptop.view(main);

    const refused = await on(w, w.laptop, w.repoL, ['pull']);
    expect(refused.exitCode, explain(refused)).toBe(3);
    expect(refused.json.sessions[0].action).toBe('conflict');
    expect(refused.stderr).toMatch(/changed here and in the remote/);
    expect(await w.laptop.view(main)).toEqual(localBefore);

    const kept = await on(w, w.laptop, w.repoL, ['pull', '--keep-local']);
    expect(kept.exitCode, explain(kept)).toBe(0);
    expect(kept.json.sessions[0].action).toBe('keep-local');
    expect(await w.laptop.view(main)).toEqual(localBefore);

    const forced = await on(w, w.laptop, w.repoL, ['pull', '--force']);
    expect(forced.exitCode, explain(forced)).toBe(0);
    expect(forced.json.sessions[0].action).toBe('replace');
    const exported = JSON.stringify(await w.laptop.exportSession(main));
    expect(exported).toContain('MARK-B');
    expect(exported).not.toContain('MARK-L');
    // The backup holds the laptop's own version, whole: restore it through opencode on a scratch host.
    const backupFile = path.join(forced.json.backupDir, `${main}.json`);
    expect(await readFile(backupFile, 'utf8')).toContain('MARK-L');
    await third.opencode(['session', 'delete', main], { cwd: repoT }).catch(() => undefined);
    const imported = await third.opencode(['import', backupFile], { cwd: repoT });
    expect(imported.stdout).toContain(`Imported session: ${main}`);
    expect((await third.view(main)).messages).toBe(localBefore.messages);
    recordFault({ area: 'fault', fault: 'a session continued on both hosts (divergence)', target: 'file', outcome: 'pull refuses (exit 3), --keep-local keeps, --force takes the remote and keeps a restorable backup' });
  });

  it('an import failing mid-pull leaves the local sessions as they were and the pointer unclaimed', async () => {
    // Box (owner) changes both sessions and hands over; the laptop's 2nd import fails (injected).
    const second = (await w.box.run(w.repoB, 'another one MARK-3')).sessionID;
    await w.box.run(w.repoB, 'more box work', { session: main });
    expect((await on(w, w.box, w.repoB, ['push', '--migrate'])).exitCode).toBe(0);
    const before = await Promise.all((await w.laptop.sessions()).map((s) => w.laptop.view(s.id)));
    const faulty = await writeFaultyOpencode(w.laptop.root, w.laptop.opencodeBin);
    const run = await on(w, w.laptop, w.repoL, ['pull', '--migrate', '--opencode', faulty, '--jobs', '1'], {
      FAULT_FAIL_IMPORT_NTH: '2',
      SESSMIG_REPLAY: 'never', // the fault is on opencode import
      FAULT_COUNTER_FILE: path.join(w.laptop.root, 'count'),
    });
    expect(run.exitCode, explain(run)).toBe(1);
    const after = await Promise.all((await w.laptop.sessions()).map((s) => w.laptop.view(s.id)));
    expect(after).toEqual(before);
    const status = await on(w, w.laptop, w.repoL, ['status']);
    expect(status.json.owner).toBeNull();
    // The re-run finishes the job.
    const again = await on(w, w.laptop, w.repoL, ['pull', '--migrate']);
    expect(again.exitCode, explain(again)).toBe(0);
    expect((await w.laptop.sessions()).map((s) => s.id)).toContain(second);
    recordFault({ area: 'fault', fault: 'opencode import fails mid-pull --migrate (2nd import, injected)', target: 'file', outcome: 'exit 1; local sessions as before; pointer not claimed; the re-run finishes' });
  });
});

describe('the S3 server dies mid-push', () => {
  let w: World;
  const ids: string[] = [];
  beforeAll(async () => {
    w = await makeWorld('s3');
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
