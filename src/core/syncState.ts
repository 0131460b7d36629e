import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { exportToBlobFile } from '../blob/blobFiles.js';
import type { SessionExporter } from '../opencode/exporter.js';

/**
 * What this host remembers per remote and worktree: for each session, its content hash at the last
 * push or pull here (the sync base, for divergence detection) and opencode's time_updated of the
 * local copy then (if it still has that time, it still has that content: no export needed to know).
 */
export const SyncEntry = z.looseObject({
  contentHash: z.string(),
  sha256: z.string(),
  localTimeUpdated: z.number().nullable(),
});
export type SyncEntry = z.infer<typeof SyncEntry>;

export const SyncState = z.looseObject({
  formatVersion: z.literal(1),
  remote: z.string(),
  worktree: z.string(),
  checkpoint: z.string().nullable(),
  sessions: z.record(z.string(), SyncEntry),
  /** Set by `push --migrate`: the sessions were handed to another host. */
  handedAway: z.looseObject({ checkpoint: z.string(), at: z.string() }).nullable().optional(),
});
export type SyncState = z.infer<typeof SyncState>;

export function syncStateFile(stateDir: string, remoteDisplay: string, worktree: string): string {
  const remoteId = createHash('sha256').update(remoteDisplay).digest('hex').slice(0, 16);
  return path.join(stateDir, 'sync', remoteId, `${worktree}.json`);
}

export async function loadSyncState(file: string, remote: string, worktree: string): Promise<SyncState> {
  try {
    const parsed = SyncState.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) return parsed.data;
  } catch {
    // Missing or unreadable: start from nothing (the next sync rebuilds it).
  }
  return { formatVersion: 1, remote, worktree, checkpoint: null, sessions: {}, handedAway: null };
}

export async function saveSyncState(file: string, state: SyncState): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`; // unique per call: two commands may run in one process (main() as a library)
  await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
}

/** A fresh export of a local session, kept as a file (pull reuses it as the backup). */
export interface LocalExport {
  file: string;
  contentHash: string;
  messages: number;
}

/**
 * The content hash of a local session: from the sync base when opencode's time_updated is still
 * the one recorded there (no export needed), else from a fresh export written to `file`.
 */
export async function localContentHash(
  exporter: SessionExporter,
  row: { id: string; time_updated: number },
  base: SyncEntry | undefined,
  file: string,
): Promise<{ contentHash: string; exported?: LocalExport }> {
  if (base && base.localTimeUpdated === row.time_updated) return { contentHash: base.contentHash };
  const blob = await exportToBlobFile(exporter, row.id, file, { gzip: false });
  return { contentHash: blob.contentHash, exported: { file, contentHash: blob.contentHash, messages: blob.facts.messages } };
}
