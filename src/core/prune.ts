import { formatDuration, parseDuration } from '../util/duration.js';
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { CHECKPOINT_ID, checkpointTime } from '../format/ids.js';
import { checkpointKey, worktreePrefix } from '../format/layout.js';
import { parseKey } from '../format/keys.js';
import { LISTED_KINDS, LISTED_NOUN, listedKind, objectKey, objectsOf, storedObjectKey, type ListedKind, type ObjectKind } from './checkpointObjects.js';
import type { Remote } from '../remote/remote.js';
import { backupsDir, listBackups } from './backups.js';
import { SessmigError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { listCheckpointIds, readManifest, readPointer, type PointerState } from './remoteStore.js';

/**
 * `sessmig prune`: retention for the checkpoints of one worktree, then garbage collection of the
 * objects no kept checkpoint references (session blobs, tool outputs, snapshot packs, code bundles:
 * core/checkpointObjects.ts; on an encrypted worktree their keyed `.age` names); and, with --local, removal of old pull backups on this host.
 * Safe against a push running at the same time on another host (docs/FORMAT.md, "Pruning"):
 * nothing younger than the grace period is deleted, the pointer's checkpoint and its objects never
 * are, and the pointer is re-read before anything is deleted.
 */

export const DEFAULT_KEEP_LAST = 5;
export const DEFAULT_KEEP_WITHIN_MS = 7 * 24 * 3600_000;
export const DEFAULT_GRACE_MS = 3600_000;
export const DEFAULT_BACKUP_AGE_MS = 30 * 24 * 3600_000;
/** Plans made before giving up when the pointer keeps moving. */
const MAX_PLANS = 3;

export interface PrunePolicy {
  /** Keep the N newest checkpoints; null: no count rule. */
  keepLast: number | null;
  /** Keep every checkpoint younger than this (by the time in its id); null: no age rule. */
  keepWithinMs: number | null;
  /** Nothing written less than this long ago is deleted (checkpoints and unreferenced objects). */
  graceMs: number;
}

export interface PruneOptions {
  policy: PrunePolicy;
  dryRun: boolean;
  jobs: number;
  signal?: AbortSignal;
  progress?: (line: string) => void;
  /** The clock (tests). */
  now?: () => number;
}

export type KeepReason = 'current' | 'keep-last' | 'keep-within' | 'grace';

export interface PruneCheckpoint {
  id: string;
  createdAt: string;
  /** Size of the manifest object. */
  bytes: number;
  action: 'keep' | 'delete';
  /** Why it is kept (empty when deleted). */
  reasons: KeepReason[];
}

export interface PruneBlob {
  sha256: string;
  bytes: number;
}

/** What prune collects: core/checkpointObjects.ts ListedKind (`sealed`: an encrypted worktree's unnamed `.age` object). */
export type PruneKind = ListedKind;
export const PRUNE_KINDS = LISTED_KINDS;
export const PRUNE_NOUN = LISTED_NOUN;

export interface PruneObject {
  kind: PruneKind;
  /** The key as listed (relative to the remote's root). */
  key: string;
  /** Its name, or null for a sealed object (the keyed name hides it). */
  sha256: string | null;
  bytes: number;
}

export interface PruneKindCount {
  /** Objects of this kind in the listing. */
  stored: number;
  /** Distinct objects of this kind named by the kept checkpoints (whether stored or not). */
  referenced: number;
  /** Unreferenced, kept because younger than the grace period (an unfinished push?). */
  young: number;
  /** Deleted (with dryRun: would be). */
  deleted: number;
  /** Bytes of the deleted ones, as listed. */
  bytes: number;
}

export interface PruneResult {
  remote: string;
  worktree: string;
  dryRun: boolean;
  policy: PrunePolicy;
  /** The pointer's checkpoint when the deletion started (null: no pointer). */
  current: string | null;
  /** Every checkpoint, oldest first. */
  checkpoints: PruneCheckpoint[];
  /** Session blobs (`blobs/<sha256>.json.gz`) only; every kind is in `objects`. */
  blobs: {
    /** Objects under blobs/ with a valid name. */
    stored: number;
    /** Distinct blobs named by the kept checkpoints. */
    referenced: number;
    /** Unreferenced blobs kept because they are younger than the grace period (an unfinished push?). */
    young: number;
    /** Deleted (with dryRun: would be). */
    deleted: PruneBlob[];
  };
  /** Per kind: blob, out (tool outputs), pack (snapshot packs), bundle (code bundles), sealed. */
  objects: Record<PruneKind, PruneKindCount>;
  /** Every object of any kind deleted (with dryRun: would be), by kind then key. */
  deletedObjects: PruneObject[];
  /** Deleted (with dryRun: would be): manifests, and session blobs (`objects` has every kind). */
  deleted: { checkpoints: number; blobs: number };
  /** Referenced by a kept checkpoint but not in the listing (damage: `sessmig check` tells more). */
  missing: number;
  /** Bytes of the deleted manifests and objects, as listed by the remote (with dryRun: would be freed). */
  bytesFreed: number;
  /** How many times the plan was made (more than 1: the pointer moved while planning). */
  plans: number;
}

interface Listed {
  key: string;
  size: number;
  lastModified: Date;
}

interface Plan {
  pointer: PointerState | undefined;
  checkpoints: PruneCheckpoint[];
  keep: Set<string>;
  drop: PruneCheckpoint[];
  /** Stored keys of the objects the kept checkpoints name, with their kind. */
  refs: Map<string, ObjectKind>;
  /** Every key kept for them: the stored keys and, on an encrypted worktree, the format's plaintext names too. */
  protect: Set<string>;
  /** Listed objects of a collectable kind, by key. */
  stored: Map<string, { item: Listed; kind: PruneKind; sha256: string | null }>;
  young: Map<string, PruneKind>;
  /** Unreferenced and old: to delete. */
  objects: PruneObject[];
  missing: number;
}

export async function pruneRemote(remote: Remote, worktree: string, options: PruneOptions): Promise<PruneResult> {
  const now = options.now ?? Date.now;
  const progress = options.progress ?? (() => {});
  for (let attempt = 1; attempt <= MAX_PLANS; attempt++) {
    options.signal?.throwIfAborted();
    const plan = await makePlan(remote, worktree, options, now());
    const result = (objects: PruneObject[], drop: PruneCheckpoint[]) => summarize(remote, worktree, options, plan, objects, drop, attempt);
    if (options.dryRun || (plan.drop.length === 0 && plan.objects.length === 0)) return result(plan.objects, plan.drop);

    // The pointer, right before deleting: a host may have made another checkpoint current meanwhile.
    const again = await readPointer(remote, worktree);
    if (!samePointer(plan.pointer, again)) {
      if (again && plan.drop.some((c) => c.id === again.pointer.checkpoint)) throw movedOnto(worktree, again.pointer.checkpoint, false);
      progress(`the pointer of worktree ${worktree} moved while planning (now ${again?.pointer.checkpoint ?? 'absent'}); planning again`);
      continue;
    }

    // 1. Manifests: once gone, their objects are unreferenced (harmless if the objects stay).
    if (plan.drop.length > 0) progress(`deleting ${plan.drop.length} checkpoint(s) of worktree ${worktree}`);
    await mapPool(plan.drop, options.jobs, (c) => remote.delete(checkpointKey(worktree, c.id)), options.signal);

    // 2. Before the objects: any checkpoint that appeared since the listing (a push that committed
    // or is committing) protects the objects it names, and the pointer must not name a deleted one.
    const dropped = new Set(plan.drop.map((c) => c.id));
    const extra = new Set<string>();
    const appeared = (await listCheckpointIds(remote, worktree)).filter((id) => CHECKPOINT_ID.test(id) && !plan.keep.has(id) && !dropped.has(id));
    for (const id of appeared) {
      let named: Named;
      try {
        named = await namedObjects(remote, worktree, id);
      } catch (error) {
        if (!(error instanceof SessmigError)) throw error;
        throw new SessmigError('prune-unreadable', `checkpoint ${id} appeared in worktree ${worktree} during the prune and cannot be read (${error.message}); ${plan.drop.length} old checkpoint(s) were deleted, no other object was`, {
          hint: 're-run `sessmig prune` once the push on the other host has finished (and `sessmig check` if this persists)',
        });
      }
      for (const [key, { logical }] of named) extra.add(key).add(logical);
    }
    const last = await readPointer(remote, worktree);
    if (last && dropped.has(last.pointer.checkpoint)) throw movedOnto(worktree, last.pointer.checkpoint, true);
    const objects = plan.objects.filter((o) => !extra.has(o.key));
    if (appeared.length > 0) progress(`${appeared.length} checkpoint(s) appeared during the prune; the objects they name are kept`);

    // 3. Objects no kept checkpoint names, older than the grace period. Listed keys are deleted as
    // listed (a sealed remote passes its keyed names through).
    if (objects.length > 0) progress(`deleting ${describeCounts(objects)} of worktree ${worktree}`);
    await mapPool(objects, options.jobs, (o) => remote.delete(o.key), options.signal);
    return result(objects, plan.drop);
  }
  throw new SessmigError('pointer-busy', `the pointer of worktree ${worktree} moved ${MAX_PLANS} times while prune planned; nothing was deleted`, {
    hint: 'other hosts are pushing right now; re-run `sessmig prune` later',
  });
}

function summarize(remote: Remote, worktree: string, options: PruneOptions, plan: Plan, objects: PruneObject[], drop: PruneCheckpoint[], attempt: number): PruneResult {
  const counts = Object.fromEntries(PRUNE_KINDS.map((kind) => [kind, { stored: 0, referenced: 0, young: 0, deleted: 0, bytes: 0 }])) as Record<PruneKind, PruneKindCount>;
  for (const [key, entry] of plan.stored) counts[plan.refs.get(key) ?? entry.kind].stored++;
  for (const kind of plan.refs.values()) counts[kind].referenced++;
  for (const kind of plan.young.values()) counts[kind].young++;
  for (const o of objects) {
    counts[o.kind].deleted++;
    counts[o.kind].bytes += o.bytes;
  }
  const blobs = objects.filter((o) => o.kind === 'blob').map((o) => ({ sha256: o.sha256!, bytes: o.bytes }));
  return {
    remote: remote.display,
    worktree,
    dryRun: options.dryRun,
    policy: options.policy,
    current: plan.pointer?.pointer.checkpoint ?? null,
    checkpoints: plan.checkpoints,
    blobs: { stored: counts.blob.stored, referenced: counts.blob.referenced, young: counts.blob.young, deleted: blobs },
    objects: counts,
    deletedObjects: objects,
    deleted: { checkpoints: drop.length, blobs: blobs.length },
    missing: plan.missing,
    bytesFreed: sum(drop.map((c) => c.bytes)) + sum(objects.map((o) => o.bytes)),
    plans: attempt,
  };
}

/** "2 blob(s), 1 snapshot pack(s)": the objects by kind. */
export function describeCounts(objects: readonly { kind: PruneKind }[]): string {
  const parts = PRUNE_KINDS.map((kind) => [kind, objects.filter((o) => o.kind === kind).length] as const).filter(([, n]) => n > 0);
  return parts.length === 0 ? 'no object' : parts.map(([kind, n]) => `${n} ${PRUNE_NOUN[kind]}(s)`).join(', ');
}

/** The stored keys of the objects checkpoint `id` names, with their kinds (throws as readManifest and objectsOf do). */
async function namedObjects(remote: Remote, worktree: string, id: string): Promise<Named> {
  const read = await readManifest(remote, worktree, id);
  const named: Named = new Map();
  for (const ref of objectsOf(read)) named.set(storedObjectKey(remote, worktree, ref.kind, ref.sha256), { kind: ref.kind, logical: objectKey(worktree, ref.kind, ref.sha256) });
  return named;
}

/**
 * Stored key → kind and the format's (plaintext) key. On an encrypted worktree a plaintext copy of
 * a named object is kept too: the first encrypted push may name an object it did not seal (a pack
 * or tool output carried over from the plaintext checkpoint), and that copy is all there is.
 */
type Named = Map<string, { kind: ObjectKind; logical: string }>;

async function makePlan(remote: Remote, worktree: string, options: PruneOptions, now: number): Promise<Plan> {
  const { policy } = options;
  // The pointer before the listing: a checkpoint made current after this read is in the listing
  // (and young), or is caught by the re-read before deleting.
  const pointer = await readPointer(remote, worktree);
  const current = pointer?.pointer.checkpoint;
  const { manifests, stored } = await listWorktree(remote, worktree);
  if (current !== undefined && !manifests.has(current)) {
    throw new SessmigError('pointer-dangling', `the pointer of worktree ${worktree} names checkpoint ${current}, which is not in the remote; nothing was deleted`, {
      hint: 'run `sessmig check`; push again from the host that has the sessions to make a new checkpoint current',
    });
  }

  const ids = [...manifests.keys()].sort();
  const checkpoints = decide(ids, manifests, current, policy, now);
  const keep = new Set(checkpoints.filter((c) => c.action === 'keep').map((c) => c.id));
  const drop = checkpoints.filter((c) => c.action === 'delete');
  options.progress?.(
    `worktree ${worktree}: ${ids.length} checkpoint(s), ${stored.size} other object(s); current ${current ?? '(no pointer)'}; keeping ${keep.size}, ${options.dryRun ? 'would delete' : 'deleting'} ${drop.length}`,
  );

  // Every kept manifest must be read: an object it names is kept, and one that cannot be read could name any.
  const reads = await mapPool(
    [...keep].sort(),
    options.jobs,
    async (id) => {
      try {
        return await namedObjects(remote, worktree, id);
      } catch (error) {
        if (!(error instanceof SessmigError)) throw error;
        throw new SessmigError('prune-unreadable', `cannot prune worktree ${worktree}: checkpoint ${id}, which is kept, cannot be read (${error.message}); nothing was deleted`, {
          hint:
            error.code === 'format-too-new' || error.code === 'code-format-newer'
              ? (error.hint ?? 'upgrade sessmig')
              : 'run `sessmig check` to see what is damaged; prune deletes nothing while a kept checkpoint is unreadable, since it cannot tell which objects that checkpoint needs',
        });
      }
    },
    options.signal,
  );
  const refs = new Map<string, ObjectKind>();
  const protect = new Set<string>();
  for (const named of reads) {
    for (const [key, { kind, logical }] of named) {
      refs.set(key, kind);
      protect.add(key).add(logical);
    }
  }
  const missing = [...refs.keys()].filter((key) => !stored.has(key)).length;
  if (missing > 0) options.progress?.(`worktree ${worktree}: ${missing} object(s) the kept checkpoints name are not in the remote; run \`sessmig check\``);

  const young = new Map<string, PruneKind>();
  const objects: PruneObject[] = [];
  for (const [key, entry] of [...stored].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (protect.has(key)) continue;
    if (isYoung(entry.item.lastModified, now, policy.graceMs)) young.set(key, entry.kind);
    else objects.push({ kind: entry.kind, key, sha256: entry.sha256, bytes: entry.item.size });
  }
  // A sealed remote maps names with this host's key: if not one named object is found under the
  // mapped names, the mapping is wrong (or the remote lost everything) — delete nothing on that guess.
  if (refs.size > 0 && missing === refs.size && objects.length > 0) {
    throw new SessmigError('prune-unmatched', `cannot prune worktree ${worktree}: none of the ${refs.size} object(s) the kept checkpoints name is in the remote; nothing was deleted`, {
      hint: 'run `sessmig check` to see what is missing; push again from the host that has the sessions',
    });
  }
  objects.sort((a, b) => PRUNE_KINDS.indexOf(a.kind) - PRUNE_KINDS.indexOf(b.kind) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { pointer, checkpoints, keep, drop, refs, protect, stored, young, objects, missing };
}

/**
 * The worktree's listing sorted by kind (format/keys.ts): its checkpoints, and the objects prune may
 * delete; anything else (HEAD.json, ENCRYPTION.json, tickets/, incoming/, unknown names) is never
 * touched. `worktree-not-found` when the worktree holds nothing.
 */
async function listWorktree(remote: Remote, worktree: string): Promise<{ manifests: Map<string, Listed>; stored: Plan['stored'] }> {
  const manifests = new Map<string, Listed>();
  const stored: Plan['stored'] = new Map();
  let listedCount = 0;
  for await (const item of remote.list(worktreePrefix(worktree))) {
    listedCount++;
    const parsed = parseKey(item.key);
    const kind = listedKind(parsed);
    if (parsed?.kind === 'checkpoint') manifests.set(parsed.id, item);
    else if (kind !== undefined) stored.set(item.key, { item, kind, sha256: kind === 'sealed' || parsed!.kind === 'sealed-bundle' ? null : parsed!.id });
  }
  if (listedCount === 0) {
    throw new SessmigError('worktree-not-found', `worktree ${worktree} is not in ${remote.display}: nothing to prune`, {
      hint: 'list the worktrees with `sessmig ls`, check --remote, or name one with --worktree KEY',
    });
  }
  return { manifests, stored };
}

/** The policy applied to the listed checkpoints (pure): kept with its reasons, or deleted. */
function decide(ids: string[], manifests: Map<string, Listed>, current: string | undefined, policy: PrunePolicy, now: number): PruneCheckpoint[] {
  const lastN = new Set(policy.keepLast === null ? [] : ids.slice(Math.max(0, ids.length - policy.keepLast)));
  return ids.map((id) => {
    const item = manifests.get(id)!;
    const created = checkpointTime(id) ?? 0;
    const reasons: KeepReason[] = [];
    if (id === current) reasons.push('current');
    if (lastN.has(id)) reasons.push('keep-last');
    if (policy.keepWithinMs !== null && now - created < policy.keepWithinMs) reasons.push('keep-within');
    if (isYoung(item.lastModified, now, policy.graceMs) || now - created < policy.graceMs) reasons.push('grace');
    return { id, createdAt: new Date(created).toISOString(), bytes: item.size, action: reasons.length > 0 ? 'keep' : 'delete', reasons };
  });
}

/** Written less than graceMs ago. An unknown time (0) counts as young: never delete on a guess. */
function isYoung(lastModified: Date, now: number, graceMs: number): boolean {
  const time = lastModified.getTime();
  return !(time > 0) || now - time < graceMs;
}

function samePointer(a: PointerState | undefined, b: PointerState | undefined): boolean {
  if (!a || !b) return a === b;
  return a.pointer.checkpoint === b.pointer.checkpoint && a.pointer.generation === b.pointer.generation && a.pointer.writeId === b.pointer.writeId;
}

function movedOnto(worktree: string, checkpoint: string, afterDelete: boolean): SessmigError {
  return new SessmigError(
    'pointer-moved',
    afterDelete
      ? `the pointer of worktree ${worktree} moved to checkpoint ${checkpoint} while prune deleted it; no blob was deleted`
      : `the pointer of worktree ${worktree} moved to checkpoint ${checkpoint}, which this prune was about to delete; nothing was deleted`,
    {
      hint: afterDelete
        ? 'a push took longer than --grace: push again from the host that has the sessions to make a whole checkpoint current, and use a longer --grace'
        : 'another host pushed during the prune; re-run `sessmig prune` (with a --grace longer than a push takes, a checkpoint being pushed is never a candidate)',
    },
  );
}


// ---------------------------------------------------------------------------------------------
// Local backups

export interface LocalPruneBackup {
  pullId: string;
  dir: string;
  createdAt: string;
  checkpoint: string;
  sessions: number;
  bytes: number;
  action: 'keep' | 'delete';
}

export interface LocalPruneResult {
  worktree: string;
  /** $XDG_STATE_HOME/sessmig/backups/<worktree> */
  dir: string;
  dryRun: boolean;
  olderThanMs: number;
  /** Every backup with an index, newest first. */
  backups: LocalPruneBackup[];
  deleted: { backups: number };
  bytesFreed: number;
}

/** Removes this host's pull backups of one worktree older than olderThanMs (by their index's createdAt). */
export async function pruneLocalBackups(
  stateDir: string,
  worktree: string,
  options: { olderThanMs: number; dryRun: boolean; now?: () => number; progress?: (line: string) => void },
): Promise<LocalPruneResult> {
  const now = (options.now ?? Date.now)();
  const root = backupsDir(stateDir, worktree);
  const backups: LocalPruneBackup[] = [];
  for (const backup of await listBackups(stateDir, worktree)) {
    const created = Date.parse(backup.createdAt);
    // A folder listBackups found is directly under root; anything else is not ours to remove.
    const inside = path.dirname(backup.dir) === root;
    const old = inside && Number.isFinite(created) && now - created >= options.olderThanMs;
    backups.push({
      pullId: backup.pullId,
      dir: backup.dir,
      createdAt: backup.createdAt,
      checkpoint: backup.checkpoint,
      sessions: backup.sessions.length,
      bytes: await treeBytes(backup.dir),
      action: old ? 'delete' : 'keep',
    });
  }
  const drop = backups.filter((b) => b.action === 'delete');
  if (!options.dryRun) {
    for (const backup of drop) {
      options.progress?.(`removing backup ${backup.dir}`);
      try {
        await rm(backup.dir, { recursive: true, force: true });
      } catch (error) {
        throw new SessmigError('backup-unremovable', `cannot remove backup ${backup.dir}: ${(error as Error).message}`, {
          hint: 'check the folder permissions, then re-run `sessmig prune --local`',
        });
      }
    }
  }
  return { worktree, dir: root, dryRun: options.dryRun, olderThanMs: options.olderThanMs, backups, deleted: { backups: drop.length }, bytesFreed: sum(drop.map((b) => b.bytes)) };
}

async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await treeBytes(full);
    else total += (await lstat(full).catch(() => undefined))?.size ?? 0;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

export { formatDuration, parseDuration };
