import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { CodeState } from '../format/codeSchema.js';
import { describeRepository, writeStateTrees } from './capture.js';
import { CodeBackup } from './codeBackup.js';
import type { GitCall } from './git.js';

/**
 * For `sessmig status`: does the checkout at root hold the checkpoint's code state? Compares HEAD,
 * branch, the index tree and the working-tree tree (built as capture builds them: untracked files
 * and `sessmig.codeInclude` included, ignored files left out) with the manifest's ids — no object of the checkpoint is needed, and nothing is written to the user's index or refs.
 */
export interface CodeComparison {
  same: boolean;
  head: boolean;
  branch: boolean;
  index: boolean;
  worktree: boolean;
}

export async function compareCode(root: string, state: CodeState, options: { tempDir: string; env?: NodeJS.ProcessEnv }): Promise<CodeComparison> {
  const repo = await describeRepository(root, { cwd: root, env: options.env });
  const call: GitCall = { cwd: repo.root, env: options.env };
  const nonce = randomBytes(4).toString('hex');
  const indexCopy = path.join(options.tempDir, `code-status-${nonce}.index`);
  const worktreeIndex = path.join(options.tempDir, `code-status-${nonce}.worktree`);
  try {
    const { indexTree, worktreeTree } = await writeStateTrees(repo.indexFile, indexCopy, worktreeIndex, call);
    const result = {
      head: repo.head === state.head,
      branch: repo.branch === state.branch,
      index: indexTree === state.indexTree,
      worktree: worktreeTree === state.worktreeTree,
    };
    return { same: result.head && result.branch && result.index && result.worktree, ...result };
  } finally {
    await rm(indexCopy, { force: true });
    await rm(worktreeIndex, { force: true });
  }
}

/** Reads a record written by applyCode (`<backupDir>/code-<id>.json`), checked against the schema. */
export async function loadCodeBackup(file: string): Promise<CodeBackup> {
  return CodeBackup.parse(JSON.parse(await readFile(file, 'utf8')));
}
