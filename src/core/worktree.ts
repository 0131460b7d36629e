import { execa } from 'execa';
import { readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError, usageError } from './errors.js';
import { assertWorktreeKey, WORKTREE_KEY } from '../format/ids.js';

export interface Worktree {
  /** The worktree's top-level directory (real path). */
  root: string;
  /** The worktree key used in the remote. */
  key: string;
  /** How the key was chosen. */
  keySource: 'opencode-project' | 'flag';
}

/**
 * Finds the git worktree around `cwd` and its key: opencode's own project id (the cached
 * `.git/opencode`, else the repo's first root commit — what opencode computes), so two clones
 * of one repo agree with no configuration; or the name given with --worktree.
 */
export async function findWorktree(cwd: string, explicitKey: string | undefined, env: NodeJS.ProcessEnv): Promise<Worktree> {
  const git = async (args: string[]) => {
    try {
      const result = await execa('git', args, { cwd, env, reject: false, stdin: 'ignore' });
      return { ok: result.exitCode === 0, out: String(result.stdout).trim() };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw usageError('git-missing', 'git is not installed or not on PATH', 'install git; sessmig finds worktrees with it');
      }
      throw error;
    }
  };
  const top = await git(['rev-parse', '--show-toplevel']);
  if (!top.ok || !top.out) {
    throw usageError(
      'not-a-worktree',
      `${cwd} is not inside a git worktree`,
      'cd into the repository whose opencode sessions you want to move (sessmig keys sessions by repository)',
    );
  }
  const root = await realpath(top.out).catch(() => path.resolve(top.out));
  if (explicitKey !== undefined) return { root, key: assertWorktreeKey(explicitKey), keySource: 'flag' };

  const gitDir = await git(['rev-parse', '--absolute-git-dir']);
  const commonDir = await git(['rev-parse', '--path-format=absolute', '--git-common-dir']);
  for (const dir of [gitDir.out, commonDir.out]) {
    if (!dir) continue;
    const cached = (await readFile(path.join(dir, 'opencode'), 'utf8').catch(() => '')).trim();
    if (cached && WORKTREE_KEY.test(cached)) return { root, key: cached, keySource: 'opencode-project' };
  }
  const roots = await git(['rev-list', '--max-parents=0', 'HEAD']);
  const first = roots.ok ? roots.out.split('\n').map((line) => line.trim()).filter(Boolean).sort()[0] : undefined;
  if (!first) {
    throw new SessmigError('no-commit', `the repository at ${root} has no commit yet, so it has no opencode project id`, {
      hint: 'make a first commit, or name the worktree with --worktree NAME',
      exitCode: 2,
    });
  }
  return { root, key: first, keySource: 'opencode-project' };
}

/** Is `dir` the worktree root or inside it? */
export function isInside(root: string, dir: string): boolean {
  const rel = path.relative(root, dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
