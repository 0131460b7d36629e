/**
 * The sync decision for one session, as pure functions over what push and pull know: the local
 * copy (where it lives, whether its content moved since the sync base), the remote's entry or
 * tombstone, and the sync base (the content both sides had at this host's last push or pull).
 * No I/O here: push.ts and pull.ts gather the facts, these decide, and test/core/plan.test.ts
 * walks the whole decision table. docs/FORMAT.md ("Checkouts and deletions") is the model.
 */

import type { Checkout, Manifest, ManifestSession } from '../format/schema.js';

/** The checkout a session belongs to: its own record (v2), else the checkpoint's source checkout (v1). */
export function checkoutOf(manifest: Manifest, session: ManifestSession): Checkout {
  return session.checkout ?? { host: manifest.source.host, root: manifest.source.worktreeRoot, branch: manifest.source.branch ?? null };
}

/** Where a local session lives, seen from the checkout the command runs in. */
export type LocalPlace =
  /** In this checkout (its directory is the checkout's root or below it). */
  | 'here'
  /** In another checkout of the repository on this host whose folder still exists. */
  | 'other-checkout'
  /** In a folder that no longer exists (the checkout was moved or renamed). */
  | 'gone-folder';

/**
 * The local copy's content against a reference hash: `unknown` until exported (push decides some
 * sessions without exporting them), else whether it equals the remote copy and the sync base.
 */
export interface LocalContent {
  /** Equals the content of the sync base (unchanged here since the last sync). */
  equalsBase: boolean;
  /** Equals the remote copy (or, for a tombstone, the content deleted there). */
  equalsRemote: boolean;
}

export type PullAction =
  | 'new'
  | 'unchanged'
  | 'replace'
  | 'keep-local'
  | 'conflict'
  | 'refused'
  /** Deleted on this host since the last sync, unchanged in the remote: not brought back (push records the deletion). */
  | 'deleted-here'
  /** Deleted on another host (a tombstone), unchanged here: removed here, with a backup. */
  | 'deleted-there'
  /** Lives in (or belongs to) another checkout of the repository: left alone; pull there. */
  | 'other-checkout';

export interface PullDecision {
  action: PullAction;
  reason?: string;
}

export interface PullFacts {
  /** The local copy: absent, or where it lives and how its content compares (undefined: equal to nothing known). */
  local?: { place: LocalPlace; directory: string; content: LocalContent; boundElsewhere: boolean };
  /** The remote's entry is a tombstone (deleted on another host) rather than a session. */
  tombstone?: { by: string; deletedAt: string };
  /** This host synced the session before (it has a sync base entry), and the remote changed since. */
  base?: { remoteChanged: boolean };
  /** Remote-only sessions: whether the session belongs to this checkout (else: the checkout it belongs to). */
  belongs: { here: true } | { here: false; where: string };
  /** The user named this session (`pull --session ID`), or a `--migrate` hands over the checkout that holds it. */
  explicit: boolean;
  force: boolean;
  keepLocal: boolean;
}

/** What pull does with one session of the checkpoint (or one tombstone). */
export function decidePull(f: PullFacts): PullDecision {
  if (f.tombstone) return decideTombstone(f, f.tombstone);
  const local = f.local;
  if (!local) {
    if (f.base && !f.explicit) {
      // This host had it and no longer has it: deleted here. Bringing it back would undo the deletion.
      if (!f.base.remoteChanged) return { action: 'deleted-here', reason: 'deleted on this host since the last sync; `sessmig push` records the deletion' };
      if (f.force) return { action: 'new', reason: 'deleted here but changed in the remote: --force brings the remote copy back' };
      if (f.keepLocal) return { action: 'deleted-here', reason: 'deleted here, changed in the remote; --keep-local keeps it deleted' };
      return { action: 'conflict', reason: 'deleted on this host, changed in the remote since the last sync' };
    }
    if (!f.belongs.here && !f.explicit) return { action: 'other-checkout', reason: `belongs to ${f.belongs.where}; pull there, or name it with --session` };
    return { action: 'new' };
  }
  if (local.place === 'other-checkout' && !f.explicit) {
    return { action: 'other-checkout', reason: `held by the checkout ${local.directory} on this host; pull there (or hand it over with push --migrate there, then pull --migrate here)` };
  }
  const moving = local.place !== 'here' ? (local.place === 'gone-folder' ? `bound to ${local.directory}, which no longer exists; rebinding here` : `moved here from the checkout ${local.directory}`) : undefined;
  if (local.content.equalsRemote) {
    if (moving) return { action: 'replace', reason: moving };
    if (local.boundElsewhere) return { action: 'replace', reason: `bound to ${local.directory}; rebinding` };
    return { action: 'unchanged' };
  }
  if (f.base && local.content.equalsBase) return { action: 'replace', reason: moving ?? 'changed in the remote since the last sync' };
  if (f.base && !f.base.remoteChanged) {
    return { action: 'keep-local', reason: 'changed here since the last sync; push to publish it' };
  }
  if (f.force) return { action: 'replace', reason: 'conflict resolved with --force: remote copy taken, local copy backed up' };
  if (f.keepLocal) return { action: 'keep-local', reason: 'conflict resolved with --keep-local' };
  return { action: 'conflict', reason: f.base ? 'changed here and in the remote since the last sync' : 'differs from the remote copy and was never synced on this host' };
}

function decideTombstone(f: PullFacts, tombstone: NonNullable<PullFacts['tombstone']>): PullDecision {
  const local = f.local;
  const deleted = `deleted on ${tombstone.by} at ${tombstone.deletedAt}`;
  if (!local) return { action: 'unchanged', reason: deleted };
  if (local.place === 'other-checkout') return { action: 'other-checkout', reason: `${deleted}; held by the checkout ${local.directory} on this host: pull there to remove it` };
  // Unchanged here (since the sync base, or equal to what was deleted): follow the deletion.
  if (local.content.equalsRemote || (f.base && local.content.equalsBase)) return { action: 'deleted-there', reason: deleted };
  if (f.force) return { action: 'deleted-there', reason: `${deleted}; --force removes the local copy, changed here since (backed up)` };
  if (f.keepLocal) return { action: 'keep-local', reason: `${deleted}; --keep-local keeps the local copy (push --force publishes it again)` };
  return { action: 'conflict', reason: `${deleted}, but changed here since the last sync` };
}

export type PushAction =
  | 'pushed'
  | 'reused'
  | 'remote-newer'
  | 'conflict'
  /** Deleted on another host (a tombstone) and unchanged here: not pushed back; pull removes it here. */
  | 'deleted-there';

export interface PushFacts {
  /** The local copy's time_updated equals the sync base's: its content is the base's, no export needed. */
  unchangedSinceBase: boolean;
  /** Known once exported (undefined before): the local content hash equals the base / the remote entry / the tombstone. */
  exported?: { equalsBase: boolean; equalsRemote: boolean; equalsTombstone: boolean };
  /** The remote's current checkpoint has the session; `changed`: its content differs from the sync base. */
  remote?: { changedSinceBase: boolean };
  hasBase: boolean;
  /** Another host deleted the session (the current checkpoint has its tombstone). */
  tombstoned: boolean;
  force: boolean;
}

/** 'export' means: decide again once the local copy is exported. */
export function decidePush(f: PushFacts): PushAction | 'export' {
  if (f.tombstoned) {
    if (f.unchangedSinceBase || f.exported?.equalsTombstone || f.exported?.equalsBase) return f.force && f.exported ? 'pushed' : f.force ? 'export' : 'deleted-there';
    if (!f.exported) return 'export';
    return f.force ? 'pushed' : 'conflict';
  }
  if (f.unchangedSinceBase && f.remote) return f.remote.changedSinceBase ? 'remote-newer' : 'reused';
  if (!f.exported) return 'export';
  if (!f.remote || f.exported.equalsRemote) return 'pushed';
  // The remote copy differs from the local one: fine if the remote is still what this host last synced.
  if (f.hasBase && !f.remote.changedSinceBase) return 'pushed';
  return f.force ? 'pushed' : 'conflict';
}

/**
 * A session of the current checkpoint that push does not export (it is not in this checkout):
 * carried forward as it is, or — deleted on this host after this host synced it — tombstoned.
 */
export type CarryAction = 'carry' | 'tombstone' | 'conflict';

export function decideCarry(f: { presentOnThisHost: boolean; hasBase: boolean; remoteChangedSinceBase: boolean; force: boolean }): CarryAction {
  if (f.presentOnThisHost || !f.hasBase) return 'carry';
  if (!f.remoteChangedSinceBase || f.force) return 'tombstone';
  return 'conflict';
}
