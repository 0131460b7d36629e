import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { SessmigError } from '../util/errors.js';
import { OBJECT_ID } from '../format/codeSchema.js';
import { copyIndex } from './capture.js';
import { checkoutTree, installIndex } from './checkout.js';
import { git, splitNul, SYNTHETIC_IDENTITY, type GitCall } from './git.js';

/**
 * What a code apply saved of the destination before it changed anything, and how `undoCode`
 * puts it back byte for byte: HEAD (branch or detached), the position of the branch the apply
 * moved, the index file itself (a raw copy: stat data, flags and extensions included) and the
 * working tree (untracked files and the ignored files the apply overwrote included) as synthetic
 * commits under `refs/sessmig/saved/<id>/`, which keep the objects alive until undo or drop.
 */
const objectId = z.string().regex(OBJECT_ID);

export const CodeBackup = z.looseObject({
  formatVersion: z.literal(1),
  kind: z.literal('sessmig.code-backup'),
  /** 16 hex digits; names the refs `refs/sessmig/saved/<id>/…` and the files next to the record. */
  id: z.string().regex(/^[0-9a-f]{16}$/),
  destination: z.string(),
  createdAt: z.string(),
  /** The destination had no checkout (a missing or empty folder): undo empties it again. */
  created: z.boolean(),
  /** With created: whether the folder existed (empty) before. */
  folderExisted: z.boolean(),
  /** HEAD's commit before (null: unborn or created). */
  head: objectId.nullable(),
  /** HEAD's symbolic target before (`refs/heads/main`), or null when detached. */
  headRef: z.string().nullable(),
  /** The branch the apply moves, and where it was (null: it did not exist). */
  branch: z.looseObject({ name: z.string(), was: objectId.nullable() }).nullable(),
  /** Synthetic commit of the index's tree (null: unmerged index; the raw copy restores it). */
  index: objectId.nullable(),
  /** Synthetic commit of the working tree: tracked, untracked and the overwritten ignored files. */
  worktree: objectId.nullable(),
  /** The raw index file, copied next to the record (null: there was none). */
  indexFile: z.string().nullable(),
  /** Set once the apply finished: what it left, so undo can tell whether the user changed it since. */
  applied: z.looseObject({ head: objectId, index: objectId, worktree: objectId }).nullable(),
  undoneAt: z.string().nullable(),
});
export type CodeBackup = z.infer<typeof CodeBackup>;

export interface SaveOptions {
  /** The checkout's top-level folder (or a missing / empty folder). */
  destination: string;
  /** Folder this host keeps for the record (the pull's backup folder). */
  backupDir: string;
  /** The branch the apply will move. */
  branch: string | null;
  /** Untracked or ignored paths (relative, `/`-separated) the apply will overwrite: saved too. */
  overwritten: string[];
  /** The checkout's index file path and HEAD facts, when it is one. */
  checkout?: { indexFile: string; head: string | null; headRef: string | null } | undefined;
  /** Index and working-tree trees the caller just built from this checkout (writeStateTrees): reused, unless paths are overwritten. */
  trees?: { indexTree: string; worktreeTree: string } | undefined;
  env?: NodeJS.ProcessEnv;
}

/** Records the destination's state (see CodeBackup) and writes `<backupDir>/code-<id>.json`. */
export async function saveCheckoutState(options: SaveOptions): Promise<CodeBackup> {
  const id = randomBytes(8).toString('hex');
  await mkdir(options.backupDir, { recursive: true, mode: 0o700 });
  const base = {
    formatVersion: 1 as const,
    kind: 'sessmig.code-backup' as const,
    id,
    destination: options.destination,
    createdAt: new Date().toISOString(),
    applied: null,
    undoneAt: null,
  };
  if (!options.checkout) {
    const folderExisted = await lstat(options.destination).then(() => true, () => false);
    const backup: CodeBackup = { ...base, created: true, folderExisted, head: null, headRef: null, branch: null, index: null, worktree: null, indexFile: null };
    await writeBackup(options.backupDir, backup);
    return backup;
  }
  const call: GitCall = { cwd: options.destination, env: options.env };
  const { head, headRef, indexFile } = options.checkout;
  const rawCopy = path.join(options.backupDir, `code-${id}.index`);
  await copyIndex(indexFile, rawCopy);
  const hadIndex = await lstat(rawCopy).then(() => true, () => false);
  const scratch = path.join(options.backupDir, `code-${id}.scratch-index`);
  try {
    const parents = head ? ['-p', head] : [];
    const commit = async (tree: string, message: string) =>
      (await git(['commit-tree', '--no-gpg-sign', tree, ...parents, '-m', message], { ...call, extraEnv: SYNTHETIC_IDENTITY })).stdout.trim();
    let index: string | null;
    let worktree: string;
    if (options.trees && options.overwritten.length === 0) {
      index = await commit(options.trees.indexTree, 'sessmig: saved index');
      worktree = await commit(options.trees.worktreeTree, 'sessmig: saved working tree');
    } else {
      await copyIndex(indexFile, scratch);
      const indexTree = await git(['write-tree'], { ...call, indexFile: scratch, allowFailure: true });
      index = indexTree.exitCode === 0 ? await commit(indexTree.stdout.trim(), 'sessmig: saved index') : null;
      await copyIndex(indexFile, scratch);
      await git(['add', '-A', '--', '.'], { ...call, indexFile: scratch });
      for (let i = 0; i < options.overwritten.length; i += 1000) {
        await git(['add', '-f', '--', ...options.overwritten.slice(i, i + 1000).map(literal)], { ...call, indexFile: scratch });
      }
      worktree = await commit((await git(['write-tree'], { ...call, indexFile: scratch })).stdout.trim(), 'sessmig: saved working tree');
    }
    let was: string | null = null;
    if (options.branch) {
      const found = await git(['rev-parse', '--verify', '-q', `refs/heads/${options.branch}^{commit}`], { ...call, allowFailure: true });
      was = found.exitCode === 0 ? found.stdout.trim() : null;
    }
    const prefix = `refs/sessmig/saved/${id}/`;
    const updates = [
      ...(index ? [`update ${prefix}index ${index}`] : []),
      `update ${prefix}worktree ${worktree}`,
      ...(head ? [`update ${prefix}head ${head}`] : []),
      ...(was ? [`update ${prefix}branch ${was}`] : []),
    ];
    await git(['update-ref', '--stdin'], { ...call, input: `${updates.join('\n')}\n` });
    const backup: CodeBackup = {
      ...base,
      created: false,
      folderExisted: true,
      head,
      headRef,
      branch: options.branch ? { name: options.branch, was } : null,
      index,
      worktree,
      indexFile: hadIndex ? rawCopy : null,
    };
    await writeBackup(options.backupDir, backup);
    return backup;
  } finally {
    await rm(scratch, { force: true });
  }
}

export async function writeBackup(backupDir: string, backup: CodeBackup): Promise<void> {
  await writeFile(path.join(backupDir, `code-${backup.id}.json`), `${JSON.stringify(backup, null, 2)}\n`, { mode: 0o600 });
}

export interface UndoCodeOptions {
  /** Where the record lives (the same backupDir given to the apply). */
  backupDir: string;
  /** Restore even though the checkout changed since the apply (those changes are lost). */
  force?: boolean;
  /** A private folder for a temporary index. */
  tempDir: string;
  /**
   * The tree the working tree may hold now, when the apply did not finish (its rollback): every
   * path of it that the saved state lacks is deleted. Default: what the apply recorded, else HEAD.
   */
  onDisk?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Puts the destination back as `saveCheckoutState` found it: working tree (every saved file's
 * bytes and mode; files the apply added removed), the index file byte for byte, the moved branch,
 * HEAD. Refuses (`code-changed-since-apply`) when the checkout's HEAD, index or tracked files are
 * no longer what the apply left, unless `force`. Then drops the saved refs and marks the record undone.
 */
export async function undoCode(backup: CodeBackup, options: UndoCodeOptions): Promise<void> {
  if (backup.undoneAt) throw new SessmigError('code-already-undone', `the code apply ${backup.id} was undone at ${backup.undoneAt}`, { hint: 'nothing to do' });
  const root = backup.destination;
  const call: GitCall = { cwd: root, env: options.env };
  if (backup.applied && !options.force) await assertUnchangedSinceApply(backup.applied, root, options.tempDir, call);
  if (backup.created) {
    // The folder held no checkout: everything in it came from the apply.
    if (!backup.folderExisted) await rm(root, { recursive: true, force: true });
    else for (const name of await readdir(root)) await rm(path.join(root, name), { recursive: true, force: true });
  } else {
    if (!backup.worktree) throw new Error('internal: a checkout backup without a working tree');
    const scratch = path.join(options.tempDir, `code-undo-${backup.id}`);
    try {
      // The private index describes what is on disk now, so read-tree removes what the apply added.
      await git(['read-tree', options.onDisk ?? backup.applied?.worktree ?? 'HEAD'], { ...call, indexFile: scratch });
      await git(['update-index', '-q', '--refresh'], { ...call, indexFile: scratch, allowFailure: true });
      await checkoutTree(backup.worktree, scratch, call);
    } finally {
      await rm(scratch, { force: true });
    }
    const indexFile = path.resolve(root, (await git(['rev-parse', '--git-path', 'index'], call)).stdout.trim());
    await installIndex(backup.indexFile ?? undefined, indexFile);
    // Refs are only written where they differ: an apply that failed before moving them (e.g. on
    // a locked ref) is rolled back without touching them.
    if (backup.branch) {
      const ref = `refs/heads/${backup.branch.name}`;
      const now = await git(['rev-parse', '--verify', '-q', ref], { ...call, allowFailure: true });
      const current = now.exitCode === 0 ? now.stdout.trim() : null;
      if (current !== backup.branch.was) {
        if (backup.branch.was) await git(['update-ref', '-m', 'sessmig: undo code apply', ref, backup.branch.was], call);
        else await git(['update-ref', '-d', ref], call);
      }
    }
    const symbolic = await git(['symbolic-ref', '-q', 'HEAD'], { ...call, allowFailure: true });
    const headRef = symbolic.exitCode === 0 ? symbolic.stdout.trim() : null;
    if (backup.headRef) {
      if (headRef !== backup.headRef) await git(['symbolic-ref', '-m', 'sessmig: undo code apply', 'HEAD', backup.headRef], call);
    } else if (backup.head) {
      const head = (await git(['rev-parse', '--verify', '-q', 'HEAD'], { ...call, allowFailure: true })).stdout.trim();
      if (headRef !== null || head !== backup.head) await git(['update-ref', '--no-deref', '-m', 'sessmig: undo code apply', 'HEAD', backup.head], call);
    }
    await dropSavedRefs(backup, call);
  }
  await writeBackup(options.backupDir, { ...backup, undoneAt: new Date().toISOString() });
}

/** Deletes the refs that keep a backup's objects alive (after undo, or when its record is pruned). */
export async function dropSavedRefs(backup: CodeBackup, call: GitCall): Promise<void> {
  const prefix = `refs/sessmig/saved/${backup.id}/`;
  const refs = (await git(['for-each-ref', '--format=%(refname)', prefix], { ...call, allowFailure: true })).stdout.split('\n').filter(Boolean);
  if (refs.length > 0) await git(['update-ref', '--stdin'], { ...call, input: refs.map((ref) => `delete ${ref}\n`).join('') });
}

async function assertUnchangedSinceApply(applied: NonNullable<CodeBackup['applied']>, root: string, tempDir: string, call: GitCall): Promise<void> {
  const exists = await lstat(path.join(root, '.git')).then(() => true, () => false);
  if (!exists) throw changed(root, ['the checkout is gone']);
  const head = await git(['rev-parse', '--verify', '-q', 'HEAD^{commit}'], { ...call, allowFailure: true });
  const reasons: string[] = [];
  if (head.stdout.trim() !== applied.head) reasons.push('HEAD moved');
  const scratch = path.join(tempDir, `code-check-${randomBytes(4).toString('hex')}`);
  try {
    const indexFile = path.resolve(root, (await git(['rev-parse', '--git-path', 'index'], call)).stdout.trim());
    await copyIndex(indexFile, scratch);
    const indexTree = await git(['write-tree'], { ...call, indexFile: scratch, allowFailure: true });
    const appliedIndexTree = (await git(['rev-parse', `${applied.index}^{tree}`], call)).stdout.trim();
    if (indexTree.stdout.trim() !== appliedIndexTree) reasons.push('the index changed');
    await git(['read-tree', applied.worktree], { ...call, indexFile: scratch });
    await git(['update-index', '-q', '--refresh'], { ...call, indexFile: scratch, allowFailure: true });
    const files = splitNul((await git(['diff-files', '--name-only', '-z'], { ...call, indexFile: scratch })).stdout);
    if (files.length > 0) reasons.push(`files changed: ${files.slice(0, 10).join(', ')}${files.length > 10 ? ', …' : ''}`);
  } finally {
    await rm(scratch, { force: true });
  }
  if (reasons.length > 0) throw changed(root, reasons);
}

function changed(root: string, reasons: string[]): SessmigError {
  return new SessmigError('code-changed-since-apply', `${root} changed since the code was applied (${reasons.join('; ')}): undo would lose that work`, {
    hint: 'commit or save those changes elsewhere, or undo with --force to drop them',
    data: { reasons },
  });
}

/** A pathspec that matches exactly this path (no glob magic). */
export function literal(file: string): string {
  return `:(literal)${file}`;
}
