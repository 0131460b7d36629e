import { existsSync } from 'node:fs';
import { copyFile, rm } from 'node:fs/promises';
import { pullCodeLeg, readCodeState } from '../code/codeLeg.js';
import { undoCode } from '../code/codeBackup.js';
import type { CodeState } from '../format/codeSchema.js';
import path from 'node:path';
import { downloadRebasedBlob, exportToBlobFile } from '../blob/blobFiles.js';
import { assertCheckpointId, newCheckpointId } from '../format/ids.js';
import { blobKey } from '../format/layout.js';
import type { Checkout, Manifest, ManifestSession, Tombstone } from '../format/schema.js';
import type { SessionRow } from '../opencode/opencode.js';
import { createBackupDir, unfinishedPulls, writeBackupIndex, type BackupIndex } from './backups.js';
import type { Context } from './context.js';
import { openImporter, type ReplayMode, type SessionImporter } from '../opencode/importer.js';
import { checkCompatibility } from '../opencode/versions.js';
import { readSessionState, readTodos, sameTodos, todoColumnsKnown, writeTodos, type SessionState, type Todo } from '../opencode/todos.js';
import { ExitCode, SessmigError, usageError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { assertMayClaim } from './ownership.js';
import { readManifest, readPointer, writePointer, type PointerState } from './remoteStore.js';
import { orderParentsFirst, withDescendants } from './sessionTree.js';
import { loadSyncState, localContentHash, saveSyncState, syncStateFile, type LocalExport, type SyncState } from './syncState.js';
import { DirComparer } from '../util/dirs.js';
import { ago } from '../util/duration.js';
import { checkoutOf, decidePull, type LocalPlace, type PullAction, type PullFacts } from './plan.js';
export { checkoutOf };
import { findUploads, takeInUploads, type TakenUpload } from './incoming.js';
import { bringSessionFiles } from './sessionFiles.js';
import type { LastUsed } from '../blob/sessionBlob.js';
import { alignRestored, checkArrivals, type ArrivalFindings } from './destinationChecks.js';
import { describeUncarried, readSessionExtras, writeShares, type ShareRow } from '../opencode/shareRows.js';

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
  /** Take these sessions whatever checkout they belong to (moving them out of another local checkout), or bring back one deleted here. */
  sessions?: string[];
  /** Restore the checkpoint's code into this checkout too (docs/FORMAT-code.md): default with --migrate. */
  code?: boolean;
  /** The clock, for the skew check (tests inject a skewed one). */
  now?: () => number;
}

/** How far a session's newest time may be ahead of this host's clock before pull speaks up (ms). */
export const CLOCK_SKEW_TOLERANCE_MS = 2 * 60 * 1000;

/**
 * Says what will not behave here as it did there, before anything is imported: a session that
 * opencode was still working on (its running tool call will not finish on this host), and a
 * session whose newest time is ahead of this host's clock (opencode orders messages by time-based
 * ids: the next message made here would sort before the last one, opencode #24476, #14236) —
 * `--migrate` refuses that one without --force.
 */
function warnAboutArrivals(ctx: Context, plans: Plan[], options: PullOptions): void {
  const arriving = plans.filter((plan) => plan.action === 'new' || plan.action === 'replace');
  for (const plan of arriving) {
    if (plan.session.busy) ctx.report.warn(`session ${plan.session.id} ("${plan.session.title}") was mid-turn when it was pushed: its running tool call will not finish on this host`);
  }
  const now = (options.now ?? Date.now)();
  const ahead = arriving.filter((plan) => plan.session.timeUpdated - now > CLOCK_SKEW_TOLERANCE_MS);
  if (ahead.length === 0) return;
  const gap = Math.max(...ahead.map((plan) => plan.session.timeUpdated - now));
  const what = `${ahead.length} session(s) were last changed up to ${ago(gap)} ahead of this host's clock (${ahead.map((plan) => plan.session.id).join(', ')}): a message made here would sort before their last one and opencode could stop answering`;
  if (options.migrate && !options.force) {
    throw new SessmigError('clock-skew', what, { hint: 'set this host\'s clock right (e.g. enable NTP), or re-run with --force to take the sessions anyway. Nothing was imported.', data: { gapMs: gap } });
  }
  ctx.report.warn(`${what}; set this host's clock right before resuming them`);
}


/**
 * What pull does with each session of the checkpoint (and each tombstone whose session is here);
 * decided by `decidePull` (plan.ts), where the whole table is documented and unit-tested.
 */
export type { PullAction };

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
  local?: { timeUpdated: number; messages?: number; directory: string };
  remote: { timeUpdated: number; messages: number };
  /** The checkout the session belongs to in the checkpoint (host, root, branch). */
  checkout?: Checkout;
  /** Opencode was mid-turn in it when it was pushed. */
  busy?: boolean;
  /** What the checks after the import found (destinationChecks.ts): a model/agent this host lacks, fields dropped and put back or still differing. */
  findings?: ArrivalFindings;
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
  /** The code leg, when it was applied: the checkout's commit and branch now, and whether the checkout was created. */
  code?: { head: string; branch: string | null; created: boolean; downloadedBytes: number };
}

interface Plan {
  /** The checkpoint's session; for a tombstone, a stand-in made from it (see tombstonePlans). */
  session: ManifestSession;
  tombstone?: Tombstone;
  local: SessionRow | undefined;
  action: PullAction;
  reason?: string;
  importDir: string;
  /** A fresh export of the local copy (the backup), when one was made. */
  localExport?: LocalExport;
}

/**
 * `sessmig pull`: brings the checkpoint (the pointer's, or `options.checkpoint`) into this
 * checkout. In steps, each below: the checkpoint (uploads taken in first), the plan, the verified
 * downloads, what replacing deletes, the backup record, the code leg, the bring-in (rolled back
 * whole on any failure), the sync base, and last the ownership claim. Errors: SessmigError
 * (`nothing-pushed`, `version-skew`, `clock-skew`, `import-unverified`, `rollback-failed`, the
 * remote's and the code leg's own); a failure after the first local change rolls back first.
 */
export async function pull(ctx: Context, options: PullOptions = {}): Promise<PullResult> {
  const checkpoint = options.checkpoint === undefined ? undefined : assertCheckpointId(options.checkpoint);
  if (options.migrate && checkpoint !== undefined) {
    throw usageError('bad-flag', '--migrate takes the current checkpoint; it cannot be combined with --checkpoint', 'drop --checkpoint');
  }
  const { pointer, taken, manifest } = await resolveCheckpoint(ctx, options, checkpoint);
  const stateFile = syncStateFile(ctx.paths.state, ctx.remote.display, ctx.worktree.key);
  const state = await loadSyncState(stateFile, ctx.remote.display, ctx.worktree.key);
  const early = new EarlyImporter(ctx, options);
  // A host that never pulled this worktree from this remote (a hand-over to a fresh box) will
  // most likely only add sessions: `opencode serve` for the replay starts now, beside the listing,
  // the planning and the downloads. Should a local session turn out to be replaced after all, it is
  // stopped before anything is deleted, and the pull goes on as it would have.
  if (!options.dryRun && !options.code && Object.keys(state.sessions).length === 0 && manifest.sessions.length >= 2) early.start(manifest.sessions.length);
  try {
    return await pullPlanned({ ctx, options, pointer, taken, manifest, stateFile, state, early });
  } finally {
    await early.close();
  }
}

/** What one pull carries from step to step. */
interface PullRun {
  ctx: Context;
  options: PullOptions;
  pointer: PointerState | undefined;
  taken: TakenUpload[];
  manifest: Manifest;
  stateFile: string;
  state: SyncState;
  early: EarlyImporter;
}

/** The checkpoint to pull: uploads through upload tickets become current first (verified), unless one is named. */
async function resolveCheckpoint(ctx: Context, options: PullOptions, named: string | undefined): Promise<{ pointer: PointerState | undefined; taken: TakenUpload[]; manifest: Manifest }> {
  const { remote, worktree, report, timing } = ctx;
  let pointer = await timing.time('list', () => readPointer(remote, worktree.key));
  if (options.migrate && pointer) assertMayClaim(pointer.pointer, ctx.host, worktree.key, options.force === true);
  let taken: TakenUpload[] = [];
  if (named === undefined && !remote.ticketOnly) {
    if (options.dryRun) {
      const { pending } = await timing.time('list', () => findUploads(remote, worktree.key));
      for (const id of pending) report.info(`would take in upload ${id} (through an upload ticket) before pulling`);
    } else {
      ({ pointer, taken } = await takeInUploads(ctx, pointer, { force: options.force === true, claiming: options.migrate === true }));
    }
  }
  const checkpoint = named ?? pointer?.pointer.checkpoint;
  if (checkpoint === undefined) {
    throw new SessmigError('nothing-pushed', `nothing was pushed for worktree ${worktree.key} to ${remote.display}`, {
      hint: 'push from the host that has the sessions (sessmig push), or check --remote and --worktree (see `sessmig ls`)',
    });
  }
  const manifest = await timing.time('list', () => readManifest(remote, worktree.key, checkpoint));
  return { pointer, taken, manifest };
}

/**
 * The importer started before it is needed (see pull), closed however the pull ends: closing
 * twice is harmless, and `take` hands it over to the bring-in, which closes it itself.
 */
class EarlyImporter {
  private early: Promise<SessionImporter> | undefined;

  constructor(private readonly ctx: Context, private readonly options: PullOptions) {}

  get started(): boolean {
    return this.early !== undefined;
  }

  start(count: number): void {
    this.early = openImporter(this.ctx.opencode, this.ctx.worktree.root, count, this.options.replay ?? 'auto', this.ctx.report, this.ctx.timing);
    this.early.catch(() => undefined); // awaited where it is used; this only keeps a failure from going unhandled meanwhile
  }

  /** The started importer, now the caller's to close; or undefined. */
  take(): Promise<SessionImporter> | undefined {
    const early = this.early;
    this.early = undefined;
    return early;
  }

  async close(): Promise<void> {
    const importer = await this.take()?.catch(() => undefined);
    await importer?.close();
  }
}

async function pullPlanned(run: PullRun): Promise<PullResult> {
  const { ctx, options, manifest } = run;
  const planned = await planPull(run);
  const { plans } = planned;
  const result: PullResult = {
    worktree: ctx.worktree.key,
    remote: ctx.remote.display,
    checkpoint: manifest.id,
    status: options.dryRun ? 'dry-run' : 'pulled',
    owner: run.pointer?.pointer.owner ?? null,
    claimed: false,
    sessions: [],
    restored: [],
    backupDir: null,
    uploads: run.taken,
  };
  if (options.dryRun) {
    result.sessions = plans.map((plan) => describe(plan, manifest));
    return result;
  }
  // Snapshot objects and tool outputs first, and how the blobs' paths move: see sessionFiles.ts.
  const carried = await bringSessionFiles(ctx, manifest, planned.localVersion);
  const downloads = await downloadVerified(run, planned, carried);
  const cascade = await cascadeReplacements(run, planned, carried, downloads);
  const record = await recordBackups(run, planned, cascade);
  if (record.deleting > 0) result.backupDir = record.backupDir;
  ctx.signal.throwIfAborted();
  const undoCodeLeg = await applyCodeLeg(run, record, result);
  const journal = new Journal(ctx, record.backups, planned.localById, record.todos, record.shares, undoCodeLeg);
  let outcome: BroughtIn;
  try {
    outcome = await bringIn(run, planned, cascade, downloads, carried, record, journal);
  } catch (error) {
    await journal.rollback(error);
    throw error;
  }
  await recordSync(run, planned, record, outcome.verified);
  result.sessions = plans.map((plan) => ({
    ...describe(plan, manifest),
    ...(outcome.paths.has(plan.session.id) ? { via: outcome.paths.get(plan.session.id) } : {}),
    ...(outcome.findings.has(plan.session.id) ? { findings: outcome.findings.get(plan.session.id) } : {}),
  }));
  result.restored = cascade.restoreFromBackup.map((row) => row.id);
  await claimOwnership(run, result);
  warnConflicts(ctx, result);
  return result;
}

/** The plan and what it was made from. */
interface Planned {
  plans: Plan[];
  localRows: SessionRow[];
  localById: Map<string, SessionRow>;
  localVersion: string;
  planning: PlanContext;
  /** Pulls killed before they finished (backups.ts): superseded once this one completes. */
  unfinished: Awaited<ReturnType<typeof unfinishedPulls>>;
}

/** Lists the local sessions, checks the versions, and decides every session's action (plan.ts). */
async function planPull(run: PullRun): Promise<Planned> {
  const { ctx, options, manifest, state } = run;
  const { opencode, timing, worktree, report } = ctx;
  const [localRows, localVersion] = await timing.time('list', () => Promise.all([opencode.listSessions(), opencode.version()]));
  assertVersionsCompatible(manifest.source.opencodeVersion, localVersion, options.force === true, report);
  const localById = new Map(localRows.map((row) => [row.id, row]));
  report.info(`pulling checkpoint ${manifest.id} of worktree ${worktree.key} (${manifest.sessions.length} session(s)) into ${worktree.root}`);
  const unfinished = options.dryRun ? [] : await unfinishedPulls(ctx.paths.state, worktree.key);
  const planning: PlanContext = {
    dirs: new DirComparer(),
    handoverRoot: options.migrate && manifest.source.migrate && manifest.source.host.hostId === ctx.host.hostId ? manifest.source.worktreeRoot : undefined,
    explicit: new Set(options.sessions ?? []),
    deletedBySessmig: new Set(unfinished.flatMap((record) => [...record.sessions.map((entry) => entry.id), ...record.imported])),
  };
  const plans = await timing.time('plan', async () => {
    const sessions = await mapPool(manifest.sessions, ctx.jobs, (session, index) => planSession(ctx, manifest, session, localById.get(session.id), state, options, index, planning));
    followParents(sessions);
    return [...sessions, ...(await tombstonePlans(ctx, manifest, localById, state, options, planning))];
  });
  warnAboutArrivals(ctx, plans, options);
  return { plans, localRows, localById, localVersion, planning, unfinished };
}

type Carried = Awaited<ReturnType<typeof bringSessionFiles>>;

/** Downloaded, verified and rebased blobs, by session id. */
interface Downloads {
  files: Map<string, string>;
  lastUsed: Map<string, LastUsed>;
  /** Sessions refused (damaged or unfit blob), with their descendants. */
  refused: Set<string>;
}

/** Downloads and verifies every blob to import before any local session is touched; a damaged one is refused alone, with its children. */
async function downloadVerified(run: PullRun, planned: Planned, carried: Carried): Promise<Downloads> {
  const { ctx, manifest, options } = run;
  const { plans } = planned;
  const toImport = plans.filter((plan) => plan.action === 'new' || plan.action === 'replace');
  const files = new Map<string, string>();
  const lastUsed = new Map<string, LastUsed>();
  // When nothing local is replaced (a first pull, a hand-over to a fresh host), no session is
  // deleted before the imports: `opencode serve` for the replay can start while the blobs download.
  if (toImport.length > 0 && !plans.some((plan) => plan.action === 'replace' || plan.action === 'deleted-there')) {
    if (!run.early.started && !options.code) run.early.start(toImport.length);
  } else {
    await run.early.close(); // sessions are deleted before the imports: no server may run meanwhile
  }
  await mapPool(
    toImport,
    ctx.jobs,
    async (plan, index) => {
      const file = path.join(ctx.tempDir, `pull-${index}.json`);
      try {
        const { facts } = await ctx.timing.time('download', () => downloadPlanned(run, plan, carried, planned.localVersion, file));
        files.set(plan.session.id, file);
        lastUsed.set(plan.session.id, facts.lastUsed);
      } catch (error) {
        // Damaged, or holding what this opencode would reject half-way (adapters.ts): refused alone.
        if (!(error instanceof SessmigError) || (error.code !== 'blob-corrupt' && error.code !== 'blob-unfit')) throw error;
        plan.action = 'refused';
        plan.reason = error.message;
        ctx.report.warn(error.message);
      }
    },
    ctx.signal,
  );
  // A refused parent takes its children with it: they would arrive orphaned.
  const refused = withDescendants(manifest.sessions, plans.filter((plan) => plan.action === 'refused').map((plan) => plan.session.id));
  for (const plan of plans) {
    if (refused.has(plan.session.id) && (plan.action === 'new' || plan.action === 'replace')) {
      plan.action = 'refused';
      plan.reason = 'its parent session was refused';
    }
  }
  ctx.signal.throwIfAborted();
  return { files, lastUsed, refused };
}

/** One planned session's blob, downloaded, verified and rebased onto this checkout into `file`. */
function downloadPlanned(run: PullRun, plan: Plan, carried: Carried, localVersion: string, file: string): ReturnType<typeof downloadRebasedBlob> {
  const { ctx, manifest } = run;
  return downloadRebasedBlob(ctx.remote, blobKey(ctx.worktree.key, plan.session.sha256), plan.session, plan.importDir, file, localVersion, {
    ...carried.paths,
    from: checkoutOf(manifest, plan.session).root,
  });
}

/** What replacing deletes, and what comes back in its place. */
interface Cascade {
  /** Every local session under a replaced one (ids). */
  ids: Set<string>;
  /** Local sessions to delete, parents first. */
  deleting: (SessionRow & { parentID: string | null })[];
  /** Plans to import, parents first. */
  importing: (Plan & { id: string; parentID: string | null })[];
  /** Local sessions deleted with a replaced parent that come back from their backup. */
  restoreFromBackup: SessionRow[];
}

/**
 * Deleting a session deletes its children: every local session under a replaced one is backed up
 * and comes back (from the remote if the checkpoint has it unchanged or newer, else from its backup).
 */
async function cascadeReplacements(run: PullRun, planned: Planned, carried: Carried, downloads: Downloads): Promise<Cascade> {
  const { plans, localRows, localById } = planned;
  const replaced = plans.filter((plan) => plan.action === 'replace' || plan.action === 'deleted-there').map((plan) => plan.session.id);
  const localNodes = localRows.map((row) => ({ ...row, parentID: row.parent_id }));
  const ids = withDescendants(localNodes, replaced);
  const planById = new Map(plans.map((plan) => [plan.session.id, plan]));
  const restoreFromBackup: SessionRow[] = [];
  for (const id of ids) {
    const plan = planById.get(id);
    if (plan && (plan.action === 'replace' || plan.action === 'deleted-there' || plan.tombstone)) continue;
    if (plan && plan.action === 'unchanged' && !downloads.refused.has(id)) {
      // Same content as the remote: bring it back from the remote copy.
      const file = path.join(run.ctx.tempDir, `pull-cascade-${id}.json`);
      await downloadPlanned(run, plan, carried, planned.localVersion, file);
      downloads.files.set(id, file);
      plan.action = 'replace';
      plan.reason = 'its parent was replaced';
      continue;
    }
    restoreFromBackup.push(localById.get(id)!);
  }
  return {
    ids,
    deleting: orderParentsFirst(localNodes.filter((node) => ids.has(node.id))),
    importing: orderParentsFirst(
      plans
        .filter((plan) => downloads.files.has(plan.session.id) && (plan.action === 'new' || plan.action === 'replace'))
        .map((plan) => ({ ...plan, id: plan.session.id, parentID: plan.session.parentID })),
    ),
    restoreFromBackup,
  };
}

/** The pull's backup record (backups.ts): what it deletes, exported first, for rollback and `sessmig undo`. */
interface BackupRecord {
  backupDir: string | null;
  index: BackupIndex | undefined;
  /** Local sessions deleted, counted. */
  deleting: number;
  backups: Map<string, string>;
  todos: Map<string, Todo[]>;
  shares: Map<string, ShareRow>;
  /** The code part to apply, when the code leg travels (`--code`, `--migrate`). */
  codeState: CodeState | undefined;
}

/**
 * Every pull that changes something leaves a record (with backups of what it deletes), for
 * rollback here and for `sessmig undo` later. It counts only once marked complete.
 */
async function recordBackups(run: PullRun, planned: Planned, cascade: Cascade): Promise<BackupRecord> {
  const { ctx, options, manifest, state } = run;
  const { worktree, report } = ctx;
  const { deleting, importing } = cascade;
  const record: BackupRecord = { backupDir: null, index: undefined, deleting: deleting.length, backups: new Map(), todos: new Map(), shares: new Map(), codeState: options.code ? readCodeState(manifest) : undefined };
  if (worktree.empty && !record.codeState) {
    throw usageError('not-a-worktree', `${worktree.root} is an empty folder and checkpoint ${manifest.id} carries no code to make a checkout of`, 'clone the repository there first, or push from the source with --migrate (or --code) so the code travels');
  }
  if (options.code && !record.codeState) report.info(`checkpoint ${manifest.id} carries no code (pushed without the code leg): only the sessions are pulled`);
  if (deleting.length === 0 && importing.length === 0 && !record.codeState) return record;
  const pullId = newCheckpointId();
  const backupDir = await createBackupDir(ctx.paths.state, worktree.key, pullId);
  const index: BackupIndex = {
    formatVersion: 1,
    worktree: worktree.key,
    worktreeRoot: worktree.root,
    pullId,
    createdAt: new Date().toISOString(),
    checkpoint: manifest.id,
    complete: false,
    imported: importing.map((item) => item.id),
    sessions: [],
    syncBefore: { file: run.stateFile, entries: Object.fromEntries([...importing.map((item) => item.id), ...deleting.map((node) => node.id)].map((id) => [id, state.sessions[id] ?? null])) },
  };
  Object.assign(record, { backupDir, index });
  const planById = new Map(planned.plans.map((plan) => [plan.session.id, plan]));
  await mapPool(deleting, ctx.jobs, (node) => backUpSession(ctx, node, planById.get(node.id), backupDir, record), ctx.signal);
  for (const [id, todos] of await readTodos(ctx.opencode, deleting.map((node) => node.id))) record.todos.set(id, todos);
  // #23 item 7: what the delete takes beyond export and todos (the share, with its secret).
  const extras = await readSessionExtras(ctx.opencode, deleting.map((node) => node.id));
  for (const [id, share] of extras.shares) record.shares.set(id, share);
  for (const entry of index.sessions) {
    if (record.todos.has(entry.id)) entry.todos = record.todos.get(entry.id);
    if (record.shares.has(entry.id)) entry.share = record.shares.get(entry.id);
  }
  for (const [id, counts] of extras.uncarried) report.warn(`session ${id} has ${describeUncarried(counts)} in opencode's database that sessmig does not carry; deleting it here (to replace it) drops them`);
  index.sessions.sort((x, y) => (x.id < y.id ? -1 : 1));
  await writeBackupIndex(backupDir, index);
  if (deleting.length > 0) report.info(`backed up ${deleting.length} local session(s) to ${backupDir}`);
  return record;
}

/** Exports one local session the pull deletes into the backup folder and lists it in the record's index. */
async function backUpSession(ctx: Context, node: SessionRow, plan: Plan | undefined, backupDir: string, record: BackupRecord): Promise<void> {
  const file = path.join(backupDir, `${node.id}.json`);
  // Planning already exported a local copy whose content was unknown: that export is the backup.
  const planned = plan?.localExport;
  const blob = planned
    ? await ctx.timing.time('backup', async () => (await copyFile(planned.file, file), { messages: planned.messages, contentHash: planned.contentHash }))
    : await ctx.timing.time('backup', async () => {
        const exported = await exportToBlobFile(ctx.opencode, node.id, file, { gzip: false });
        return { messages: exported.facts.messages, contentHash: exported.contentHash };
      });
  record.backups.set(node.id, file);
  record.index!.sessions.push({
    id: node.id,
    parentID: node.parent_id,
    title: node.title,
    directory: node.directory,
    reason: { replace: 'replaced by the pull', 'deleted-there': 'deleted on another host' }[plan?.action as string] ?? 'deleted with its parent',
    file: `${node.id}.json`,
    messages: blob.messages,
    contentHash: blob.contentHash,
  });
}

/**
 * The code leg, after every blob is verified and before any session is touched: a refused
 * destination (local changes in the way) stops the pull with nothing changed. Returns how to put
 * the checkout back (for the rollback), when it applied.
 */
async function applyCodeLeg(run: PullRun, record: BackupRecord, result: PullResult): Promise<(() => Promise<void>) | undefined> {
  const { ctx, options } = run;
  const { backupDir, index, codeState } = record;
  if (!codeState || !backupDir || !index) return undefined;
  const applied = await ctx.timing
    .time('code', () =>
      pullCodeLeg({ remote: ctx.remote, worktreeKey: ctx.worktree.key, destination: ctx.worktree.root, state: codeState, tempDir: ctx.tempDir, backupDir, force: options.force === true, env: ctx.env }),
    )
    .catch(async (error: unknown) => {
      await rm(backupDir, { recursive: true, force: true });
      throw error;
    });
  index.code = applied.backup;
  await writeBackupIndex(backupDir, index);
  result.code = { head: applied.head, branch: applied.branch, created: applied.created, downloadedBytes: applied.downloadedBytes };
  result.backupDir = backupDir;
  ctx.report.info(`code: ${applied.branch ?? 'detached HEAD'} at ${applied.head.slice(0, 12)}${applied.created ? ' (checkout created)' : ''}; the previous state is saved (sessmig undo restores it)`);
  return () => undoCode(applied.backup, { backupDir, tempDir: ctx.tempDir, force: true, env: ctx.env });
}

/** What the bring-in did. */
interface BroughtIn {
  /** opencode's rows of every session of the checkpoint after the bring-in (time_updated goes to the sync base). */
  verified: Map<string, { time_updated: number }>;
  /** How each session came in. */
  paths: Map<string, 'replay' | 'import'>;
  findings: Map<string, ArrivalFindings>;
}

/**
 * The only step that changes opencode's database: deletes the replaced sessions (the topmost:
 * opencode deletes children with them), imports parents first, restores what the cascade took,
 * verifies through opencode's own database, then todos and shares. Every change goes through the
 * journal; the caller rolls back on any throw.
 */
async function bringIn(run: PullRun, planned: Planned, cascade: Cascade, downloads: Downloads, carried: Carried, record: BackupRecord, journal: Journal): Promise<BroughtIn> {
  const { ctx, options, manifest } = run;
  const { opencode, timing, worktree, report } = ctx;
  const { importing, restoreFromBackup } = cascade;
  for (const node of cascade.deleting) {
    if (node.parentID !== null && cascade.ids.has(node.parentID)) continue;
    await timing.time('delete', () => opencode.deleteSession(node.id, worktree.root));
    journal.deleted(node.id);
  }
  const paths = new Map<string, 'replay' | 'import'>();
  let findings = new Map<string, ArrivalFindings>();
  const importer = (await run.early.take()) ?? (await openImporter(opencode, worktree.root, importing.length, options.replay ?? 'auto', report, timing));
  if (importing.length > 0) timing.note(`brought ${importing.length} session(s) in through ${importer.kind === 'replay' ? 'one `opencode serve` (replay)' : '`opencode import` processes'}`);
  const imported = { done: 0, bytes: 0 };
  // One at a time either way: two `opencode import` processes write the same database, and on a
  // loaded machine one waited past opencode's ~5 s busy timeout and failed ("database is locked").
  await importInLevels(importing, 1, async (plan) => {
    ctx.signal.throwIfAborted();
    journal.importing(plan.session.id);
    const how = await timing.time(importer.kind === 'replay' ? 'bring-in' : 'import', () => importer.importSession(downloads.files.get(plan.session.id)!, plan.importDir, plan.session.id));
    paths.set(plan.session.id, how);
    imported.done++;
    imported.bytes += plan.session.rawBytes;
    report.progress('imported', imported.done, importing.length, imported.bytes);
  })
    .then(async () => {
      // #23 items 6 and 9: models/agents this host lacks; fields its opencode dropped (put back, or reported).
      const arrivals = importing.map((plan) => ({ id: plan.session.id, title: plan.session.title, file: downloads.files.get(plan.session.id)!, directory: plan.importDir, via: paths.get(plan.session.id)!, lastUsed: plan.session.lastUsed ?? downloads.lastUsed.get(plan.session.id) }));
      findings = await checkArrivals(ctx, arrivals, importer, manifest.source.opencodeVersion);
    })
    .finally(() => importer.close());
  for (const row of orderParentsFirst(restoreFromBackup.map((row) => ({ ...row, parentID: row.parent_id })))) {
    journal.importing(row.id);
    await opencode.importFile(record.backups.get(row.id)!, existsSync(row.directory) ? row.directory : worktree.root, row.id);
  }
  await alignRestored(ctx, restoreFromBackup.map((row) => ({ id: row.id, title: row.title, file: record.backups.get(row.id)! })));
  let verified: Map<string, { time_updated: number }> = planned.localById;
  let sessionState: SessionState | undefined;
  if (importing.length > 0 || restoreFromBackup.length > 0) {
    sessionState = await timing.time('verify', () => readSessionState(opencode, [...new Set([...manifest.sessions.map((session) => session.id), ...importing.map((plan) => plan.session.id)])]));
    verified = verifyImports(importing.map((plan) => ({ id: plan.session.id, directory: plan.importDir, messages: plan.session.messages })), sessionState, planned.planning.dirs);
    await timing.time('verify', () => carried.verify(importing.map((plan) => plan.session.id)));
  }
  await timing.time('todos', () => restoreTodos(ctx, planned.plans, sessionState));
  // A replaced session keeps the share this host made of it (its secret unshares it).
  await writeShares(opencode, record.shares).catch((error: unknown) =>
    report.warn(`could not restore the share of ${[...record.shares.keys()].join(', ')} (${(error as Error).message}); its id and secret are in ${record.backupDir}/index.json`),
  );
  return { verified, paths, findings };
}

/** Marks the pull's record complete (and the killed ones it finished superseded), and moves the sync base to what is now in sync here. */
async function recordSync(run: PullRun, planned: Planned, record: BackupRecord, verified: Map<string, { time_updated: number }>): Promise<void> {
  const { ctx, manifest, state, stateFile } = run;
  const { report } = ctx;
  if (record.index && record.backupDir) {
    record.index.complete = true;
    await writeBackupIndex(record.backupDir, record.index).catch((error: unknown) => report.warn(`could not record this pull for undo: ${(error as Error).message}`));
  }
  for (const unfinished of planned.unfinished) {
    const { dir, ...rest } = unfinished;
    await writeBackupIndex(dir, { ...rest, supersededAt: new Date().toISOString() }).catch(() => undefined);
  }
  state.checkpoint = manifest.id;
  for (const plan of planned.plans) {
    const row = verified.get(plan.session.id);
    if (!row || plan.tombstone) continue;
    if (plan.action === 'new' || plan.action === 'replace' || plan.action === 'unchanged') {
      state.sessions[plan.session.id] = { contentHash: plan.session.contentHash, sha256: plan.session.sha256, localTimeUpdated: row.time_updated };
    }
  }
  // Followed deletions leave the sync base: the session is gone on both sides.
  for (const plan of planned.plans) if (plan.action === 'deleted-there' || (plan.tombstone && plan.action === 'unchanged')) delete state.sessions[plan.session.id];
  for (const tombstone of manifest.deleted ?? []) if (!planned.localById.has(tombstone.id)) delete state.sessions[tombstone.id];
  await saveSyncState(stateFile, state).catch((error: unknown) => report.warn(`could not save the sync state: ${(error as Error).message}`));
}

/** `--migrate`: claim last — the pointer moves only after every session is here, so a failed pull leaves it alone. */
async function claimOwnership(run: PullRun, result: PullResult): Promise<void> {
  const { ctx, options, pointer, state, stateFile } = run;
  if (!options.migrate || !pointer || pointer.pointer.owner?.hostId === ctx.host.hostId) return;
  const unresolved = result.sessions.filter((session) => session.action === 'conflict' || session.action === 'refused');
  if (unresolved.length > 0) {
    ctx.report.warn(`ownership not taken: ${unresolved.length} session(s) were not brought in (see above); resolve them and re-run \`sessmig pull --migrate\``);
    return;
  }
  const claimed = await ctx.timing.time('pointer', () => writePointer(ctx.remote, ctx.worktree.key, pointer, { checkpoint: pointer.pointer.checkpoint, owner: ctx.host }, ctx.host));
  result.owner = claimed.pointer.owner;
  result.claimed = true;
  state.handedAway = null;
  ctx.report.info(`worktree ${ctx.worktree.key}: this host (${ctx.host.hostname}) now owns the sessions`);
  await saveSyncState(stateFile, state).catch((error: unknown) => ctx.report.warn(`could not save the sync state: ${(error as Error).message}`));
}

function warnConflicts(ctx: Context, result: PullResult): void {
  for (const session of result.sessions) {
    if (session.action !== 'conflict') continue;
    ctx.report.warn(
      `session ${session.id} ("${session.title}") changed here and in the remote since the last sync: ` +
        `local ${formatTime(session.local?.timeUpdated)} / ${session.local?.messages ?? '?'} messages, ` +
        `remote ${formatTime(session.remote.timeUpdated)} / ${session.remote.messages} messages; left as it is ` +
        '(re-run with --force to take the remote copy, keeping a backup, or --keep-local)',
    );
  }
}

/** What planning knows beyond the session: how directories compare, and what the user asked for. */
interface PlanContext {
  dirs: DirComparer;
  /** `pull --migrate` of a checkpoint handed over (push --migrate) from another checkout of this host: its root. */
  handoverRoot: string | undefined;
  /** Sessions named with --session. */
  explicit: Set<string>;
  /** Sessions a killed pull deleted or was importing: absent here because of sessmig, not deleted by the user. */
  deletedBySessmig: Set<string>;
}

/** Where a local copy lives, seen from this checkout. */
function localPlace(ctx: Context, plan: PlanContext, directory: string): LocalPlace {
  if (plan.dirs.inside(ctx.worktree.root, directory)) return 'here';
  return existsSync(directory) ? 'other-checkout' : 'gone-folder';
}

/**
 * Does a session this host does not have belong to this checkout? One of this host's other live
 * checkouts keeps its own; another host's session goes to the checkout of its branch when this host
 * has one checked out elsewhere, else here.
 */
function belongsHere(ctx: Context, plan: PlanContext, checkout: Checkout): PullFacts['belongs'] {
  const { worktree } = ctx;
  if (checkout.host.hostId === ctx.host.hostId) {
    if (plan.dirs.same(checkout.root, worktree.root) || !existsSync(checkout.root)) return { here: true };
    return { here: false, where: `the checkout ${checkout.root} on this host` };
  }
  if (checkout.branch !== null && checkout.branch !== worktree.branch) {
    const other = worktree.otherCheckouts.find((item) => item.branch === checkout.branch);
    if (other) return { here: false, where: `the checkout ${other.root} (branch ${checkout.branch})` };
  }
  return { here: true };
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
  planning: PlanContext,
): Promise<Plan> {
  // A session carried from another checkout sits below that checkout's root, not the pushing one's.
  const importDir = rebaseDirectory(session.directory, checkoutOf(manifest, session).root, ctx.worktree.root, planning.dirs);
  // A session a killed pull removed has no say as a deletion: its sync base is set aside.
  const base = !local && planning.deletedBySessmig.has(session.id) ? undefined : state.sessions[session.id];
  const place = local ? localPlace(ctx, planning, local.directory) : undefined;
  const explicit = planning.explicit.has(session.id) || (local !== undefined && planning.handoverRoot !== undefined && planning.dirs.inside(planning.handoverRoot, local.directory));
  const facts: PullFacts = {
    belongs: belongsHere(ctx, planning, checkoutOf(manifest, session)),
    explicit,
    force: options.force === true,
    keepLocal: options.keepLocal === true,
    ...(base ? { base: { remoteChanged: base.contentHash !== session.contentHash } } : {}),
  };
  const plan: Plan = { session, local, action: 'new', importDir };
  if (local && place) {
    // Another checkout's session is left alone: no export needed to know that.
    const needsContent = place !== 'other-checkout' || explicit;
    const known = needsContent ? await localContentHash(ctx.opencode, local, base, path.join(ctx.tempDir, `local-${index}.json`)) : undefined;
    if (known?.exported) plan.localExport = known.exported;
    facts.local = {
      place,
      directory: local.directory,
      content: { equalsBase: known !== undefined && base !== undefined && known.contentHash === base.contentHash, equalsRemote: known?.contentHash === session.contentHash },
      boundElsewhere: place === 'here' && !planning.dirs.same(local.directory, importDir),
    };
  }
  const decision = decidePull(facts);
  plan.action = decision.action;
  if (decision.reason) plan.reason = decision.reason;
  return plan;
}

/** Tombstones whose session this host still has: each planned like a session (follow the deletion, or a conflict). */
async function tombstonePlans(ctx: Context, manifest: Manifest, localById: Map<string, SessionRow>, state: SyncState, options: PullOptions, planning: PlanContext): Promise<Plan[]> {
  const inSessions = new Set(manifest.sessions.map((session) => session.id));
  const present = (manifest.deleted ?? []).filter((item) => localById.has(item.id) && !inSessions.has(item.id));
  return mapPool(present, ctx.jobs, async (tombstone, index) => {
    const local = localById.get(tombstone.id)!;
    const base = state.sessions[tombstone.id];
    const place = localPlace(ctx, planning, local.directory);
    const known = place === 'other-checkout' ? undefined : await localContentHash(ctx.opencode, local, base, path.join(ctx.tempDir, `tomb-${index}.json`));
    const decision = decidePull({
      tombstone: { by: tombstone.by.hostname || `host ${tombstone.by.hostId}`, deletedAt: tombstone.deletedAt },
      local: {
        place,
        directory: local.directory,
        content: { equalsBase: known !== undefined && base !== undefined && known.contentHash === base.contentHash, equalsRemote: known?.contentHash === tombstone.contentHash },
        boundElsewhere: false,
      },
      ...(base ? { base: { remoteChanged: true } } : {}),
      belongs: { here: true },
      explicit: false,
      force: options.force === true,
      keepLocal: options.keepLocal === true,
    });
    const session: ManifestSession = {
      id: tombstone.id, parentID: tombstone.parentID, title: tombstone.title, directory: local.directory, version: '', sha256: '0'.repeat(64),
      contentHash: tombstone.contentHash, rawBytes: 0, storedBytes: 0, timeUpdated: Date.parse(tombstone.deletedAt), messages: 0, busy: false,
    };
    return {
      session, tombstone, local, action: decision.action, importDir: local.directory,
      ...(decision.reason ? { reason: decision.reason } : {}),
      ...(known?.exported ? { localExport: known.exported } : {}),
    };
  });
}

/** Children follow their parent: a parent left to another checkout (or deleted here) keeps its absent children out too. */
function followParents(plans: Plan[]): void {
  const byId = new Map(plans.map((plan) => [plan.session.id, plan]));
  for (const plan of orderParentsFirst(plans.map((item) => ({ ...item, id: item.session.id, parentID: item.session.parentID })))) {
    const parent = plan.session.parentID ? byId.get(plan.session.parentID) : undefined;
    if (!parent || plan.tombstone || plan.local) continue;
    if (parent.action === 'other-checkout' || parent.action === 'deleted-here') {
      const own = byId.get(plan.id)!;
      own.action = parent.action;
      own.reason = 'follows its parent session';
    }
  }
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
export function rebaseDirectory(sourceDir: string, sourceRoot: string, root: string, dirs = new DirComparer()): string {
  // The source's directories are another host's: compared by spelling (its real paths are not here).
  const target = dirs.rebase(sourceDir, sourceRoot, root);
  return target !== undefined && existsSync(target) ? target : root;
}

function describe(plan: Plan, manifest?: Manifest): PulledSession {
  return {
    id: plan.session.id,
    parentID: plan.session.parentID,
    title: plan.session.title,
    action: plan.action,
    ...(plan.reason ? { reason: plan.reason } : {}),
    messages: plan.session.messages,
    directory: plan.importDir,
    ...(plan.local ? { local: { timeUpdated: plan.local.time_updated, directory: plan.local.directory, ...(plan.localExport ? { messages: plan.localExport.messages } : {}) } } : {}),
    remote: { timeUpdated: plan.session.timeUpdated, messages: plan.session.messages },
    ...(manifest && !plan.tombstone ? { checkout: checkoutOf(manifest, plan.session), busy: plan.session.busy } : {}),
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
  const targets = plans.filter((plan) => !plan.tombstone && (plan.action === 'new' || plan.action === 'replace' || plan.action === 'unchanged'));
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
  dirs: DirComparer,
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
    if (!dirs.same(row.directory, item.directory)) {
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
    private readonly shares: Map<string, ShareRow> = new Map(),
    /** Puts the checkout's code back, when this pull applied the code leg. */
    private readonly undoCodeLeg?: () => Promise<void>,
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
    // Re-import every backed-up session that is gone, parents first. One whose delete never ran (the
    // pull failed before it) is still here as it was: re-importing it would set its time_updated to
    // now on 1.18.33, and the next push would export it again for nothing.
    const untouched = new Set([...present].filter((id) => !this.importedIds.includes(id)));
    const rows = [...this.backups.keys()]
      .filter((id) => !untouched.has(id))
      .map((id) => this.localById.get(id)!)
      .map((row) => ({ ...row, parentID: row.parent_id }));
    for (const row of orderParentsFirst(rows)) {
      const dir = existsSync(row.directory) ? row.directory : worktree.root;
      await opencode.importFile(this.backups.get(row.id)!, dir, row.id).catch((error: unknown) => problems.push(`restore ${row.id}: ${(error as Error).message}`));
    }
    await writeTodos(opencode, this.todos).catch((error: unknown) => problems.push(`restore todos: ${(error as Error).message}`));
    await writeShares(opencode, this.shares).catch((error: unknown) => problems.push(`restore shares: ${(error as Error).message}`));
    await alignRestored({ opencode, report }, rows.map((row) => ({ id: row.id, title: row.title, file: this.backups.get(row.id)! })));
    if (this.undoCodeLeg) await this.undoCodeLeg().catch((error: unknown) => problems.push(`restore the code: ${(error as Error).message}`));
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


