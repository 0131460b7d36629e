import { SealedRemote } from '../crypto/sealedRemote.js';
import path from 'node:path';
import type { ManifestSession } from '../format/schema.js';
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
export type SessionState = 'only-local' | 'only-remote' | 'same' | 'changed-locally' | 'changed-remotely' | 'changed-both';

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
  sessions: { id: string; parentID: string | null; title: string; state: SessionState; local?: { timeUpdated: number }; remote?: { timeUpdated: number; messages: number } }[];
  backups: { pullId: string; createdAt: string; dir: string; sessions: string[] }[];
  /** The worktree's objects are sealed with the key of this id (null: stored in the clear). */
  encrypted: { keyId: string } | null;
}

export async function status(ctx: Context): Promise<StatusResult> {
  const { remote, worktree, opencode } = ctx;
  const pointer = await readPointer(remote, worktree.key);
  const manifest = pointer ? await readManifest(remote, worktree.key, pointer.pointer.checkpoint) : undefined;
  const state = await loadSyncState(syncStateFile(ctx.paths.state, remote.display, worktree.key), remote.display, worktree.key);
  const local = selectSessions(await opencode.listSessions(), worktree.root, undefined);
  const remoteById = new Map<string, ManifestSession>((manifest?.sessions ?? []).map((s) => [s.id, s]));
  const localById = new Map<string, SessionRow>(local.map((row) => [row.id, row]));
  const ids = [...new Set([...local.map((row) => row.id), ...remoteById.keys()])];

  const sessions = await mapPool(ids, ctx.jobs, async (id, index) => {
    const row = localById.get(id);
    const entry = remoteById.get(id);
    const base = state.sessions[id];
    const common = {
      id,
      parentID: entry?.parentID ?? row?.parent_id ?? null,
      title: entry?.title ?? row?.title ?? '',
      ...(row ? { local: { timeUpdated: row.time_updated } } : {}),
      ...(entry ? { remote: { timeUpdated: entry.timeUpdated, messages: entry.messages } } : {}),
    };
    if (!row) return { ...common, state: 'only-remote' as const };
    if (!entry) return { ...common, state: 'only-local' as const };
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
    backups,
    encrypted: remote instanceof SealedRemote ? { keyId: remote.key.keyId() } : null,
  };
}
