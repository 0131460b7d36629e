import { mkdir, open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessmigError } from '../util/errors.js';

/**
 * One push of a worktree at a time on this host: a lock file
 * `$XDG_STATE_HOME/sessmig/locks/<worktree key>.lock`, created with O_EXCL, holding the holder's
 * pid. Both the automatic push (opencode plugin) and a manual `sessmig push` take it. A lock whose
 * process is gone (crash, kill -9) is stale and taken over.
 */
export interface PushLockHolder {
  pid: number;
  hostname: string;
  /** 'manual' (sessmig push) or 'auto' (the push on idle). */
  kind: string;
  startedAt: string;
}

export interface PushLock {
  file: string;
  release(): Promise<void>;
}

export function pushLockFile(stateDir: string, worktreeKey: string): string {
  return path.join(stateDir, 'locks', `${worktreeKey}.lock`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readHolder(file: string): Promise<PushLockHolder | undefined> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as PushLockHolder;
    return typeof value.pid === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Takes the lock if it is free (or stale); undefined while another live process holds it. */
export async function tryPushLock(stateDir: string, worktreeKey: string, kind: string): Promise<PushLock | undefined> {
  const file = pushLockFile(stateDir, worktreeKey);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      const holder: PushLockHolder = { pid: process.pid, hostname: os.hostname(), kind, startedAt: new Date().toISOString() };
      try {
        await handle.writeFile(`${JSON.stringify(holder)}\n`);
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        file,
        async release() {
          if (released) return;
          released = true;
          // Only our own lock: a stale-lock takeover by another process must not be undone.
          const current = await readHolder(file);
          if (current?.pid === process.pid) await rm(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readHolder(file);
    // A half-written lock (its writer between open and write) counts as held for a moment.
    if (holder === undefined) {
      await sleep(100);
      if ((await readHolder(file)) !== undefined) continue;
    }
    if (holder && alive(holder.pid)) return undefined;
    await rm(file, { force: true });
  }
  return undefined;
}

/**
 * Waits for the lock up to `waitMs`, telling `onWait` once who holds it; fails with
 * `push-locked` (exit 1) when the wait runs out.
 */
export async function takePushLock(
  stateDir: string,
  worktreeKey: string,
  options: { kind: string; waitMs: number; onWait?: (holder: PushLockHolder | undefined) => void; signal?: AbortSignal },
): Promise<PushLock> {
  const deadline = Date.now() + options.waitMs;
  let told = false;
  for (;;) {
    const lock = await tryPushLock(stateDir, worktreeKey, options.kind);
    if (lock) return lock;
    const holder = await readHolder(pushLockFile(stateDir, worktreeKey));
    if (!told) {
      told = true;
      options.onWait?.(holder);
    }
    if (Date.now() >= deadline) {
      throw new SessmigError('push-locked', `another push of worktree ${worktreeKey} is running on this host${holder ? ` (${holder.kind}, pid ${holder.pid}, since ${holder.startedAt})` : ''}; nothing was pushed`, {
        hint: `wait for it to end and push again; if no such process exists, remove ${pushLockFile(stateDir, worktreeKey)}`,
      });
    }
    options.signal?.throwIfAborted();
    await sleep(250);
  }
}
