import path from 'node:path';
import { exportToBlobFile, type ExportedBlob } from '../blob/blobFiles.js';
import { isBusy } from '../blob/sessionBlob.js';
import { assertSessionId, newCheckpointId } from '../format/ids.js';
import { blobKey } from '../format/layout.js';
import { MANIFEST_FORMAT_VERSION, type Checkout, type Host, type Manifest, type ManifestSession, type SkippedSession, type Tombstone } from '../format/schema.js';
import type { SessionRow } from '../opencode/opencode.js';
import { openExporter, parseExportVia, startExportServer, type EarlyExportServer } from '../opencode/exporter.js';
import { listSessionsWithTodos, type ListedRowSizes, type Todo } from '../opencode/todos.js';
import { SESSMIG_VERSION } from '../version.js';
import type { Context } from './context.js';
import { ExitCode, SessmigError, usageError } from '../util/errors.js';
import { assertMayPush } from './ownership.js';
import { unfinishedPulls } from './backups.js';
import { mapPool } from './pool.js';
import { readManifest, readPointer, writeManifest, writePointer, type PointerState } from './remoteStore.js';
import { orderParentsFirst, withDescendants } from './sessionTree.js';
import { loadSyncState, saveSyncState, syncStateFile, type SyncState } from './syncState.js';
import type { Worktree } from './worktree.js';
import { DirComparer } from '../util/dirs.js';
import { decideCarry, decidePush, type CarryAction, type PushAction } from './plan.js';
import { pushCodeLeg, readCodeState, type PushedCode } from '../code/codeLeg.js';
import { carrySessionFiles } from './sessionFiles.js';
import { storeObject } from '../blob/storedObject.js';
import { objectKey, objectsOf, type ObjectKind } from './checkpointObjects.js';

export interface PushOptions {
  /** Limit to these sessions (and their children). */
  sessions?: string[];
  dryRun?: boolean;
  /** Hand the sessions over: the new checkpoint's pointer is released (owner null). */
  migrate?: boolean;
  /** On a conflict (changed here and in the remote since the last sync), push the local copy anyway. */
  force?: boolean;
  /** Carry the checkout's code too (the code leg, docs/FORMAT-code.md): default with --migrate. */
  code?: boolean;
  /** Cap for the code leg's new bundles (bytes); default 512 MiB. */
  codeMaxBytes?: number;
}

/**
 * What push did with a session: exported and stored ('pushed'), or kept the current checkpoint's
 * copy because it is unchanged ('reused'), newer in the remote while unchanged here
 * ('remote-newer': pull to get it), or changed on both sides since the last sync ('conflict':
 * refused; --force pushes the local copy).
 */
export type { PushAction };

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
  /** Sessions deleted on this host that this push records as deleted (tombstones). */
  deleted: { id: string; title: string }[];
  /** Root sessions of this repository outside this checkout, per directory (not pushed from here). */
  outside: { directory: string; sessions: number }[];
  /** The code leg, when it travelled: the commit and branch captured, and what was uploaded. */
  code?: { head: string; branch: string | null; bundle: 'none' | 'full' | 'incremental'; uploadedBytes: number };
}

/** Finds the checkout's sessions (with their subagent children), parents first. */
export function selectSessions(rows: SessionRow[], root: string, only: string[] | undefined, dirs = new DirComparer()): SessionRow[] {
  const inWorktree = rows.filter((row) => dirs.inside(root, row.directory));
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

/**
 * Root sessions of the same repository (opencode project) that lie outside this checkout, counted
 * per directory: another checkout's, or a folder opencode was started in beside the checkout.
 */
export function sessionsOutside(rows: SessionRow[], worktree: Worktree, selected: Set<string>): { directory: string; sessions: number }[] {
  if (!worktree.projectId) return [];
  const counts = new Map<string, number>();
  for (const row of rows) {
    if (row.project_id !== worktree.projectId || row.parent_id !== null || selected.has(row.id)) continue;
    counts.set(row.directory, (counts.get(row.directory) ?? 0) + 1);
  }
  return [...counts].map(([directory, sessions]) => ({ directory, sessions })).sort((a, b) => (a.directory < b.directory ? -1 : 1));
}

/** How long push carries a tombstone forward (docs/FORMAT.md, "Checkouts and deletions"). */
export const TOMBSTONE_TTL_MS = 180 * 24 * 3600 * 1000;

interface PushPlan {
  kept: Map<string, { entry: ManifestSession; action: PushAction }>;
  /** Sessions another host deleted that are unchanged here: left out, reported. */
  deletedThere: SessionRow[];
  /** Sessions another host deleted that changed here since: left out (the tombstone stays), a conflict. */
  tombstoneConflicts: SessionRow[];
  toExport: SessionRow[];
}

/**
 * `sessmig push`: exports this checkout's changed sessions, carries the checkpoint's others
 * forward (or tombstones those deleted here), captures the code when asked, and makes a new
 * checkpoint current — the manifest after every object, the pointer last. Errors: SessmigError
 * (`not-owner`, `session-busy`, the code leg's and the remote's own); nothing is current on a throw.
 */
export async function push(ctx: Context, options: PushOptions = {}): Promise<PushResult> {
  const version = ctx.opencode.version();
  version.catch(() => undefined); // awaited in surveyPush
  // The exports' `opencode serve` starts now, beside the listing `opencode db`, not after it
  // (issue 22); whatever happens next, it is stopped when the push ends.
  const early = options.dryRun ? undefined : startExportServer(ctx.opencode, ctx.worktree.root, parseExportVia(ctx.env.SESSMIG_EXPORT_VIA), version);
  try {
    return await pushSurveyed(ctx, options, await surveyPush(ctx, options, version, early), early);
  } finally {
    await early?.stop();
  }
}

async function pushSurveyed(ctx: Context, options: PushOptions, survey: PushSurvey, early: EarlyExportServer | undefined): Promise<PushResult> {
  const { result, selected, carry, current } = survey;
  const { worktree, remote, report } = ctx;
  for (const item of result.outside) {
    report.warn(`${item.sessions} session(s) of this repository lie outside this checkout, in ${item.directory}: not pushed from here (push from that checkout)`);
  }
  // `--migrate` hands the worktree over even when this checkout has no session of its own: the
  // checkpoint it makes carries the others forward and releases ownership.
  const handOver = options.migrate === true && survey.previous !== undefined;
  if (selected.length === 0 && carry.tombstones.length === 0 && !options.code && !handOver) {
    report.info(`worktree ${worktree.key}: no opencode sessions in ${worktree.root}; nothing to push`);
    return result;
  }
  if (options.dryRun) {
    report.info(`worktree ${worktree.key}: would push ${selected.length} session(s) to ${remote.display}${carry.tombstones.length > 0 ? ` and record ${carry.tombstones.length} deletion(s)` : ''}`);
    return { ...result, status: 'dry-run' };
  }
  report.info(`worktree ${worktree.key}: pushing ${selected.length} session(s) to ${remote.display}`);
  const currentById = new Map((current?.sessions ?? []).map((session) => [session.id, session]));
  const tombstoned = new Map((current?.deleted ?? []).map((item) => [item.id, item]));
  const plan = planBeforeExport(selected, currentById, tombstoned, survey.state, options.force === true);
  const reusedCount = [...plan.kept.values()].filter((item) => item.action === 'reused').length;
  if (reusedCount > 0) report.info(`${reusedCount} session(s) unchanged since the last sync: reusing their blobs`);
  // The code leg first: a checkout it cannot capture (too large, mid-merge) stops the push before any export.
  const code = options.code ? await captureAndStoreCode(ctx, current, options) : undefined;
  const skipped: SkippedSession[] = [];
  const exported = await exportAndStore(ctx, plan, currentById, tombstoned, survey.state, options, skipped, survey.rowSizes, early);
  const done = exported.filter((item): item is NonNullable<typeof item> => item !== undefined);
  const sessions = await assembleSessions(ctx, survey, plan, done, options);
  if (sessions.length === 0 && carry.tombstones.length === 0 && !code && !handOver) {
    report.warn('every session was deleted while pushing; nothing was pushed');
    return { ...result, skipped: sortSkipped(skipped) };
  }
  ctx.signal.throwIfAborted();
  const manifest = await buildManifest(ctx, survey, sessions, done, skipped, code, options);
  await adoptPlaintext(ctx, objectsOf(manifest));
  await ctx.timing.time('manifest', () => writeManifest(remote, manifest));
  ctx.signal.throwIfAborted();
  const owner = options.migrate ? null : ctx.host;
  await ctx.timing.time('pointer', () => writePointer(remote, worktree.key, survey.previous, { checkpoint: manifest.id, owner }, ctx.host));
  report.info(`worktree ${worktree.key}: checkpoint ${manifest.id} is now current${options.migrate ? '; ownership released for another host to claim (sessmig pull --migrate)' : ''}`);
  if (carry.tombstones.length > 0) report.info(`recorded ${carry.tombstones.length} session(s) deleted on this host; other hosts remove their unchanged copies when they pull`);
  await recordPushSync(ctx, survey, manifest, done, options);
  const pushed = describePushed(manifest, survey.selectedIds, done, plan, carry.conflicts);
  reportPushed(report, pushed);
  return {
    ...result,
    status: 'pushed',
    owner,
    checkpoint: manifest.id,
    skipped: manifest.skipped,
    sessions: pushed,
    ...(code ? { code: { head: code.state.head, branch: code.state.branch, bundle: code.bundle, uploadedBytes: code.uploadedBytes } } : {}),
  };
}

/** What push looked up before deciding anything. */
interface PushSurvey {
  previous: PointerState | undefined;
  opencodeVersion: string;
  todos: Map<string, Todo[]>;
  /** Row sizes of the sessions this push may export, for the check of the served export (todos.ts). */
  rowSizes: ListedRowSizes | undefined;
  selected: SessionRow[];
  selectedIds: Set<string>;
  stateFile: string;
  state: SyncState;
  /** The current checkpoint's manifest, if there is one. */
  current: Manifest | undefined;
  carry: ReturnType<typeof planCarry>;
  /** The result of a push that changes nothing (filled in as the push goes on). */
  result: PushResult;
}

/** One round of independent look-ups (the pointer, opencode's version and its session table), the selection, and the carry plan. */
async function surveyPush(ctx: Context, options: PushOptions, version: Promise<string>, early: EarlyExportServer | undefined): Promise<PushSurvey> {
  const { remote, worktree, opencode, timing } = ctx;
  const only = options.sessions?.map((id) => assertSessionId(id, '--session'));
  const stateFile = syncStateFile(ctx.paths.state, remote.display, worktree.key);
  const state = await loadSyncState(stateFile, remote.display, worktree.key);
  // The listing also reads the row sizes of the sessions this push may export (those changed since
  // the last sync), for the check of the served export: no second `opencode db` before the exports.
  const unchanged = Object.entries(state.sessions).flatMap(([id, base]) => (base.localTimeUpdated === null ? [] : [{ id, timeUpdated: base.localTimeUpdated }]));
  const [previous, opencodeVersion, { rows, todos, rowSizes }] = await timing.time('list', () =>
    Promise.all([readPointer(remote, worktree.key), version, listSessionsWithTodos(opencode, early ? { root: worktree.root, unchanged } : undefined)]),
  );
  assertMayPush(previous?.pointer, ctx.host, worktree.key);
  const selected = selectSessions(rows, worktree.root, only, new DirComparer());
  const selectedIds = new Set(selected.map((row) => row.id));
  const outside = only ? [] : sessionsOutside(rows, worktree, selectedIds);
  const current = previous ? await timing.time('list', () => readManifest(remote, worktree.key, previous.pointer.checkpoint)) : undefined;
  // Sessions a killed pull removed are not deletions by the user: never tombstoned (the next pull brings them back).
  const removedBySessmig = new Set((await unfinishedPulls(ctx.paths.state, worktree.key)).flatMap((record) => [...record.sessions.map((entry) => entry.id), ...record.imported]));
  const carry = planCarry(current, rows, selectedIds, state, options, only !== undefined, ctx.host, removedBySessmig);
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
    deleted: carry.tombstones.map((item) => ({ id: item.id, title: item.title })),
    outside,
  };
  return { previous, opencodeVersion, todos, rowSizes, selected, selectedIds, stateFile, state, current, carry, result };
}

/** The code leg (docs/FORMAT-code.md): captures the checkout and stores its new bundle, on top of the current checkpoint's chain. */
async function captureAndStoreCode(ctx: Context, current: Manifest | undefined, options: PushOptions): Promise<PushedCode> {
  const base = current ? readCodeState(current) : undefined;
  // The chain the capture builds on must be in the remote as this remote stores it (sealed, if it seals).
  await adoptPlaintext(ctx, (base?.bundles ?? []).map((bundle) => ({ kind: 'bundle' as const, sha256: bundle.sha256 })));
  const code = await ctx.timing.time('code', () =>
    pushCodeLeg({
      remote: ctx.remote,
      worktreeKey: ctx.worktree.key,
      root: ctx.worktree.root,
      base,
      tempDir: ctx.tempDir,
      ...(options.codeMaxBytes !== undefined ? { maxBytes: options.codeMaxBytes } : {}),
      env: ctx.env,
      warn: (message) => ctx.report.warn(message),
    }),
  );
  ctx.report.info(`code: ${code.state.branch ?? 'detached HEAD'} at ${code.state.head.slice(0, 12)}, ${code.bundle === 'none' ? 'no new bundle' : `${code.bundle} bundle of ${code.uploadedBytes} bytes`}`);
  return code;
}

type Exported = { row: SessionRow; blob: ExportedBlob; uploaded: boolean };

/**
 * The checkpoint's sessions: the fresh exports and the reused ones (bound to this checkout), and
 * the carried ones as they were. Refuses busy sessions on --migrate.
 */
async function assembleSessions(ctx: Context, survey: PushSurvey, plan: PushPlan, done: Exported[], options: PushOptions): Promise<ManifestSession[]> {
  const checkout: Checkout = { host: ctx.host, root: ctx.worktree.root, branch: ctx.worktree.branch };
  const fresh: ManifestSession[] = done.map(({ row, blob }) => ({ ...manifestEntry(row, blob, survey.todos), checkout }));
  const keptEntries = [...plan.kept.values()].map((item) => (item.action === 'reused' ? { ...item.entry, checkout } : item.entry));
  const sessions = [...fresh, ...keptEntries, ...survey.carry.carried];
  assertNotBusy(sessions.filter((session) => survey.selectedIds.has(session.id)), options);
  return sessions;
}

/**
 * The first encrypted push of a worktree with plaintext checkpoints reuses their objects: each is
 * sealed under its keyed name before a sealed manifest names it (blobs, tool outputs, snapshot
 * packs, code bundles alike). One HEAD per object once the worktree is sealed.
 */
async function adoptPlaintext(ctx: Context, objects: { kind: ObjectKind; sha256: string }[]): Promise<void> {
  const sealing = ctx.remote.sealing;
  if (!sealing) return;
  const unique = [...new Map(objects.map((object) => [objectKey(ctx.worktree.key, object.kind, object.sha256), object.kind])).entries()];
  const adopted = await mapPool(unique, ctx.jobs, ([key], index) => sealing.adoptPlain(key, `adopt-${index}`), ctx.signal);
  const blobs = unique.filter(([, kind], index) => adopted[index] && kind === 'blob').length;
  const others = adopted.filter(Boolean).length - blobs;
  const kinds = 'tool outputs, snapshot packs, code bundles';
  if (blobs > 0) ctx.report.info(`sealed ${blobs} blob(s) this worktree had in plaintext${others > 0 ? `, and ${others} other object(s) (${kinds})` : ''}`);
  else if (others > 0) ctx.report.info(`sealed ${others} object(s) (${kinds}) this worktree had in plaintext`);
}

/** The new checkpoint's manifest (its snapshot packs and tool outputs stored first: sessionFiles.ts); tombstones older than the TTL drop out. */
async function buildManifest(ctx: Context, survey: PushSurvey, sessions: ManifestSession[], done: Exported[], skipped: SkippedSession[], code: PushedCode | undefined, options: PushOptions): Promise<Manifest> {
  const { previous, current, carry } = survey;
  const pointedAt = await carrySessionFiles(ctx, done.map(({ row, blob }) => ({ id: row.id, file: blob.file })), sessions, current);
  const pushedIds = new Set(done.map((item) => item.row.id));
  const now = new Date();
  return {
    formatVersion: MANIFEST_FORMAT_VERSION,
    kind: 'sessmig.checkpoint',
    id: newCheckpointId(now, previous?.pointer.checkpoint),
    worktree: ctx.worktree.key,
    parent: previous?.pointer.checkpoint ?? null,
    createdAt: now.toISOString(),
    source: { host: ctx.host, worktreeRoot: ctx.worktree.root, opencodeVersion: survey.opencodeVersion, sessmigVersion: SESSMIG_VERSION, branch: ctx.worktree.branch, ...(options.migrate ? { migrate: true } : {}) },
    sessions: orderParentsFirst(sessions),
    skipped: sortSkipped(skipped),
    ...(code ? { code: code.state } : {}),
    ...pointedAt,
    deleted: [...(current?.deleted ?? []).filter((item) => !pushedIds.has(item.id) && now.getTime() - Date.parse(item.deletedAt) < TOMBSTONE_TTL_MS), ...carry.tombstones].sort((a, b) => (a.id < b.id ? -1 : 1)),
  };
}

/** What this host pushed is its sync base; a --migrate remembers the hand-over. */
async function recordPushSync(ctx: Context, survey: PushSurvey, manifest: Manifest, done: Exported[], options: PushOptions): Promise<void> {
  const { state } = survey;
  state.checkpoint = manifest.id;
  for (const { row, blob } of done) {
    state.sessions[row.id] = { contentHash: blob.contentHash, sha256: blob.sha256, localTimeUpdated: blob.facts.timeUpdated ?? row.time_updated };
  }
  for (const item of survey.carry.tombstones) delete state.sessions[item.id];
  state.handedAway = options.migrate ? { checkpoint: manifest.id, at: new Date().toISOString() } : null;
  await saveSyncState(survey.stateFile, state).catch((error: unknown) => ctx.report.warn(`could not save the sync state: ${(error as Error).message}`));
}

/** Sessions of the current checkpoint that this push does not export: carried forward, or tombstoned when deleted here. */
function planCarry(
  current: Manifest | undefined,
  rows: SessionRow[],
  selectedIds: Set<string>,
  state: SyncState,
  options: PushOptions,
  limited: boolean,
  host: Host,
  removedBySessmig: Set<string>,
): { carried: ManifestSession[]; tombstones: Tombstone[]; conflicts: ManifestSession[] } {
  const present = new Set([...rows.map((row) => row.id), ...removedBySessmig]);
  const others = (current?.sessions ?? []).filter((session) => !selectedIds.has(session.id));
  const decided = new Map<string, CarryAction>();
  for (const entry of others) {
    const base = state.sessions[entry.id];
    decided.set(
      entry.id,
      limited
        ? 'carry'
        : decideCarry({ presentOnThisHost: present.has(entry.id), hasBase: base !== undefined, remoteChangedSinceBase: base !== undefined && base.contentHash !== entry.contentHash, force: options.force === true }),
    );
  }
  // opencode deletes a session's children with it: a tombstoned parent takes its absent children along.
  const doomed = withDescendants(others, others.filter((entry) => decided.get(entry.id) === 'tombstone').map((entry) => entry.id));
  const deletedAt = new Date().toISOString();
  const carried: ManifestSession[] = [];
  const tombstones: Tombstone[] = [];
  const conflicts: ManifestSession[] = [];
  for (const entry of others) {
    if (doomed.has(entry.id) && !present.has(entry.id)) {
      tombstones.push({ id: entry.id, parentID: entry.parentID, title: entry.title, contentHash: entry.contentHash, deletedAt, by: host });
      continue;
    }
    carried.push(entry);
    if (decided.get(entry.id) === 'conflict') conflicts.push(entry);
  }
  return { carried, tombstones, conflicts };
}

/** Decides every selected session that needs no export (its local copy is unchanged since the sync base). */
function planBeforeExport(
  selected: SessionRow[],
  currentById: Map<string, ManifestSession>,
  tombstoned: Map<string, Tombstone>,
  state: SyncState,
  force: boolean,
): PushPlan {
  const plan: PushPlan = { kept: new Map(), deletedThere: [], tombstoneConflicts: [], toExport: [] };
  for (const row of selected) {
    const base = state.sessions[row.id];
    const entry = currentById.get(row.id);
    const action = decidePush({
      unchangedSinceBase: base !== undefined && base.localTimeUpdated === row.time_updated,
      ...(entry ? { remote: { changedSinceBase: base === undefined || entry.contentHash !== base.contentHash } } : {}),
      hasBase: base !== undefined,
      tombstoned: tombstoned.has(row.id) && !entry,
      force,
    });
    if (action === 'export') plan.toExport.push(row);
    else if (action === 'deleted-there') plan.deletedThere.push(row);
    else plan.kept.set(row.id, { entry: entry!, action });
  }
  return plan;
}

/** Exports what changed, decides it against the remote, uploads what goes into the checkpoint. */
async function exportAndStore(
  ctx: Context,
  plan: PushPlan,
  currentById: Map<string, ManifestSession>,
  tombstoned: Map<string, Tombstone>,
  state: SyncState,
  options: PushOptions,
  skipped: SkippedSession[],
  rowSizes: ListedRowSizes | undefined,
  early: EarlyExportServer | undefined,
): Promise<({ row: SessionRow; blob: ExportedBlob; uploaded: boolean } | undefined)[]> {
  const { report, timing, worktree, opencode } = ctx;
  const { toExport } = plan;
  const source = await timing.time('serve-start', () =>
    openExporter(opencode, worktree.root, toExport.length, parseExportVia(ctx.env.SESSMIG_EXPORT_VIA), report, toExport.map((row) => row.id), rowSizes, early),
  );
  if (toExport.length > 0) timing.note(`exported ${toExport.length} session(s) through ${source.kind === 'server' ? 'one `opencode serve`' : '`opencode export` processes'}; ${plan.kept.size} reused`);
  const progress = { done: 0, bytes: 0 };
  return mapPool(
    toExport,
    ctx.jobs,
    async (row, index) => {
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
          if (entry) plan.kept.set(row.id, { entry, action: 'reused' });
          return undefined;
        }
        throw error;
      }
      const entry = currentById.get(row.id);
      const base = state.sessions[row.id];
      const tombstone = entry ? undefined : tombstoned.get(row.id);
      const action = decidePush({
        unchangedSinceBase: false,
        exported: { equalsBase: base?.contentHash === blob.contentHash, equalsRemote: entry?.contentHash === blob.contentHash, equalsTombstone: tombstone?.contentHash === blob.contentHash },
        ...(entry ? { remote: { changedSinceBase: base === undefined || entry.contentHash !== base.contentHash } } : {}),
        hasBase: base !== undefined,
        tombstoned: tombstone !== undefined,
        force: options.force === true,
      });
      if (action === 'deleted-there') {
        plan.deletedThere.push(row);
        return undefined;
      }
      if (action === 'conflict') {
        if (entry) plan.kept.set(row.id, { entry, action: 'conflict' });
        else plan.tombstoneConflicts.push(row);
        return undefined;
      }
      ctx.signal.throwIfAborted();
      const uploaded = await timing.time('upload', () => storeBlob(ctx, blob));
      progress.done++;
      progress.bytes += blob.storedBytes;
      report.progress('pushed', progress.done, toExport.length, progress.bytes);
      if (isBusy(blob.facts) && !options.migrate) {
        report.warn(`session ${row.id} ("${row.title}") is mid-turn in opencode; pushed as it stands and flagged busy`);
      }
      return { row, blob, uploaded };
    },
    ctx.signal,
  ).finally(() => source.close());
}

/**
 * `push --migrate` hands the sessions to another host: a session opencode is still working on
 * would go on changing here after the hand-over, and those changes would be lost. Refused unless --force.
 */
function assertNotBusy(sessions: ManifestSession[], options: PushOptions): void {
  if (!options.migrate) return;
  const busy = sessions.filter((session) => session.busy);
  if (busy.length === 0) return;
  if (options.force) return;
  throw new SessmigError(
    'session-busy',
    `${busy.length} session(s) are mid-turn in opencode (${busy.map((session) => `${session.id} "${session.title}"`).join(', ')}); handing them over now would lose what opencode still writes here`,
    { hint: 'wait until opencode finishes the turn (or stop it), then re-run `sessmig push --migrate`; --force hands them over as they stand. Nothing was made current.', data: { sessions: busy.map((session) => session.id) } },
  );
}

function describePushed(
  manifest: Manifest,
  selectedIds: Set<string>,
  done: { row: SessionRow; uploaded: boolean }[],
  plan: PushPlan,
  carryConflicts: ManifestSession[],
): PushedSession[] {
  const uploadedIds = new Set(done.filter((item) => item.uploaded).map((item) => item.row.id));
  const exportedIds = new Set(done.map((item) => item.row.id));
  const conflictIds = new Set(carryConflicts.map((entry) => entry.id));
  const describe = (session: { id: string; parentID: string | null; title: string; messages: number; rawBytes: number; storedBytes: number; busy: boolean }, action: PushAction): PushedSession => ({
    id: session.id,
    action,
    parentID: session.parentID,
    title: session.title,
    messages: session.messages,
    rawBytes: session.rawBytes,
    storedBytes: session.storedBytes,
    uploaded: uploadedIds.has(session.id),
    exported: exportedIds.has(session.id),
    busy: session.busy,
  });
  const out = manifest.sessions
    .filter((session) => selectedIds.has(session.id) || conflictIds.has(session.id))
    .map((session) => describe(session, conflictIds.has(session.id) ? 'conflict' : exportedIds.has(session.id) ? 'pushed' : (plan.kept.get(session.id)?.action ?? 'reused')));
  const absent = (row: SessionRow) => ({ id: row.id, parentID: row.parent_id, title: row.title, messages: 0, rawBytes: 0, storedBytes: 0, busy: false });
  for (const row of plan.deletedThere) out.push(describe(absent(row), 'deleted-there'));
  for (const row of plan.tombstoneConflicts) out.push(describe(absent(row), 'conflict'));
  return out;
}

function reportPushed(report: Context['report'], pushed: PushedSession[]): void {
  for (const item of pushed) {
    if (item.action === 'conflict') {
      report.warn(
        `session ${item.id} ("${item.title}") changed (or was deleted) here and in the remote since the last sync; the remote's side was kept ` +
          '(pull to see both sides, or push --force to publish this host\'s side)',
      );
    } else if (item.action === 'remote-newer') {
      report.info(`session ${item.id} is newer in the remote and unchanged here; run \`sessmig pull\` to get it`);
    } else if (item.action === 'deleted-there') {
      report.info(`session ${item.id} ("${item.title}") was deleted on another host and is unchanged here: not pushed back; \`sessmig pull\` removes it here`);
    }
  }
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
    ...(blob.facts.lastUsed.model || blob.facts.lastUsed.agent !== undefined ? { lastUsed: { ...blob.facts.lastUsed } } : {}),
    ...(todos.has(row.id) ? { todos: todos.get(row.id) } : {}),
  };
}

/** Uploads a blob unless the remote already has it; verifies it is there. Returns whether it uploaded. */
/** Stores the blob unless the remote has its content (blob/storedObject.ts); the manifest then records the stored object's size. */
async function storeBlob(ctx: Context, blob: ExportedBlob): Promise<boolean> {
  const stored = await storeObject(ctx.remote, blobKey(ctx.worktree.key, blob.sha256), blob.file, blob);
  blob.storedBytes = stored.storedBytes;
  return stored.uploaded;
}

export function pushExitCode(result: PushResult): ExitCode {
  return result.skipped.length > 0 || result.sessions.some((session) => session.action === 'conflict') ? ExitCode.partial : ExitCode.ok;
}

function sortSkipped(skipped: SkippedSession[]): SkippedSession[] {
  return [...skipped].sort((a, b) => (a.id < b.id ? -1 : 1));
}
