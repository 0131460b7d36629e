import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ShareRow } from '../opencode/shareRows.js';
import { Todo } from '../opencode/todos.js';

/**
 * Backups of local sessions that a pull replaced or deleted: each an `opencode export` JSON that
 * `opencode import` restores as is, under $XDG_STATE_HOME/sessmig/backups/<worktree>/<pull id>/.
 */
export const BackupIndex = z.looseObject({
  formatVersion: z.literal(1),
  worktree: z.string(),
  worktreeRoot: z.string(),
  pullId: z.string(),
  createdAt: z.string(),
  checkpoint: z.string(),
  /** False until the pull finished; an incomplete record (a pull that failed and rolled back) is not undoable. */
  complete: z.boolean().default(true),
  /** Set on an unfinished record (a pull that was killed) once a later pull finished in its place. */
  supersededAt: z.string().optional(),
  /** Set by `sessmig undo` once it restored this pull's backups. */
  undoneAt: z.string().optional(),
  /**
   * The sync base before this pull: its file and, per session the pull changed, the entry it had
   * (null: none). `sessmig undo` puts these back, so an undone import is not taken for a deletion.
   */
  syncBefore: z.looseObject({ file: z.string(), entries: z.record(z.string(), z.looseObject({ contentHash: z.string(), sha256: z.string(), localTimeUpdated: z.number().nullable() }).nullable()) }).optional(),
  /** The code leg's saved checkout state (src/code/codeBackup.ts), when this pull applied code. */
  code: z.unknown().optional(),
  /** Sessions this pull imported (new or replacing a local copy). */
  imported: z.array(z.string()).default([]),
  /** Local sessions this pull deleted, each backed up as an opencode export file. */
  sessions: z.array(
    z.looseObject({
      id: z.string(),
      parentID: z.string().nullable(),
      title: z.string(),
      directory: z.string(),
      reason: z.string(),
      file: z.string(),
      messages: z.number().int().nonnegative().optional(),
      contentHash: z.string().optional(),
      todos: z.array(Todo).optional(),
      /** The session's share (opencode's session_share row, with its secret): restored after the re-import (shareRows.ts). */
      share: ShareRow.optional(),
    }),
  ),
});
export type BackupIndex = z.input<typeof BackupIndex>;
export type BackupRecord = z.infer<typeof BackupIndex>;

export function backupsDir(stateDir: string, worktree: string): string {
  return path.join(stateDir, 'backups', worktree);
}

export async function createBackupDir(stateDir: string, worktree: string, pullId: string): Promise<string> {
  const dir = path.join(backupsDir(stateDir, worktree), pullId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export async function writeBackupIndex(dir: string, index: BackupIndex): Promise<void> {
  await writeFile(path.join(dir, 'index.json'), `${JSON.stringify(index, null, 2)}\n`, { mode: 0o600 });
}

/** The backups of one worktree, newest first. */
export async function listBackups(stateDir: string, worktree: string): Promise<(BackupRecord & { dir: string })[]> {
  const root = backupsDir(stateDir, worktree);
  const names = await readdir(root).catch(() => [] as string[]);
  const out: (BackupRecord & { dir: string })[] = [];
  for (const name of names.sort().reverse()) {
    const dir = path.join(root, name);
    try {
      const parsed = BackupIndex.safeParse(JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')));
      if (parsed.success) out.push({ ...parsed.data, dir });
    } catch {
      // An interrupted pull may leave a folder without an index: not a usable backup.
    }
  }
  return out;
}

/**
 * Pulls on this host that were stopped half-way (killed: neither complete nor rolled back) and
 * not yet followed by a finished pull. The sessions they deleted were deleted by sessmig, not by
 * the user: the next pull must bring them back rather than take them for deletions.
 */
export async function unfinishedPulls(stateDir: string, worktree: string): Promise<(BackupRecord & { dir: string })[]> {
  return (await listBackups(stateDir, worktree)).filter((record) => !record.complete && !record.undoneAt && !record.supersededAt);
}
