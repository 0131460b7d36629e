import { worktreesPrefix } from '../format/layout.js';
import { WORKTREE_KEY } from '../format/ids.js';
import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { readMarker, type EncryptionMarker } from '../crypto/sealedRemote.js';
import { listCheckpointIds, readManifest, readPointer } from './remoteStore.js';
import { checkoutOf } from './plan.js';

export interface CheckpointSummary {
  id: string;
  current: boolean;
  createdAt: string | null;
  host: string | null;
  hostId: string | null;
  sessions: number | null;
  storedBytes: number | null;
  rawBytes: number | null;
  /** The checkouts its sessions live in (host name, root, branch) with their session counts. */
  checkouts?: { host: string; root: string; branch: string | null; sessions: number }[];
  /** Sessions recorded as deleted (tombstones). */
  deleted?: number;
  error?: string;
}

export interface WorktreeSummary {
  worktree: string;
  checkpoint: string | null;
  owner: string | null;
  ownerHostId: string | null;
  generation: number | null;
  checkpoints: CheckpointSummary[];
  /** Sealed with the key of this id (null: in the clear); `readable`: this host has that key. */
  encrypted: { keyId: string; readable: boolean } | null;
  error?: string;
}

/** Every worktree in the remote (or just one), with its checkpoints, newest last. */
export async function listRemote(
  remote: Remote,
  only?: string,
  /** Opens an encrypted worktree with this host's key, when it has the right one. */
  unseal?: (worktree: string, marker: EncryptionMarker) => Promise<Remote | undefined>,
): Promise<WorktreeSummary[]> {
  const keys = only ? [only] : await listWorktreeKeys(remote);
  const out: WorktreeSummary[] = [];
  for (const worktree of keys) {
    const summary: WorktreeSummary = { worktree, checkpoint: null, owner: null, ownerHostId: null, generation: null, checkpoints: [], encrypted: null };
    let reader = remote;
    try {
      const marker = await readMarker(remote, worktree);
      if (marker) {
        const opened = unseal ? await unseal(worktree, marker) : undefined;
        summary.encrypted = { keyId: marker.keyId, readable: opened !== undefined };
        if (opened) reader = opened;
      }
    } catch (error) {
      if (!(error instanceof SessmigError)) throw error;
      summary.error = error.message;
    }
    try {
      const pointer = await readPointer(remote, worktree);
      if (pointer) {
        summary.checkpoint = pointer.pointer.checkpoint;
        summary.owner = pointer.pointer.owner ? pointer.pointer.owner.hostname : null;
        summary.ownerHostId = pointer.pointer.owner ? pointer.pointer.owner.hostId : null;
        summary.generation = pointer.pointer.generation;
      }
    } catch (error) {
      if (!(error instanceof SessmigError)) throw error;
      summary.error = error.message;
    }
    for (const id of await listCheckpointIds(remote, worktree)) {
      const item: CheckpointSummary = { id, current: id === summary.checkpoint, createdAt: null, host: null, hostId: null, sessions: null, storedBytes: null, rawBytes: null };
      if (summary.encrypted && !summary.encrypted.readable) {
        summary.checkpoints.push(item);
        continue;
      }
      try {
        const manifest = await readManifest(reader, worktree, id);
        item.createdAt = manifest.createdAt;
        item.host = manifest.source.host.hostname;
        item.hostId = manifest.source.host.hostId;
        item.sessions = manifest.sessions.length;
        item.storedBytes = manifest.sessions.reduce((sum, s) => sum + s.storedBytes, 0);
        item.rawBytes = manifest.sessions.reduce((sum, s) => sum + s.rawBytes, 0);
        const checkouts = new Map<string, { host: string; root: string; branch: string | null; sessions: number }>();
        for (const session of manifest.sessions) {
          const checkout = checkoutOf(manifest, session);
          const key = `${checkout.host.hostId}\u0000${checkout.root}\u0000${checkout.branch}`;
          const found = checkouts.get(key) ?? { host: checkout.host.hostname || checkout.host.hostId, root: checkout.root, branch: checkout.branch, sessions: 0 };
          found.sessions++;
          checkouts.set(key, found);
        }
        item.checkouts = [...checkouts.values()];
        item.deleted = manifest.deleted?.length ?? 0;
      } catch (error) {
        if (!(error instanceof SessmigError)) throw error;
        item.error = error.message;
      }
      summary.checkpoints.push(item);
    }
    out.push(summary);
  }
  return out;
}

async function listWorktreeKeys(remote: Remote): Promise<string[]> {
  const prefix = worktreesPrefix();
  const keys = new Set<string>();
  for await (const item of remote.list(prefix)) {
    const name = item.key.slice(prefix.length).split('/')[0];
    if (name && WORKTREE_KEY.test(name)) keys.add(name);
  }
  return [...keys].sort();
}
