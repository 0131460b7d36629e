/** The per-worktree push lock: exclusive, released, stale locks of dead processes taken over. */
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { pushLockFile, takePushLock, tryPushLock } from '../../src/host/pushLock.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('is exclusive until released', async () => {
  const first = await tryPushLock(dir, 'wt', 'auto');
  expect(first).toBeDefined();
  expect(await tryPushLock(dir, 'wt', 'manual')).toBeUndefined();
  expect(await tryPushLock(dir, 'other', 'manual')).toBeDefined();
  await first!.release();
  const again = await tryPushLock(dir, 'wt', 'manual');
  expect(again).toBeDefined();
  await again!.release();
});

it('takes over the lock of a process that is gone', async () => {
  const file = pushLockFile(dir, 'wt');
  await mkdir(path.dirname(file), { recursive: true });
  // pid 2^22+1 is above Linux's pid_max default range: no such process.
  await writeFile(file, JSON.stringify({ pid: 4194305, hostname: 'x', kind: 'auto', startedAt: '2020-01-01T00:00:00Z' }));
  const lock = await tryPushLock(dir, 'wt', 'manual');
  expect(lock).toBeDefined();
  await lock!.release();
});

it('a waiting push gives up with push-locked after its wait, naming the holder', async () => {
  const held = await tryPushLock(dir, 'wt', 'auto');
  let told: unknown;
  await expect(takePushLock(dir, 'wt', { kind: 'manual', waitMs: 300, onWait: (holder) => (told = holder) })).rejects.toMatchObject({ code: 'push-locked' });
  expect(told).toMatchObject({ pid: process.pid, kind: 'auto' });
  await held!.release();
});

it('a waiting push gets the lock once it is released', async () => {
  const held = await tryPushLock(dir, 'wt', 'auto');
  setTimeout(() => void held!.release(), 300);
  const lock = await takePushLock(dir, 'wt', { kind: 'manual', waitMs: 5000 });
  expect(lock).toBeDefined();
  await lock.release();
});
