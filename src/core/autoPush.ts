import { setTimeout as sleep } from 'node:timers/promises';
import { lastRequest, recordAutoPush, stampRequest, type AutoPushRecord } from '../host/autoPushState.js';
import { tryPushLock } from '../host/pushLock.js';
import type { Context } from './context.js';
import { isSessmigError } from '../util/errors.js';
import { push } from './push.js';
import { readPointer } from './remoteStore.js';
import { busySessions } from '../opencode/sessionQueries.js';

/** One attempt's outcome, before it is stamped with times. */
export type AutoPushOutcome = Omit<AutoPushRecord, 'startedAt' | 'finishedAt'>;

export interface AutoPushOptions {
  stateDir: string;
  worktreeKey: string;
  root: string;
  /** Quiet time after the last idle event before pushing: idle events closer together make one push. */
  debounceMs: number;
  /** One push attempt (owner check, busy check, push); never throws. */
  attempt: () => Promise<AutoPushOutcome>;
  log: (line: string) => void;
}

/**
 * The push on idle, run in a detached process per idle event. Every event stamps the request
 * file; only the process that gets the worktree's push lock pushes, after `debounceMs` without a
 * newer event, and again if an event arrives while it pushes. A process that finds the lock held
 * leaves: the holder sees its stamp. Returns the number of pushes attempted by this process.
 */
export async function pushOnIdle(options: AutoPushOptions): Promise<number> {
  const { stateDir, worktreeKey: key } = options;
  await stampRequest(stateDir, key, Date.now());
  let attempts = 0;
  let lastStart = 0;
  // The loop ends when a released lock finds no event newer than the last push start. The check
  // after release closes the gap where an event lands after the holder's last look but before
  // the holder lets go (its process found the lock held and left).
  for (let round = 0; round < 10; round++) {
    const lock = await tryPushLock(stateDir, key, 'auto');
    if (!lock) {
      options.log(`another push of ${key} is running; it will pick this idle event up`);
      return attempts;
    }
    try {
      for (;;) {
        for (;;) {
          const wait = (await lastRequest(stateDir, key)) + options.debounceMs - Date.now();
          if (wait <= 0) break;
          await sleep(Math.min(wait, options.debounceMs));
        }
        lastStart = Date.now();
        attempts++;
        const outcome = await options.attempt();
        const record: AutoPushRecord = { ...outcome, startedAt: new Date(lastStart).toISOString(), finishedAt: new Date().toISOString() };
        await recordAutoPush(stateDir, key, options.root, record);
        options.log(`${record.finishedAt} ${record.result}: ${record.message}`);
        if ((await lastRequest(stateDir, key)) < lastStart || attempts >= 10) break;
      }
    } finally {
      await lock.release();
    }
    if ((await lastRequest(stateDir, key)) < lastStart || attempts >= 10) return attempts;
  }
  return attempts;
}

/**
 * One automatic push: only when this host owns the worktree (a worktree nobody pushed yet is
 * left to a first manual push) and no session of it is mid-turn.
 */
export async function attemptAutoPush(ctx: Context): Promise<AutoPushOutcome> {
  try {
    const pointer = await readPointer(ctx.remote, ctx.worktree.key);
    if (!pointer) return { result: 'skipped', message: `nothing pushed to ${ctx.remote.display} yet: the first push is a manual \`sessmig push\`` };
    const owner = pointer.pointer.owner;
    if (owner?.hostId !== ctx.host.hostId) {
      return { result: 'skipped', message: owner ? `worktree owned by ${owner.hostname || owner.hostId}, not this host` : 'worktree released (in transit): not this host\'s to push' };
    }
    const busy = await busySessions(ctx.opencode, ctx.worktree.root);
    if (busy.length > 0) return { result: 'skipped', message: `session(s) still working: ${busy.join(', ')}` };
    const result = await push(ctx, {});
    if (result.status !== 'pushed') return { result: 'skipped', message: `push ended ${result.status}` };
    const counts = new Map<string, number>();
    for (const session of result.sessions) counts.set(session.action, (counts.get(session.action) ?? 0) + 1);
    const summary = [...counts].map(([action, n]) => `${n} ${action}`).join(', ');
    const conflicts = counts.get('conflict') ?? 0;
    return {
      result: conflicts > 0 ? 'failed' : 'pushed',
      message: `checkpoint ${result.checkpoint} (${summary || 'no sessions'})${conflicts > 0 ? `; ${conflicts} conflict(s) kept the remote copy: run sessmig status` : ''}`,
      ...(result.checkpoint ? { checkpoint: result.checkpoint } : {}),
    };
  } catch (error) {
    const message = isSessmigError(error) ? `${error.message}${error.hint ? ` (hint: ${error.hint})` : ''}` : error instanceof Error ? error.message : String(error);
    return { result: 'failed', message };
  }
}
