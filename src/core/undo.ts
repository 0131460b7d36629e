import { existsSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeShares, type ShareRow } from '../opencode/shareRows.js';
import { writeTodos, type Todo } from '../opencode/todos.js';
import { messageCounts } from '../opencode/sessionQueries.js';
import { listBackups, writeBackupIndex, type BackupRecord } from './backups.js';
import { alignRestored } from './destinationChecks.js';
import type { Context } from './context.js';
import { SessmigError } from '../util/errors.js';
import { orderParentsFirst } from './sessionTree.js';
import { CodeBackup, undoCode } from '../code/codeBackup.js';
import { SyncState, saveSyncState, type SyncEntry } from './syncState.js';

export interface UndoableEntry {
  pullId: string;
  createdAt: string;
  checkpoint: string;
  imported: string[];
  restores: { id: string; title: string; messages: number | null }[];
  undoneAt: string | null;
  dir: string;
}

export interface UndoResult {
  worktree: string;
  pullId: string;
  removed: string[];
  restored: { id: string; messages: number }[];
}

function describe(record: BackupRecord & { dir: string }): UndoableEntry {
  return {
    pullId: record.pullId,
    createdAt: record.createdAt,
    checkpoint: record.checkpoint,
    imported: record.imported,
    restores: record.sessions.map((s) => ({ id: s.id, title: s.title, messages: s.messages ?? null })),
    undoneAt: record.undoneAt ?? null,
    dir: record.dir,
  };
}

/** The pulls on this host that can be undone for this worktree, newest first. */
export async function listUndoable(ctx: Pick<Context, 'paths' | 'worktree'>): Promise<UndoableEntry[]> {
  return (await listBackups(ctx.paths.state, ctx.worktree.key)).filter((record) => record.complete).map(describe);
}

/**
 * Undoes the last pull on this host in this worktree: removes what it imported and re-imports,
 * from its backups, the local sessions it replaced or deleted — then checks through opencode that
 * each restored session has the message count it had before the pull.
 */
export async function undo(ctx: Context): Promise<UndoResult> {
  const { opencode, worktree, report } = ctx;
  const records = (await listBackups(ctx.paths.state, worktree.key)).filter((record) => record.complete && !record.undoneAt);
  const record = records[0];
  if (!record) {
    throw new SessmigError('nothing-to-undo', `no pull on this host can be undone for worktree ${worktree.key}`, {
      hint: 'see `sessmig undo --list`; a pull that changed nothing, or one already undone, leaves nothing to undo',
    });
  }
  report.info(`undoing pull ${record.pullId} (checkpoint ${record.checkpoint}) in worktree ${worktree.key}`);
  // The code first: it refuses (code-changed-since-apply) when the checkout changed since the pull,
  // before any session is touched.
  if (record.code !== undefined) {
    await undoCode(CodeBackup.parse(record.code), { backupDir: record.dir, tempDir: ctx.tempDir, env: ctx.env });
    report.info(`restored the checkout's code as it was before pull ${record.pullId}`);
  }
  const present = new Set((await opencode.listSessions()).map((row) => row.id));
  // Delete the imported sessions, children first (deleting a parent takes its children too).
  const removed: string[] = [];
  for (const id of [...record.imported].reverse()) {
    if (!present.has(id)) continue;
    await opencode.deleteSession(id, worktree.root);
    present.delete(id);
    removed.push(id);
  }
  const restores = orderParentsFirst(record.sessions.map((s) => ({ ...s, parentID: s.parentID })));
  const todos = new Map<string, Todo[]>();
  const shares = new Map<string, ShareRow>();
  for (const entry of restores) {
    if (present.has(entry.id)) await opencode.deleteSession(entry.id, worktree.root);
    const file = path.join(record.dir, entry.file);
    await access(file).catch(() => {
      throw new SessmigError('backup-missing', `the backup of ${entry.id} (${file}) is missing`, { hint: 'nothing more can be restored for it' });
    });
    const cwd = existsSync(entry.directory) ? entry.directory : worktree.root;
    await opencode.importFile(file, cwd, entry.id);
    todos.set(entry.id, entry.todos ?? []);
    if (entry.share) shares.set(entry.id, entry.share);
  }
  if (todos.size > 0) await writeTodos(opencode, todos);
  await writeShares(opencode, shares);
  // opencode's import drops fields its own export wrote (#23 item 9): put them back from the backups.
  await alignRestored(ctx, restores.map((entry) => ({ id: entry.id, title: entry.title, file: path.join(record.dir, entry.file) })));

  // Verify through opencode's own database.
  const restored: UndoResult['restored'] = [];
  if (restores.length > 0) {
    const byId = await messageCounts(opencode, restores.map((entry) => entry.id));
    for (const entry of restores) {
      const messages = byId.get(entry.id);
      if (messages === undefined || (entry.messages !== undefined && messages !== entry.messages)) {
        throw new SessmigError('undo-unverified', `session ${entry.id} did not come back whole (${messages ?? 'missing'} messages, expected ${entry.messages ?? '?'})`, {
          hint: `its backup is ${path.join(record.dir, entry.file)}; restore it by hand with \`opencode import\``,
        });
      }
      restored.push({ id: entry.id, messages });
    }
  }
  // The sync base goes back to what it was before the pull: an undone import is not a deletion here.
  if (record.syncBefore) await restoreSyncEntries(record.syncBefore.file, record.syncBefore.entries).catch((error: unknown) => report.warn(`could not restore the sync state: ${(error as Error).message}`));
  await writeBackupIndex(record.dir, { ...record, undoneAt: new Date().toISOString() });
  return { worktree: worktree.key, pullId: record.pullId, removed, restored };
}

/** Puts sync-base entries back (null: the session had none) in a sync state file, if it exists. */
async function restoreSyncEntries(file: string, entries: Record<string, SyncEntry | null>): Promise<void> {
  const parsed = SyncState.safeParse(JSON.parse(await readFile(file, 'utf8').catch(() => 'null')));
  if (!parsed.success) return;
  const state = parsed.data;
  for (const [id, entry] of Object.entries(entries)) {
    if (entry) state.sessions[id] = entry;
    else delete state.sessions[id];
  }
  await saveSyncState(file, state);
}
