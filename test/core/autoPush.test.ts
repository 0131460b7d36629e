/**
 * The debounce and single-flight logic of the push on idle, with a stand-in push attempt: idle
 * events close together make one push, an event during a push makes one more, and a held lock
 * sends a later event's process away without losing the event.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { pushOnIdle, type AutoPushOutcome } from '../../src/core/autoPush.js';
import { readAutoPushState } from '../../src/host/autoPushState.js';

let stateDir: string;
beforeEach(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-autopush-'));
});
afterEach(async () => {
  await rm(stateDir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function run(attempt: () => Promise<AutoPushOutcome>, debounceMs = 300) {
  return pushOnIdle({ stateDir, worktreeKey: 'wt', root: '/repo', debounceMs, attempt, log: () => {} });
}

it('idle events within the debounce make one push, after the quiet time', async () => {
  let pushes = 0;
  const attempt = async () => {
    pushes++;
    return { result: 'pushed' as const, message: 'ok' };
  };
  const t0 = Date.now();
  const first = run(attempt);
  await sleep(100);
  const second = run(attempt);
  await sleep(100);
  const third = run(attempt);
  const counts = await Promise.all([first, second, third]);
  expect(pushes).toBe(1);
  expect(counts.reduce((a, b) => a + b, 0)).toBe(1);
  // The push waited for 300 ms of quiet after the last event (at ~200 ms).
  expect(Date.now() - t0).toBeGreaterThanOrEqual(480);
  const state = await readAutoPushState(stateDir, 'wt');
  expect(state).toMatchObject({ worktree: 'wt', root: '/repo', last: { result: 'pushed', message: 'ok' } });
});

it('an idle event during a push makes exactly one more push', async () => {
  let pushes = 0;
  let later: Promise<number> | undefined;
  const attempt = async () => {
    pushes++;
    if (pushes === 1) later = run(attempt); // an idle event while the first push runs
    await sleep(200);
    return { result: 'pushed' as const, message: `push ${pushes}` };
  };
  const first = await run(attempt, 100);
  expect(await later).toBe(0); // it found the lock held and left its stamp
  expect(first).toBe(2);
  expect(pushes).toBe(2);
});

it('records a failure with its message', async () => {
  await run(async () => ({ result: 'failed', message: 'remote unreachable' }), 50);
  const text = JSON.parse(await readFile(path.join(stateDir, 'auto-push', 'wt.json'), 'utf8'));
  expect(text.last.result).toBe('failed');
  expect(text.last.message).toBe('remote unreachable');
  expect(Date.parse(text.last.finishedAt)).toBeGreaterThanOrEqual(Date.parse(text.last.startedAt));
});
