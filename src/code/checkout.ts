import { constants } from 'node:fs';
import { copyFile, rename, rm } from 'node:fs/promises';
import { SessmigError } from '../util/errors.js';
import { git, type GitCall } from './git.js';

/**
 * The two moves apply and undo share: rewrite the working tree from one tree to another through a
 * private index, and put an index file in place the way git does (through `index.lock`).
 */

/**
 * Makes the working tree at `call.cwd` hold `tree` (a tree or commit id): files in `fromIndex` but
 * not in `tree` are deleted, the others written with their modes and symlinks. `fromIndex` (a
 * private copy, consumed) describes the files as they are now; unchanged ones are not rewritten.
 * Untracked files that `tree` does not name are left alone; those it names are overwritten (the
 * caller has checked or saved them). Returns nothing; the private index then describes `tree`.
 */
export async function checkoutTree(tree: string, privateIndex: string, call: GitCall): Promise<void> {
  // --reset: local changes of tracked files do not abort (apply refused or saved them first).
  await git(['read-tree', '-u', '--reset', tree], { ...call, indexFile: privateIndex });
}

/**
 * Turns the private index (which describes the working tree) into `indexTree` while keeping the
 * stat data of entries whose content matches the file, so `git status` has nothing to re-hash.
 */
export async function stageTree(indexTree: string, privateIndex: string, call: GitCall): Promise<void> {
  await git(['read-tree', '-m', indexTree], { ...call, indexFile: privateIndex });
  // Exit 1 lists entries that differ from their files (unstaged changes): expected.
  await git(['update-index', '-q', '--refresh'], { ...call, indexFile: privateIndex, allowFailure: true });
}

/**
 * Puts the file `source` in place as the index at `indexFile`, through `<indexFile>.lock` created
 * exclusively (as git does), so a git command running at the same time fails instead of racing.
 * `source` undefined removes the index (a checkout that had none).
 */
export async function installIndex(source: string | undefined, indexFile: string): Promise<void> {
  const lock = `${indexFile}.lock`;
  try {
    if (source === undefined) await copyFile('/dev/null', lock, constants.COPYFILE_EXCL);
    else await copyFile(source, lock, constants.COPYFILE_EXCL);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SessmigError('code-index-locked', `${lock} exists: another git command is running in this checkout`, {
        hint: 'wait for it to finish (or remove the stale lock file if none runs), then re-run',
      });
    }
    throw error;
  }
  if (source === undefined) {
    await rm(indexFile, { force: true });
    await rm(lock, { force: true });
  } else {
    await rename(lock, indexFile);
  }
}
