import { existsSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { downloadRebasedBlob, exportToBlobFile } from '../blob/blobFiles.js';
import { assertCheckpointId, assertSessionId, newCheckpointId } from '../format/ids.js';
import { blobKey } from '../format/layout.js';
import type { Manifest, ManifestSession } from '../format/schema.js';
import type { SessionRow } from '../opencode/opencode.js';
import { createBackupDir, writeBackupIndex, type BackupIndex } from './backups.js';
import type { Context } from './context.js';
import { openImporter, type ReplayMode, type SessionImporter } from '../opencode/importer.js';
import { checkCompatibility } from '../opencode/versions.js';
import { readSessionState, readTodos, sameTodos, todoColumnsKnown, writeTodos, type SessionState, type Todo } from '../opencode/todos.js';
import { ExitCode, SessmigError, usageError } from './errors.js';
import { mapPool } from './pool.js';
import { assertMayClaim } from './ownership.js';
import { readManifest, readPointer, writePointer } from './remoteStore.js';
import { orderParentsFirst, withDescendants } from './sessionTree.js';
import { loadSyncState, localContentHash, saveSyncState, syncStateFile, type LocalExport, type SyncState } from './syncState.js';
import { isInside } from './worktree.js';
import { findUploads, takeInUploads, type TakenUpload } from './incoming.js';
import { TicketRemote } from '../remote/ticketRemote.js';
import { bringSessionFiles } from './sessionFiles.js';

export interface PullOptions {
  checkpoint?: string;
  dryRun?: boolean;
  /** On a conflict (changed on both sides since the last sync): take the remote copy, back up the local one. */
  force?: boolean;
  /** On a conflict: keep the local copy. */
  keepLocal?: boolean;
  /** Claim ownership (from a released worktree, or with force from another owner) once the pull succeeded. */
  migrate?: boolean;
  /** How sessions are brought in: replayed through one opencode serve where safe, or imported. */
  replay?: ReplayMode;
}

/**
 * What pull does with each session of the checkpoint:
 * - new: not here yet → import.
 * - unchanged: the same content, already bound to this worktree → nothing.
 * - replace: here with other content that the remote changed since the last sync (or the same
 *   content bound to another folder, or --force on a conflict) → back up, delete, import.
 * - keep-local: changed here since the last sync while the remote did not change (or
 *   --keep-local on a conflict) → nothing.
 * - conflict: changed on both sides since the last sync → refused (exit 3).
 * - refused: its blob failed verification → nothing of it (nor of its children) is imported.
 */
export type PullAction = 'new' | 'unchanged' | 'replace' | 'keep-local' | 'conflict' | 'refused';

export interface PulledSession {
  id: string;
  parentID: string | null;
  title: string;
  action: PullAction;
  reason?: string;
  /** How the session was brought in, when it was. */
  via?: 'replay' | 'import';
  messages: number;
  directory: string;
  local?: { timeUpdated: number; messages?: number };
  remote: { timeUpdated: number; messages: number };
}

export interface PullResult {
  worktree: string;
  remote: string;
  checkpoint: string;
  status: 'pulled' | 'dry-run';
  /** The worktree's owner after this pull; `claimed` when --migrate made this host the owner. */
  owner: { hostId: string; hostname: string } | null;
  claimed: boolean;
  sessions: PulledSession[];
  /** Local sessions deleted with a replaced parent and restored from their backup. */
  restored: string[];
  backupDir: string | null;
  /** Uploads through upload tickets that this pull verified and made current first. */
  uploads: TakenUpload[];
}

interface Plan {
  session: ManifestSession;
  local: SessionRow | undefined;
  action: PullAction;
  reason?: string;
  importDir: string;
  /** A fresh export of the local copy (the backup), when one was made. */
  localExport?: LocalExport;
}

export async function pull(ctx: Context, options: PullOptions = {}): Promise<PullResult> {
  const { remote, worktree, opencode, report } = ctx;
  let checkpoint = options.checkpoint === undefined ? undefined : assertCheckpointId(options.checkpoint);
  if (options.migrate && checkpoint !== undefined) {
    throw usageError('bad-flag', '--migrate takes the current checkpoint; it cannot be combined with --checkpoint', 'drop --checkpoint');
  }
  const { timing } = ctx;
  let pointer = await timing.time('list', () => readPointer(remote, worktree.key));
  if (options.migrate && pointer) assertMayClaim(pointer.pointer, ctx.host, worktree.key, options.force === true);
  // Uploads through upload tickets become current first (verified), unless a checkpoint is asked for.
  let taken: TakenUpload[] = [];
  if (checkpoint === undefined && !(remote instanceof TicketRemote)) {
    if (options.dryRun) {
      const { pending } = await timing.time('list', () => findUploads(remote, worktree.key));
      for (const id of pending) report.info(`would take in upload ${id} (through an upload ticket) before pulling`);
    } else {
      ({ pointer, taken } = await takeInUploads(ctx, pointer, { force: options.force === true, claiming: options.migrate === true }));
    }
  }
  if (checkpoint === undefined) {
    if (!pointer) {
      throw new SessmigError('nothing-pushed', `nothing was pushed for worktree ${worktree.key} to ${remote.display}`, {
        hint: 'push from the host that has the sessions (sessmig push), or check --remote and --worktree (see `sessmig ls`)',
      });
    }
    checkpoint = pointer.pointer.checkpoint;
  }
  const manifest = await timing.time('list', () => readManifest(remote, worktree.key, checkpoint));
  const stateFile = syncStateFile(ctx.paths.state, remote.display, worktree.key);
  const state = await loadSyncState(stateFile, remote.display, worktree.key);
  // A host that never pulled this worktree from this remote (a hand-over to a fresh box) will
  // most likely only add sessions: `opencode serve` for the replay starts now, beside the listing,
  // the planning and the downloads. Should a local session turn out to be replaced after all, it is
  // stopped before anything is deleted, and the pull goes on as it would have.
  // Whatever importer started early is closed however the pull ends (closing twice is harmless).
  let early: Promise<SessionImporter> | undefined;
  const startEarly = (count: number) => {
    early = openImporter(opencode, worktree.root, count, options.replay ?? 'auto', report, timing);
    early.catch(() => undefined); // awaited where it is used; this only keeps a failure from going unhandled meanwhile
  };
  const closeEarly = async () => {
    const importer = await early?.catch(() => undefined);
    early = undefined;
    await importer?.close();
  };
  if (!options.dryRun && Object.keys(state.sessions).length === 0 && manifest.sessions.length >= 2) startEarly(manifest.sessions.length);
  try {
    return await pullPlanned();
  } finally {
    await closeEarly();
  }

  async function pullPlanned(): Promise<PullResult> {
    const [localRows, localVersion] = await timing.time('list', () => Promise.all([opencode.listSessions(), opencode.version()]));
    assertVersionsCompatible(manifest.source.opencodeVersion, localVersion, options.force === true, report);
    const localById = new Map(localRows.map((row) => [row.id, row]));

    report.info(`pulling checkpoint ${manifest.id} of worktree ${worktree.key} (${manifest.sessions.length} session(s)) into ${worktree.root}`);
    const plans = await timing.time('plan', () =>
      mapPool(manifest.sessions, ctx.jobs, (session, index) => planSession(ctx, manifest, session, localById.get(session.id), state, options, index)),
    );
    const result: PullResult = {
      worktree: worktree.key,
      remote: remote.display,
      checkpoint: manifest.id,
      status: options.dryRun ? 'dry-run' : 'pulled',
      owner: pointer?.pointer.owner ?? null,
      claimed: false,
      sessions: [],
      restored: [],
      backupDir: null,
      uploads: taken,
    };
    if (options.dryRun) {
      result.sessions = plans.map(describe);
      return result;
    }

    // Snapshot objects and tool outputs first, and how the blobs' paths move: see sessionFiles.ts.
    const carried = await bringSessionFiles(ctx, manifest, localVersion);

    // Download and verify every blob before touching any local session.
    const toImport = plans.filter((plan) => plan.action === 'new' || plan.action === 'replace');
    const files = new Map<string, string>();
    // When nothing local is replaced (a first pull, a hand-over to a fresh host), no session is
    // deleted before the imports: `opencode serve` for the replay can start while the blobs download.
    if (toImport.length > 0 && !toImport.some((plan) => plan.action === 'replace')) {
      if (!early) startEarly(toImport.length);
    } else {
      await closeEarly(); // sessions are deleted before the imports: no server may run meanwhile
    }
    await mapPool(
      toImport,
      ctx.jobs,
      async (plan, index) => {
        const file = path.join(ctx.tempDir, `pull-${index}.json`);
        try {
          await timing.time('download', () => downloadRebasedBlob(remote, blobKey(worktree.key, plan.session.sha256), plan.session, plan.importDir, file, localVersion, carried.paths));
          files.set(plan.session.id, file);
        } catch (error) {
          // Damaged, or holding what this opencode would reject half-way (adapters.ts): refused alone.
          if (!(error instanceof SessmigError) || (error.code !== 'blob-corrupt' && error.code !== 'blob-unfit')) throw error;
          plan.action = 'refused';
          plan.reason = error.message;
          report.warn(error.message);
        }
      },
      ctx.signal,
    );
    // A refused parent takes its children with it: they would arrive orphaned.
    const refused = withDescendants(
      manifest.sessions,
      plans.filter((plan) => plan.action === 'refused').map((plan) => plan.session.id),
    );
    for (const plan of plans) {
      if (refused.has(plan.session.id) && plan.action !== 'refused' && (plan.action === 'new' || plan.action === 'replace')) {
        plan.action = 'refused';
        plan.reason = 'its parent session was refused';
      }
    }
    ctx.signal.throwIfAborted();

    // Deleting a session deletes its children: every local session under a replaced one is backed up
    // and comes back (from the remote if the checkpoint has it unchanged or newer, else from its backup).
    const replaced = plans.filter((plan) => plan.action === 'replace').map((plan) => plan.session.id);
    const localNodes = localRows.map((row) => ({ ...row, parentID: row.parent_id }));
    const cascade = withDescendants(localNodes, replaced);
    const planById = new Map(plans.map((plan) => [plan.session.id, plan]));
    const restoreFromBackup: SessionRow[] = [];
    for (const id of cascade) {
      const plan = planById.get(id);
      if (plan && plan.action === 'replace') continue;
      if (plan && plan.action === 'unchanged' && !refused.has(id)) {
        // Same content as the remote: bring it back from the remote copy.
        const file = path.join(ctx.tempDir, `pull-cascade-${id}.json`);
        await downloadRebasedBlob(remote, blobKey(worktree.key, plan.session.sha256), plan.session, plan.importDir, file, localVersion, carried.paths);
        files.set(id, file);
        plan.action = 'replace';
        plan.reason = 'its parent was replaced';
        continue;
      }
      restoreFromBackup.push(localById.get(id)!);
    }

    const deleting = orderParentsFirst(localNodes.filter((node) => cascade.has(node.id)));
    const importing = orderParentsFirst(
      plans
        .filter((plan) => files.has(plan.session.id) && (plan.action === 'new' || plan.action === 'replace'))
        .map((plan) => ({ ...plan, id: plan.session.id, parentID: plan.session.parentID })),
    );
    // Every pull that changes something leaves a record (with backups of what it deletes), for
    // rollback here and for `sessmig undo` later. It counts only once marked complete.
    let backupDir: string | null = null;
    let index: BackupIndex | undefined;
    const backups = new Map<string, string>();
    const backupTodos = new Map<string, Todo[]>();
    if (deleting.length > 0 || importing.length > 0) {
      const pullId = newCheckpointId();
      backupDir = await createBackupDir(ctx.paths.state, worktree.key, pullId);
      index = {
        formatVersion: 1,
        worktree: worktree.key,
        worktreeRoot: worktree.root,
        pullId,
        createdAt: new Date().toISOString(),
        checkpoint: manifest.id,
        complete: false,
        imported: importing.map((item) => item.id),
        sessions: [],
      };
      await mapPool(deleting, ctx.jobs, async (node) => {
        const file = path.join(backupDir!, `${node.id}.json`);
        // Planning already exported a local copy whose content was unknown: that export is the backup.
        const planned = planById.get(node.id)?.localExport;
        const blob = planned
          ? await timing.time('backup', async () => (await copyFile(planned.file, file), { messages: planned.messages, contentHash: planned.contentHash }))
          : await timing.time('backup', async () => {
              const exported = await exportToBlobFile(opencode, node.id, file, { gzip: false });
              return { messages: exported.facts.messages, contentHash: exported.contentHash };
            });
        backups.set(node.id, file);
        index!.sessions.push({
          id: node.id,
          parentID: node.parent_id,
          title: node.title,
          directory: node.directory,
          reason: planById.get(node.id)?.action === 'replace' ? 'replaced by the pull' : 'deleted with its parent',
          file: `${node.id}.json`,
          messages: blob.messages,
          contentHash: blob.contentHash,
        });
      }, ctx.signal);
      for (const [id, todos] of await readTodos(opencode, deleting.map((node) => node.id))) backupTodos.set(id, todos);
      for (const entry of index.sessions) if (backupTodos.has(entry.id)) entry.todos = backupTodos.get(entry.id);
      index.sessions.sort((x, y) => (x.id < y.id ? -1 : 1));
      await writeBackupIndex(backupDir, index);
      if (deleting.length > 0) {
        result.backupDir = backupDir;
        report.info(`backed up ${deleting.length} local session(s) to ${backupDir}`);
      }
    }

    ctx.signal.throwIfAborted();
    const journal = new Journal(ctx, backups, localById, backupTodos);
    let verified = new Map<string, { time_updated: number }>();
    const imported = { done: 0, bytes: 0 };
    const paths = new Map<string, 'replay' | 'import'>();
    try {
      // Delete the topmost replaced sessions (opencode deletes their children with them).
      for (const node of deleting) {
        if (node.parentID !== null && cascade.has(node.parentID)) continue;
        await timing.time('delete', () => opencode.deleteSession(node.id, worktree.root));
        journal.deleted(node.id);
      }
      const importer = early ? await early : await openImporter(opencode, worktree.root, importing.length, options.replay ?? 'auto', report, timing);
      early = undefined; // closed below, by the imports
      if (importing.length > 0) timing.note(`brought ${importing.length} session(s) in through ${importer.kind === 'replay' ? 'one `opencode serve` (replay)' : '`opencode import` processes'}`);
      // One at a time either way: two `opencode import` processes write the same database, and on a
      // loaded machine one waited past opencode's ~5 s busy timeout and failed ("database is locked").
      await importInLevels(importing, 1, async (plan) => {
        ctx.signal.throwIfAborted();
        journal.importing(plan.session.id);
        const how = await timing.time(importer.kind === 'replay' ? 'bring-in' : 'import', () =>
          importer.importSession(files.get(plan.session.id)!, plan.importDir, plan.session.id),
        );
        paths.set(plan.session.id, how);
        imported.done++;
        imported.bytes += plan.session.rawBytes;
        report.progress('imported', imported.done, importing.length, imported.bytes);
      }).finally(() => importer.close());
      for (const row of orderParentsFirst(restoreFromBackup.map((row) => ({ ...row, parentID: row.parent_id })))) {
        journal.importing(row.id);
        await opencode.importFile(backups.get(row.id)!, existsSync(row.directory) ? row.directory : worktree.root, row.id);
        result.restored.push(row.id);
      }
      let state: SessionState | undefined;
      if (importing.length === 0 && restoreFromBackup.length === 0) {
        verified = localById;
      } else {
        state = await timing.time('verify', () => readSessionState(opencode, [...new Set([...manifest.sessions.map((session) => session.id), ...importing.map((plan) => plan.session.id)])]));
        verified = verifyImports(
          importing.map((plan) => ({ id: plan.session.id, directory: plan.importDir, messages: plan.session.messages })),
          state,
        );
        await timing.time('verify', () => carried.verify(importing.map((plan) => plan.session.id)));
      }
      await timing.time('todos', () => restoreTodos(ctx, plans, state));
    } catch (error) {
      await journal.rollback(error);
      throw error;
    }

    // Remember what is now in sync here.
    if (index && backupDir) {
      index.complete = true;
      await writeBackupIndex(backupDir, index).catch((error: unknown) => report.warn(`could not record this pull for undo: ${(error as Error).message}`));
    }
    const after = verified;
    state.checkpoint = manifest.id;
    for (const plan of plans) {
      const row = after.get(plan.session.id);
      if (!row) continue;
      if (plan.action === 'new' || plan.action === 'replace' || plan.action === 'unchanged') {
        state.sessions[plan.session.id] = { contentHash: plan.session.contentHash, sha256: plan.session.sha256, localTimeUpdated: row.time_updated };
      }
    }
    await saveSyncState(stateFile, state).catch((error: unknown) => report.warn(`could not save the sync state: ${(error as Error).message}`));

    result.sessions = plans.map((plan) => ({ ...describe(plan), ...(paths.has(plan.session.id) ? { via: paths.get(plan.session.id) } : {}) }));
    // Claim last: the pointer moves only after every session is here, so a failed pull leaves it alone.
    if (options.migrate && pointer && pointer.pointer.owner?.hostId !== ctx.host.hostId) {
      const unresolved = result.sessions.filter((session) => session.action === 'conflict' || session.action === 'refused');
      if (unresolved.length > 0) {
        report.warn(`ownership not taken: ${unresolved.length} session(s) were not brought in (see above); resolve them and re-run \`sessmig pull --migrate\``);
      } else {
        const claimed = await timing.time('pointer', () => writePointer(remote, worktree.key, pointer, { checkpoint: pointer.pointer.checkpoint, owner: ctx.host }, ctx.host));
        result.owner = claimed.pointer.owner;
        result.claimed = true;
        state.handedAway = null;
        report.info(`worktree ${worktree.key}: this host (${ctx.host.hostname}) now owns the sessions`);
      }
    }
    await saveSyncState(stateFile, state).catch((error: unknown) => report.warn(`could not save the sync state: ${(error as Error).message}`));
    for (const session of result.sessions) {
      if (session.action === 'conflict') {
        report.warn(
          `session ${session.id} ("${session.title}") changed here and in the remote since the last sync: ` +
            `local ${formatTime(session.local?.timeUpdated)} / ${session.local?.messages ?? '?'} messages, ` +
            `remote ${formatTime(session.remote.timeUpdated)} / ${session.remote.messages} messages; left as it is ` +
            '(re-run with --force to take the remote copy, keeping a backup, or --keep-local)',
        );
      }
    }
    return result;
  }
}

/** Decides what to do with one session, exporting the local copy only when its content is unknown. */
async function planSession(
  ctx: Context,
  manifest: Manifest,
  session: ManifestSession,
  local: SessionRow | undefined,
  state: SyncState,
  options: PullOptions,
  index: number,
): Promise<Plan> {
  const importDir = rebaseDirectory(session.directory, manifest.source.worktreeRoot, ctx.worktree.root);
  if (!local) return { session, local, action: 'new', importDir };
  const base = state.sessions[session.id];
  const { contentHash: localHash, exported: localExport } = await localContentHash(ctx.opencode, local, base, path.join(ctx.tempDir, `local-${index}.json`));
  const plan: Plan = { session, local, action: 'unchanged', importDir, ...(localExport ? { localExport } : {}) };
  if (localHash === session.contentHash) {
    if (local.directory !== importDir) {
      plan.action = 'replace';
      plan.reason = `bound to ${local.directory}; rebinding to ${importDir}`;
    }
    return plan;
  }
  if (base && localHash === base.contentHash) {
    plan.action = 'replace';
    plan.reason = 'changed in the remote since the last sync';
  } else if (base && session.contentHash === base.contentHash) {
    plan.action = 'keep-local';
    plan.reason = 'changed here since the last sync; push to publish it';
  } else if (options.force) {
    plan.action = 'replace';
    plan.reason = 'conflict resolved with --force: remote copy taken, local copy backed up';
  } else if (options.keepLocal) {
    plan.action = 'keep-local';
    plan.reason = 'conflict resolved with --keep-local';
  } else {
    plan.action = 'conflict';
    plan.reason = base ? 'changed here and in the remote since the last sync' : 'differs from the remote copy and was never synced on this host';
  }
  return plan;
}

/** Refuses, before anything is imported, a checkpoint this opencode cannot import faithfully. */
function assertVersionsCompatible(source: string, destination: string, force: boolean, report: Context['report']): void {
  const compatibility = checkCompatibility(source, destination);
  if (compatibility.verdict === 'compatible') report.warn(compatibility.note);
  if (compatibility.verdict !== 'incompatible') return;
  const why = compatibility.breaks.map((item) => item.description).join('; ');
  if (force) {
    report.warn(`--force: importing sessions exported by opencode ${source} into ${destination} despite a known schema break (${why})`);
    return;
  }
  throw new SessmigError('version-skew', `this checkpoint was exported by opencode ${source}, which opencode ${destination} here cannot import faithfully: ${why}`, {
    hint: `${compatibility.breaks.map((item) => item.upgrade).join('; ')}; or --force to import anyway. Nothing was imported.`,
    data: { source, destination, breaks: compatibility.breaks.map((item) => item.id) },
  });
}

/** The source directory's place inside the source worktree, moved to this worktree. */
export function rebaseDirectory(sourceDir: string, sourceRoot: string, root: string): string {
  if (isInside(sourceRoot, sourceDir)) {
    const target = path.join(root, path.relative(sourceRoot, sourceDir));
    if (existsSync(target)) return target;
  }
  return root;
}

function describe(plan: Plan): PulledSession {
  return {
    id: plan.session.id,
    parentID: plan.session.parentID,
    title: plan.session.title,
    action: plan.action,
    ...(plan.reason ? { reason: plan.reason } : {}),
    messages: plan.session.messages,
    directory: plan.importDir,
    ...(plan.local ? { local: { timeUpdated: plan.local.time_updated, ...(plan.localExport ? { messages: plan.localExport.messages } : {}) } } : {}),
    remote: { timeUpdated: plan.session.timeUpdated, messages: plan.session.messages },
  };
}

export function pullExitCode(result: PullResult): ExitCode {
  return result.sessions.some((session) => session.action === 'conflict' || session.action === 'refused') ? ExitCode.partial : ExitCode.ok;
}

async function importInLevels<T extends { id: string; parentID: string | null }>(items: T[], jobs: number, fn: (item: T) => Promise<void>): Promise<void> {
  const ids = new Set(items.map((item) => item.id));
  const depth = new Map<string, number>();
  for (const item of items) {
    const parentDepth = item.parentID !== null && ids.has(item.parentID) ? (depth.get(item.parentID) ?? 0) + 1 : 0;
    depth.set(item.id, parentDepth);
  }
  const levels = Math.max(-1, ...depth.values());
  for (let level = 0; level <= levels; level++) {
    await mapPool(items.filter((item) => depth.get(item.id) === level), jobs, fn);
  }
}

/**
 * Makes the todo list of every session that now equals the checkpoint's copy equal the
 * checkpoint's list (opencode's export does not carry todos). Skipped, with a warning, where the
 * destination's todo table is not the one sessmig knows.
 */
async function restoreTodos(ctx: Context, plans: Plan[], known: SessionState | undefined): Promise<void> {
  const targets = plans.filter((plan) => plan.action === 'new' || plan.action === 'replace' || plan.action === 'unchanged');
  const withTodos = targets.filter((plan) => (plan.session.todos ?? []).length > 0);
  // Fresh imports have no todos: nothing to compare unless the checkpoint carries some.
  const compare = targets.filter((plan) => plan.action === 'unchanged' || (plan.session.todos ?? []).length > 0);
  if (compare.length === 0) return;
  // What verify read (every session of the checkpoint) serves here too; else one query of its own.
  const state = known ?? (await readSessionState(ctx.opencode, compare.map((plan) => plan.session.id)));
  const changes = new Map<string, Todo[]>();
  for (const plan of compare) {
    if (!sameTodos(state.todos.get(plan.session.id), plan.session.todos)) changes.set(plan.session.id, plan.session.todos ?? []);
  }
  if (changes.size === 0) return;
  if (!todoColumnsKnown(state.todoColumns)) {
    ctx.report.warn(`this opencode's todo table differs from the one sessmig knows; the todo lists of ${withTodos.length} session(s) were not restored`);
    return;
  }
  await writeTodos(ctx.opencode, changes, { emptyNow: [...changes.keys()].every((id) => !state.todos.has(id)) });
}

/**
 * Confirms through opencode's own database that every import landed whole and in place, and
 * returns the rows of every session of the checkpoint (their time_updated goes to the sync base).
 */
function verifyImports(
  expected: { id: string; directory: string; messages: number }[],
  state: SessionState,
): Map<string, { id: string; directory: string; messages: number; time_updated: number }> {
  const byId = state.rows;
  for (const item of expected) {
    const row = byId.get(item.id);
    if (!row) throw new SessmigError('import-unverified', `opencode reported session ${item.id} imported, but its database does not have it`, { hint: 'nothing was kept; re-run the pull' });
    if (row.messages !== item.messages) {
      throw new SessmigError('import-unverified', `session ${item.id} has ${row.messages} messages after its import, expected ${item.messages}`, {
        hint: 'the local opencode may not accept this blob; check that this opencode version is supported (README, "opencode versions")',
      });
    }
    if (row.directory !== item.directory) {
      throw new SessmigError('import-unverified', `session ${item.id} landed in ${row.directory}, expected ${item.directory}`, {
        hint: 'the local opencode may not honour the rebase; check that this opencode version is supported (README, "opencode versions")',
      });
    }
  }
  return byId;
}

/** Undo log for one pull: what it deleted (with backups) and what it imported. */
class Journal {
  private readonly deletedIds: string[] = [];
  private readonly importedIds: string[] = [];

  constructor(
    private readonly ctx: Context,
    private readonly backups: Map<string, string>,
    private readonly localById: Map<string, SessionRow>,
    private readonly todos: Map<string, Todo[]>,
  ) {}

  deleted(id: string): void {
    this.deletedIds.push(id);
  }

  importing(id: string): void {
    this.importedIds.push(id);
  }

  /** Puts the local sessions back as they were before the pull started. */
  async rollback(cause: unknown): Promise<void> {
    const { report, worktree } = this.ctx;
    const opencode = this.ctx.opencode.uninterruptible();
    report.warn(`pull failed (${(cause as Error).message}); restoring the local sessions as they were`);
    const problems: string[] = [];
    const present = new Set((await opencode.listSessions().catch(() => [])).map((row) => row.id));
    // Remove what this pull brought in (partial imports included), children first.
    for (const id of [...this.importedIds].reverse()) {
      if (!present.has(id)) continue;
      await opencode.deleteSession(id, worktree.root).catch((error: unknown) => problems.push(`delete ${id}: ${(error as Error).message}`));
    }
    // Re-import every backed-up session, parents first.
    const rows = [...this.backups.keys()].map((id) => this.localById.get(id)!).map((row) => ({ ...row, parentID: row.parent_id }));
    for (const row of orderParentsFirst(rows)) {
      const dir = existsSync(row.directory) ? row.directory : worktree.root;
      await opencode.importFile(this.backups.get(row.id)!, dir, row.id).catch((error: unknown) => problems.push(`restore ${row.id}: ${(error as Error).message}`));
    }
    await writeTodos(opencode, this.todos).catch((error: unknown) => problems.push(`restore todos: ${(error as Error).message}`));
    if (problems.length > 0) {
      throw new SessmigError('rollback-failed', `the pull failed and its rollback did not finish: ${problems.join('; ')}`, {
        hint: `the local copies are backed up as opencode export files; restore them with \`opencode import FILE\` (see \`sessmig status\`)`,
        cause,
      });
    }
  }
}

function formatTime(ms: number | undefined): string {
  return ms === undefined ? '?' : new Date(ms).toISOString();
}

export const _internal = { isInside };
