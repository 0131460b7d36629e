import path from 'node:path';
import type { Checkout, Manifest, ManifestSession } from '../format/schema.js';
import { readCodeState } from '../code/codeLeg.js';
import { compareCode, type CodeComparison } from '../code/codeStatus.js';
import { existsSync } from 'node:fs';
import { DirComparer } from '../util/dirs.js';
import { checkoutOf } from './plan.js';
import type { SessionRow } from '../opencode/opencode.js';
import { listBackups } from './backups.js';
import type { Context } from './context.js';
import { describeOwner } from './ownership.js';
import { mapPool } from './pool.js';
import { selectSessions } from './push.js';
import { readManifest, readPointer } from './remoteStore.js';
import { loadSyncState, localContentHash, syncStateFile } from './syncState.js';

/**
 * Where each session stands between this host and the remote's current checkpoint, judged against
 * the sync base (the content both sides had at this host's last push or pull).
 */
export type SessionState =
  | 'only-local'
  | 'only-remote'
  | 'same'
  | 'changed-locally'
  | 'changed-remotely'
  | 'changed-both'
  /** Synced here before, gone from opencode now: the next push records the deletion. */
  | 'deleted-here'
  /** Deleted on another host (the checkpoint has its tombstone), still here: the next pull removes it (if unchanged). */
  | 'deleted-there'
  /** In the checkpoint, but held by (or belonging to) another checkout of the repository on this host. */
  | 'other-checkout';

export interface StatusResult {
  worktree: string;
  worktreeRoot: string;
  remote: string;
  pushed: boolean;
  checkpoint: string | null;
  generation: number | null;
  owner: { hostId: string; hostname: string } | null;
  ownerDescription: string;
  thisHost: { hostId: string; hostname: string };
  ownedByThisHost: boolean;
  handedAway: { checkpoint: string; at: string } | null;
  lastSyncedCheckpoint: string | null;
  sessions: {
    id: string;
    parentID: string | null;
    title: string;
    state: SessionState;
    local?: { timeUpdated: number; directory: string };
    remote?: { timeUpdated: number; messages: number };
    /** The checkout the checkpoint files the session under (host, root, branch). */
    checkout?: Checkout;
  }[];
  /** The checkout this command ran in. */
  checkout: { root: string; branch: string | null };
  /** This checkout's code against the current checkpoint's code part (null: the checkpoint carries no code). */
  code: CodeComparison | null;
  backups: { pullId: string; createdAt: string; dir: string; sessions: string[] }[];
  /** The worktree's objects are sealed with the key of this id (null: stored in the clear). */
  encrypted: { keyId: string } | null;
}

export async function status(ctx: Context): Promise<StatusResult> {
  const { remote, worktree, opencode } = ctx;
  const pointer = await readPointer(remote, worktree.key);
  const manifest = pointer ? await readManifest(remote, worktree.key, pointer.pointer.checkpoint) : undefined;
  const state = await loadSyncState(syncStateFile(ctx.paths.state, remote.display, worktree.key), remote.display, worktree.key);
  const rows = await opencode.listSessions();
  const dirs = new DirComparer();
  const local = selectSessions(rows, worktree.root, undefined, dirs);
  const allLocal = new Map<string, SessionRow>(rows.map((row) => [row.id, row]));
  const remoteById = new Map<string, ManifestSession>((manifest?.sessions ?? []).map((s) => [s.id, s]));
  const tombstones = new Map((manifest?.deleted ?? []).map((item) => [item.id, item]));
  const localById = new Map<string, SessionRow>(local.map((row) => [row.id, row]));
  const ids = [...new Set([...local.map((row) => row.id), ...remoteById.keys()])];

  const sessions = await mapPool(ids, ctx.jobs, async (id, index) => {
    const row = localById.get(id);
    const entry = remoteById.get(id);
    const base = state.sessions[id];
    const elsewhere = row ? undefined : allLocal.get(id);
    const common = {
      id,
      parentID: entry?.parentID ?? row?.parent_id ?? null,
      title: entry?.title ?? row?.title ?? '',
      ...(row ?? elsewhere ? { local: { timeUpdated: (row ?? elsewhere)!.time_updated, directory: (row ?? elsewhere)!.directory } } : {}),
      ...(entry ? { remote: { timeUpdated: entry.timeUpdated, messages: entry.messages }, checkout: checkoutOf(manifest!, entry) } : {}),
    };
    if (elsewhere) return { ...common, state: 'other-checkout' as const };
    if (!row) {
      if (base) return { ...common, state: 'deleted-here' as const };
      const checkout = common.checkout;
      const mine = checkout && checkout.host.hostId === ctx.host.hostId && !dirs.same(checkout.root, worktree.root) && existsSync(checkout.root);
      return { ...common, state: mine ? ('other-checkout' as const) : ('only-remote' as const) };
    }
    if (!entry) return { ...common, state: tombstones.has(id) ? ('deleted-there' as const) : ('only-local' as const) };
    const { contentHash: localHash } = await localContentHash(opencode, row, base, path.join(ctx.tempDir, `status-${index}.json`));
    const stateOf = (): SessionState => {
      if (localHash === entry.contentHash) return 'same';
      if (!base) return 'changed-both';
      const localMoved = localHash !== base.contentHash;
      const remoteMoved = entry.contentHash !== base.contentHash;
      if (localMoved && remoteMoved) return 'changed-both';
      return localMoved ? 'changed-locally' : 'changed-remotely';
    };
    return { ...common, state: stateOf() };
  });

  const backups = (await listBackups(ctx.paths.state, worktree.key)).map((backup) => ({
    pullId: backup.pullId,
    createdAt: backup.createdAt,
    dir: backup.dir,
    sessions: backup.sessions.map((s) => s.id),
  }));
  const owner = pointer?.pointer.owner ?? null;
  return {
    worktree: worktree.key,
    worktreeRoot: worktree.root,
    remote: remote.display,
    pushed: pointer !== undefined,
    checkpoint: pointer?.pointer.checkpoint ?? null,
    generation: pointer?.pointer.generation ?? null,
    owner,
    ownerDescription: pointer ? describeOwner(owner) : 'nobody yet (never pushed)',
    thisHost: ctx.host,
    ownedByThisHost: owner?.hostId === ctx.host.hostId,
    handedAway: state.handedAway ?? null,
    lastSyncedCheckpoint: state.checkpoint,
    sessions,
    checkout: { root: worktree.root, branch: worktree.branch },
    code: await compareWithCheckpoint(ctx, manifest),
    backups,
    encrypted: remote.sealing ? { keyId: remote.sealing.key.keyId() } : null,
  };
}

/** Does this checkout hold the checkpoint's code (HEAD, branch, index, working tree)? */
async function compareWithCheckpoint(ctx: Context, manifest: Manifest | undefined): Promise<CodeComparison | null> {
  const state = manifest ? readCodeState(manifest) : undefined;
  if (!state || ctx.worktree.empty) return null;
  return compareCode(ctx.worktree.root, state, { tempDir: ctx.tempDir, env: ctx.env });
}
