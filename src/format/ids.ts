import { randomBytes } from 'node:crypto';
import { usageError } from '../util/errors.js';

/** opencode ids: prefix + 12 hex (time) + 14 base62. We never put anything else in a key or argv. */
export const SESSION_ID = /^ses_[0-9a-f]{12}[0-9A-Za-z]{14}$/;
/** sha256 hex, the name of every blob. */
export const SHA256 = /^[0-9a-f]{64}$/;
/** A checkpoint id: UTC time (sortable) and 8 random hex digits. */
export const CHECKPOINT_ID = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;
/** A worktree key: opencode's project id (a commit sha) or a name chosen with --worktree. */
export const WORKTREE_KEY = /^(?!\.{1,2}$)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A host id: a random UUID kept in the XDG config dir. */
export const HOST_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isSessionId(value: string): boolean {
  return SESSION_ID.test(value);
}

export function assertSessionId(value: string, where = 'session id'): string {
  if (!SESSION_ID.test(value)) {
    throw usageError(
      'bad-session-id',
      `${where} ${JSON.stringify(truncate(value))} is not an opencode session id`,
      'session ids look like ses_ followed by 26 letters and digits; list them with `opencode session list`',
    );
  }
  return value;
}

export function assertWorktreeKey(value: string): string {
  if (!WORKTREE_KEY.test(value)) {
    throw usageError(
      'bad-worktree-key',
      `worktree key ${JSON.stringify(truncate(value))} is not valid`,
      'use 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit',
    );
  }
  return value;
}

export function assertCheckpointId(value: string): string {
  if (!CHECKPOINT_ID.test(value)) {
    throw usageError(
      'bad-checkpoint-id',
      `checkpoint id ${JSON.stringify(truncate(value))} is not valid`,
      'checkpoint ids look like 20261125T214617123Z-1a2b3c4d; list them with `sessmig ls`',
    );
  }
  return value;
}

/**
 * A new checkpoint id from `now`, or — when `after` (the parent checkpoint) is not older — from
 * 1 ms after it: a host whose clock is behind still makes an id that sorts after its parent, so
 * `ls` order and `prune --keep-last` follow the history rather than the clocks.
 */
export function newCheckpointId(now = new Date(), after?: string | null): string {
  const parentTime = after ? checkpointTime(after) : undefined;
  const at = parentTime !== undefined && parentTime >= now.getTime() ? new Date(parentTime + 1) : now;
  const iso = at.toISOString(); // 2026-11-25T21:46:17.123Z
  const stamp = iso.replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** The UTC time (ms since the epoch) in a checkpoint id, or undefined for a malformed one. */
export function checkpointTime(id: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-/.exec(id);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, sec, ms] = match.map(Number) as number[];
  const time = Date.UTC(y!, mo! - 1, d!, h!, mi!, sec!, ms!);
  return Number.isNaN(time) ? undefined : time;
}

export function truncate(value: string, max = 80): string {
  return value.length > max ? `${value.slice(0, max)}…` : value;
}
