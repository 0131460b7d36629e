/**
 * `--migrate` on real parts, the contention half (the round trip is in migrate.test.ts): divergence, races and failures that leave
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

describe('contention, divergence and faults (file remote)', () => {
  let w: World;
  let main: string;
  let third: Host;
  let repoT: string;
  beforeAll(async () => {
    w = await makeWorld(llm, 'file');
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

