import path from 'node:path';
import { exportToBlobFile, type ExportedBlob } from '../blob/blobFiles.js';
import { isBusy } from '../blob/sessionBlob.js';
import { assertSessionId, newCheckpointId } from '../format/ids.js';
import { blobKey } from '../format/layout.js';
import { FORMAT_VERSION, type Manifest, type ManifestSession, type SkippedSession } from '../format/schema.js';
import type { SessionRow } from '../opencode/opencode.js';
import { SESSMIG_VERSION } from '../version.js';
import type { Context } from './context.js';
import { SessmigError, usageError } from './errors.js';
import { mapPool } from './pool.js';
import { readManifest, readPointer, writeManifest, writePointer } from './remoteStore.js';
import { orderParentsFirst, withDescendants } from './sessionTree.js';
import { loadSyncState, saveSyncState, syncStateFile } from './syncState.js';
import { isInside } from './worktree.js';

export interface PushOptions {
  /** Limit to these sessions (and their children). */
  sessions?: string[];
  dryRun?: boolean;
}

export interface PushedSession {
  id: string;
  parentID: string | null;
  title: string;
  messages: number;
  rawBytes: number;
  storedBytes: number;
  /** Uploaded by this push (false: the remote already had the blob). */
  uploaded: boolean;
  /** Exported by this push (false: unchanged since the last sync, blob reused). */
  exported: boolean;
  busy: boolean;
}

export interface PushResult {
  worktree: string;
  remote: string;
  /** 'pushed': a new checkpoint is current; 'nothing': no sessions; 'dry-run': nothing written. */
  status: 'pushed' | 'nothing' | 'dry-run';
  checkpoint: string | null;
  previousCheckpoint: string | null;
  sessions: PushedSession[];
  skipped: SkippedSession[];
  /** Sessions that would be pushed (dry run). */
  planned: { id: string; parentID: string | null; title: string }[];
}

/** Finds the worktree's sessions (with their subagent children), parents first. */
export function selectSessions(rows: SessionRow[], root: string, only: string[] | undefined): SessionRow[] {
  const inWorktree = rows.filter((row) => isInside(root, row.directory));
  const nodes = rows.map((row) => ({ ...row, parentID: row.parent_id }));
  // Children live wherever their parent's tool ran them; they follow their parent.
  const roots = only ?? inWorktree.map((row) => row.id);
  if (only) {
    const known = new Set(inWorktree.map((row) => row.id));
    for (const id of only) {
      if (!known.has(id)) {
        const elsewhere = rows.find((row) => row.id === id);
        throw usageError(
          'unknown-session',
          elsewhere
            ? `session ${id} belongs to ${elsewhere.directory}, not to this worktree (${root})`
            : `session ${id} is not in this host's opencode database`,
          'list this worktree\'s sessions with `opencode session list`',
        );
      }
    }
  }
  const chosen = withDescendants(nodes, roots);
  return orderParentsFirst(nodes.filter((node) => chosen.has(node.id)));
}

export async function push(ctx: Context, options: PushOptions = {}): Promise<PushResult> {
  const { remote, worktree, opencode, report } = ctx;
  const only = options.sessions?.map((id) => assertSessionId(id, '--session'));
  const opencodeVersion = await opencode.version();
  const rows = await opencode.listSessions();
  const selected = selectSessions(rows, worktree.root, only);
  const previous = await readPointer(remote, worktree.key);
  const base: PushResult = {
    worktree: worktree.key,
    remote: remote.display,
    status: 'nothing',
    checkpoint: previous?.pointer.checkpoint ?? null,
    previousCheckpoint: previous?.pointer.checkpoint ?? null,
    sessions: [],
    skipped: [],
    planned: selected.map((row) => ({ id: row.id, parentID: row.parent_id, title: row.title })),
  };
  if (selected.length === 0) {
    report.info(`no opencode sessions in ${worktree.root}; nothing to push`);
    return base;
  }
  if (options.dryRun) {
    report.info(`would push ${selected.length} session(s) of worktree ${worktree.key} to ${remote.display}`);
    return { ...base, status: 'dry-run' };
  }

  report.info(`pushing ${selected.length} session(s) of worktree ${worktree.key} to ${remote.display}`);
  const stateFile = syncStateFile(ctx.paths.state, remote.display, worktree.key);
  const state = await loadSyncState(stateFile, remote.display, worktree.key);

  // Incremental: a session whose local time_updated is what it was when this host last synced it,
  // and whose blob the current checkpoint still carries, is neither exported nor uploaded again.
  const current = previous ? await readManifest(remote, worktree.key, previous.pointer.checkpoint).catch(() => undefined) : undefined;
  const currentById = new Map((current?.sessions ?? []).map((session) => [session.id, session]));
  const reused = new Map<string, ManifestSession>();
  for (const row of selected) {
    const base = state.sessions[row.id];
    const entry = currentById.get(row.id);
    if (base && entry && base.localTimeUpdated === row.time_updated && base.sha256 === entry.sha256) reused.set(row.id, entry);
  }
  if (reused.size > 0) report.info(`${reused.size} session(s) unchanged since the last sync: reusing their blobs`);

  const skipped: SkippedSession[] = [];
  const exported = await mapPool(
    selected.filter((row) => !reused.has(row.id)),
    ctx.jobs,
    async (row, index): Promise<{ row: SessionRow; blob: ExportedBlob; uploaded: boolean } | undefined> => {
      ctx.signal.throwIfAborted();
      const file = path.join(ctx.tempDir, `export-${index}.json.gz`);
      let blob: ExportedBlob;
      try {
        blob = await exportToBlobFile(opencode, row.id, file);
      } catch (error) {
        if (error instanceof SessmigError && error.code === 'session-gone') {
          report.warn(`session ${row.id} was deleted while pushing; skipped`);
          skipped.push({ id: row.id, reason: 'deleted before it could be exported' });
          return undefined;
        }
        throw error;
      }
      ctx.signal.throwIfAborted();
      const key = blobKey(worktree.key, blob.sha256);
      const existing = await remote.head(key);
      let uploaded = false;
      if (!existing || existing.size !== blob.storedBytes) {
        await remote.putFile(key, blob.file, blob.storedBytes);
        const check = await remote.head(key);
        if (!check || check.size !== blob.storedBytes) {
          throw new SessmigError('upload-unverified', `blob ${key} is not in the remote after its upload`, {
            hint: 're-run the push; nothing was made current',
          });
        }
        uploaded = true;
      }
      if (isBusy(blob.facts)) {
        report.warn(`session ${row.id} ("${row.title}") is mid-turn in opencode; pushed as it stands and flagged busy`);
      }
      return { row, blob, uploaded };
    },
    ctx.signal,
  );

  const done = exported.filter((item): item is NonNullable<typeof item> => item !== undefined);
  const fresh: ManifestSession[] = done.map(({ row, blob }) => ({
    id: row.id,
    parentID: blob.facts.parentID ?? null,
    title: blob.facts.title ?? row.title,
    directory: blob.facts.directory ?? row.directory,
    version: blob.facts.version ?? 'unknown',
    sha256: blob.sha256,
    contentHash: blob.contentHash,
    rawBytes: blob.rawBytes,
    storedBytes: blob.storedBytes,
    timeUpdated: blob.facts.timeUpdated ?? row.time_updated,
    messages: blob.facts.messages,
    busy: isBusy(blob.facts),
  }));
  // --session pushes some sessions: the checkpoint keeps the others as the current one had them.
  const selectedIds = new Set(selected.map((row) => row.id));
  const carried = only ? (current?.sessions ?? []).filter((session) => !selectedIds.has(session.id)) : [];
  const sessions = [...fresh, ...reused.values(), ...carried];
  if (sessions.length === 0) {
    report.warn('every session was deleted while pushing; nothing was pushed');
    return { ...base, skipped: sortSkipped(skipped) };
  }
  ctx.signal.throwIfAborted();
  const manifest: Manifest = {
    formatVersion: FORMAT_VERSION,
    kind: 'sessmig.checkpoint',
    id: newCheckpointId(),
    worktree: worktree.key,
    parent: previous?.pointer.checkpoint ?? null,
    createdAt: new Date().toISOString(),
    source: { host: ctx.host, worktreeRoot: worktree.root, opencodeVersion, sessmigVersion: SESSMIG_VERSION },
    sessions: orderParentsFirst(sessions),
    skipped: sortSkipped(skipped),
  };
  await writeManifest(remote, manifest);
  ctx.signal.throwIfAborted();
  await writePointer(remote, worktree.key, previous, { checkpoint: manifest.id, owner: previous?.pointer.owner ?? ctx.host }, ctx.host);
  report.info(`checkpoint ${manifest.id} is now current for worktree ${worktree.key}`);
  const uploadedIds = new Set(done.filter((item) => item.uploaded).map((item) => item.row.id));

  state.checkpoint = manifest.id;
  for (const { row, blob } of done) {
    state.sessions[row.id] = { contentHash: blob.contentHash, sha256: blob.sha256, localTimeUpdated: blob.facts.timeUpdated ?? row.time_updated };
  }
  await saveSyncState(stateFile, state).catch((error: unknown) => report.warn(`could not save the sync state: ${(error as Error).message}`));

  return {
    ...base,
    status: 'pushed',
    checkpoint: manifest.id,
    skipped: manifest.skipped,
    sessions: manifest.sessions.map((session) => ({
      id: session.id,
      parentID: session.parentID,
      title: session.title,
      messages: session.messages,
      rawBytes: session.rawBytes,
      storedBytes: session.storedBytes,
      uploaded: uploadedIds.has(session.id),
      exported: done.some((item) => item.row.id === session.id),
      busy: session.busy,
    })),
  };
}

function sortSkipped(skipped: SkippedSession[]): SkippedSession[] {
  return [...skipped].sort((a, b) => (a.id < b.id ? -1 : 1));
}
