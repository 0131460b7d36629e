import path from 'node:path';
import { exportToBlobFile, type ExportedBlob } from '../blob/blobFiles.js';
import { isBusy } from '../blob/sessionBlob.js';
import { assertSessionId, newCheckpointId } from '../format/ids.js';
import { blobKey } from '../format/layout.js';
import { FORMAT_VERSION, type Manifest, type ManifestSession, type SkippedSession } from '../format/schema.js';
import type { SessionRow } from '../opencode/opencode.js';
import { openExporter, parseExportVia } from '../opencode/exporter.js';
import { listSessionsWithTodos, type Todo } from '../opencode/todos.js';
import { SESSMIG_VERSION } from '../version.js';
import type { Context } from './context.js';
import { ExitCode, SessmigError, usageError } from './errors.js';
import { assertMayPush } from './ownership.js';
import { mapPool } from './pool.js';
import { readManifest, readPointer, writeManifest, writePointer } from './remoteStore.js';
import { orderParentsFirst, withDescendants } from './sessionTree.js';
import { loadSyncState, saveSyncState, syncStateFile } from './syncState.js';
import { isInside } from './worktree.js';
import { SealedRemote } from '../crypto/sealedRemote.js';

export interface PushOptions {
  /** Limit to these sessions (and their children). */
  sessions?: string[];
  dryRun?: boolean;
  /** Hand the sessions over: the new checkpoint's pointer is released (owner null). */
  migrate?: boolean;
  /** On a conflict (changed here and in the remote since the last sync), push the local copy anyway. */
  force?: boolean;
}

/**
 * What push did with a session: exported and stored ('pushed'), or kept the current checkpoint's
 * copy because it is unchanged ('reused'), newer in the remote while unchanged here
 * ('remote-newer': pull to get it), or changed on both sides since the last sync ('conflict':
 * refused; --force pushes the local copy).
 */
export type PushAction = 'pushed' | 'reused' | 'remote-newer' | 'conflict';

export interface PushedSession {
  id: string;
  action: PushAction;
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
  /** The worktree's owner after this push (null: released by --migrate). */
  owner: { hostId: string; hostname: string } | null;
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
  const { timing } = ctx;
  // One round of independent look-ups: the pointer, opencode's version and its session table.
  const [previous, opencodeVersion, { rows, todos }] = await timing.time('list', () =>
    Promise.all([readPointer(remote, worktree.key), opencode.version(), listSessionsWithTodos(opencode)]),
  );
  assertMayPush(previous?.pointer, ctx.host, worktree.key);
  const selected = selectSessions(rows, worktree.root, only);
  const result: PushResult = {
    worktree: worktree.key,
    remote: remote.display,
    status: 'nothing',
    owner: previous?.pointer.owner ?? null,
    checkpoint: previous?.pointer.checkpoint ?? null,
    previousCheckpoint: previous?.pointer.checkpoint ?? null,
    sessions: [],
    skipped: [],
    planned: selected.map((row) => ({ id: row.id, parentID: row.parent_id, title: row.title })),
  };
  if (selected.length === 0) {
    report.info(`worktree ${worktree.key}: no opencode sessions in ${worktree.root}; nothing to push`);
    return result;
  }
  if (options.dryRun) {
    report.info(`worktree ${worktree.key}: would push ${selected.length} session(s) to ${remote.display}`);
    return { ...result, status: 'dry-run' };
  }

  report.info(`worktree ${worktree.key}: pushing ${selected.length} session(s) to ${remote.display}`);
  const stateFile = syncStateFile(ctx.paths.state, remote.display, worktree.key);
  const state = await loadSyncState(stateFile, remote.display, worktree.key);
  const current = previous ? await timing.time('list', () => readManifest(remote, worktree.key, previous.pointer.checkpoint)) : undefined;
  const currentById = new Map((current?.sessions ?? []).map((session) => [session.id, session]));

  // Decide per session from the sync base, without exporting what did not change here:
  // local time_updated equal to the base's ⇒ the local content is the base's content.
  const kept = new Map<string, { entry: ManifestSession; action: PushAction }>();
  for (const row of selected) {
    const syncBase = state.sessions[row.id];
    const entry = currentById.get(row.id);
    if (!syncBase || !entry || syncBase.localTimeUpdated !== row.time_updated) continue;
    if (entry.contentHash === syncBase.contentHash) kept.set(row.id, { entry, action: 'reused' });
    else kept.set(row.id, { entry, action: 'remote-newer' });
  }
  const reusedCount = [...kept.values()].filter((item) => item.action === 'reused').length;
  if (reusedCount > 0) report.info(`${reusedCount} session(s) unchanged since the last sync: reusing their blobs`);

  const skipped: SkippedSession[] = [];
  const toExport = selected.filter((row) => !kept.has(row.id));
  const source = await timing.time('serve-start', () => openExporter(opencode, worktree.root, toExport.length, parseExportVia(ctx.env.SESSMIG_EXPORT_VIA), report));
  if (toExport.length > 0) timing.note(`exported ${toExport.length} session(s) through ${source.kind === 'server' ? 'one `opencode serve`' : '`opencode export` processes'}; ${kept.size} reused`);
  const progress = { done: 0, bytes: 0 };
  const exported = await mapPool(
    toExport,
    ctx.jobs,
    async (row, index): Promise<{ row: SessionRow; blob: ExportedBlob; uploaded: boolean } | undefined> => {
      ctx.signal.throwIfAborted();
      const file = path.join(ctx.tempDir, `export-${index}.json.gz`);
      let blob: ExportedBlob;
      try {
        blob = await exportToBlobFile(source.exporter, row.id, file, { timing });
      } catch (error) {
        if (error instanceof SessmigError && error.code === 'session-gone') {
          report.warn(`session ${row.id} was deleted while pushing; skipped`);
          skipped.push({ id: row.id, reason: 'deleted before it could be exported' });
          return undefined;
        }
        if (error instanceof SessmigError && error.code === 'export-unclear') {
          // Refused alone: the others go on, and the remote's copy (if any) stays in the checkpoint.
          report.warn(error.message);
          skipped.push({ id: row.id, reason: error.message.slice(0, 1024) });
          const entry = currentById.get(row.id);
          if (entry) kept.set(row.id, { entry, action: 'reused' });
          return undefined;
        }
        throw error;
      }
      const entry = currentById.get(row.id);
      const syncBase = state.sessions[row.id];
      const remoteMoved = entry !== undefined && entry.contentHash !== blob.contentHash && (!syncBase || entry.contentHash !== syncBase.contentHash);
      if (remoteMoved && !options.force) {
        kept.set(row.id, { entry, action: 'conflict' });
        return undefined;
      }
      ctx.signal.throwIfAborted();
      const uploaded = await timing.time('upload', () => storeBlob(ctx, blob));
      progress.done++;
      progress.bytes += blob.storedBytes;
      report.progress('pushed', progress.done, toExport.length, progress.bytes);
      if (isBusy(blob.facts)) {
        report.warn(`session ${row.id} ("${row.title}") is mid-turn in opencode; pushed as it stands and flagged busy`);
      }
      return { row, blob, uploaded };
    },
    ctx.signal,
  ).finally(() => source.close());

  const done = exported.filter((item): item is NonNullable<typeof item> => item !== undefined);
  const fresh: ManifestSession[] = done.map(({ row, blob }) => manifestEntry(row, blob, todos));
  // --session pushes some sessions: the checkpoint keeps the others as the current one had them.
  const selectedIds = new Set(selected.map((row) => row.id));
  const carried = only ? (current?.sessions ?? []).filter((session) => !selectedIds.has(session.id)) : [];
  const sessions = [...fresh, ...[...kept.values()].map((item) => item.entry), ...carried];
  if (remote instanceof SealedRemote) {
    // The first encrypted push of a worktree seals the blobs it reuses from plaintext checkpoints.
    const reused = [...kept.values()].map((item) => item.entry).concat(carried);
    const adopted = await mapPool(reused, ctx.jobs, (entry, index) => remote.adoptPlainBlob(entry.sha256, `adopt-${index}.json.gz`), ctx.signal);
    if (adopted.some(Boolean)) report.info(`sealed ${adopted.filter(Boolean).length} blob(s) this worktree had in plaintext`);
  }
  if (sessions.length === 0) {
    report.warn('every session was deleted while pushing; nothing was pushed');
    return { ...result, skipped: sortSkipped(skipped) };
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
  await timing.time('manifest', () => writeManifest(remote, manifest));
  ctx.signal.throwIfAborted();
  const owner = options.migrate ? null : ctx.host;
  await timing.time('pointer', () => writePointer(remote, worktree.key, previous, { checkpoint: manifest.id, owner }, ctx.host));
  report.info(`worktree ${worktree.key}: checkpoint ${manifest.id} is now current${options.migrate ? '; ownership released for another host to claim (sessmig pull --migrate)' : ''}`);

  state.checkpoint = manifest.id;
  for (const { row, blob } of done) {
    state.sessions[row.id] = { contentHash: blob.contentHash, sha256: blob.sha256, localTimeUpdated: blob.facts.timeUpdated ?? row.time_updated };
  }
  state.handedAway = options.migrate ? { checkpoint: manifest.id, at: new Date().toISOString() } : null;
  await saveSyncState(stateFile, state).catch((error: unknown) => report.warn(`could not save the sync state: ${(error as Error).message}`));

  const uploadedIds = new Set(done.filter((item) => item.uploaded).map((item) => item.row.id));
  const exportedIds = new Set(done.map((item) => item.row.id));
  const pushed: PushedSession[] = manifest.sessions
    .filter((session) => selectedIds.has(session.id))
    .map((session) => ({
      id: session.id,
      action: exportedIds.has(session.id) ? 'pushed' : (kept.get(session.id)?.action ?? 'reused'),
      parentID: session.parentID,
      title: session.title,
      messages: session.messages,
      rawBytes: session.rawBytes,
      storedBytes: session.storedBytes,
      uploaded: uploadedIds.has(session.id),
      exported: exportedIds.has(session.id),
      busy: session.busy,
    }));
  for (const item of pushed) {
    if (item.action === 'conflict') {
      report.warn(
        `session ${item.id} ("${item.title}") changed here and in the remote since the last sync; the remote copy was kept ` +
          '(pull to see both sides, or push --force to overwrite the remote copy)',
      );
    } else if (item.action === 'remote-newer') {
      report.info(`session ${item.id} is newer in the remote and unchanged here; run \`sessmig pull\` to get it`);
    }
  }
  return { ...result, status: 'pushed', owner, checkpoint: manifest.id, skipped: manifest.skipped, sessions: pushed };
}

/** A session's manifest entry, from its opencode row and its exported blob. */
export function manifestEntry(row: SessionRow, blob: ExportedBlob, todos: Map<string, Todo[]>): ManifestSession {
  return {
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
    ...(todos.has(row.id) ? { todos: todos.get(row.id) } : {}),
  };
}

/** Uploads a blob unless the remote already has it; verifies it is there. Returns whether it uploaded. */
async function storeBlob(ctx: Context, blob: ExportedBlob): Promise<boolean> {
  const key = blobKey(ctx.worktree.key, blob.sha256);
  const existing = await ctx.remote.head(key);
  if (existing && existing.size === blob.storedBytes) {
    // Reused: refresh its time so a concurrent prune's grace period protects it.
    await ctx.remote.touch(key);
    return false;
  }
  await ctx.remote.putFile(key, blob.file, blob.storedBytes);
  const check = await ctx.remote.head(key);
  if (!check || check.size !== blob.storedBytes) {
    throw new SessmigError('upload-unverified', `blob ${key} is not in the remote after its upload`, {
      hint: 're-run the push; nothing was made current',
    });
  }
  return true;
}

export function pushExitCode(result: PushResult): ExitCode {
  return result.skipped.length > 0 || result.sessions.some((session) => session.action === 'conflict') ? ExitCode.partial : ExitCode.ok;
}

function sortSkipped(skipped: SkippedSession[]): SkippedSession[] {
  return [...skipped].sort((a, b) => (a.id < b.id ? -1 : 1));
}
