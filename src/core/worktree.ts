import { execa } from 'execa';
import { readdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError, usageError } from '../util/errors.js';
import { assertWorktreeKey, WORKTREE_KEY } from '../format/ids.js';

export interface Worktree {
  /** The worktree's top-level directory (real path). */
  root: string;
  /** The worktree key used in the remote. */
  key: string;
  /** How the key was chosen. */
  keySource: 'opencode-project' | 'flag' | 'ticket';
  /** The checked-out branch (short name), or null on a detached HEAD. */
  branch: string | null;
  /** opencode's project id of the repository (undefined: no commit yet), whatever the key. */
  projectId?: string;
  /** The repository's other linked checkouts on this host (`git worktree list`), with their branches. */
  otherCheckouts: { root: string; branch: string | null }[];
  /** An empty folder, not yet a checkout: a pull with the code leg creates the checkout here. */
  empty?: boolean;
}

/**
 * Finds the git worktree around `cwd` and its key: opencode's own project id (the cached
 * `.git/opencode`, else the repo's first root commit — what opencode computes), so two clones
 * of one repo agree with no configuration; or the name given with --worktree.
 */
export async function findWorktree(
  cwd: string,
  explicitKey: string | undefined,
  env: NodeJS.ProcessEnv,
  /** emptyFolder: an empty folder is a destination; keyFromTicket: then its key comes from a ticket (key '' until the ticket is read). */
  options: { emptyFolder?: boolean; keyFromTicket?: boolean } = {},
): Promise<Worktree> {
  const git = async (args: string[]) => {
    try {
      const result = await execa('git', args, { cwd, env, extendEnv: false, reject: false, stdin: 'ignore' });
      return { ok: result.exitCode === 0, out: String(result.stdout).trim() };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw usageError('git-missing', 'git is not installed or not on PATH', 'install git; sessmig finds worktrees with it');
      }
      throw error;
    }
  };
  const top = await git(['rev-parse', '--show-toplevel']);
  if ((!top.ok || !top.out) && options.emptyFolder && (await readdir(cwd).catch(() => ['?'])).length === 0) {
    // A fresh box: the pull's code leg makes this folder the checkout. The key cannot come from a
    // repository that is not here yet, so it must be named.
    const root = await realpath(cwd).catch(() => path.resolve(cwd));
    if (explicitKey === undefined && options.keyFromTicket) return { root, key: '', keySource: 'ticket', branch: null, otherCheckouts: [], empty: true };
    if (explicitKey === undefined) {
      throw usageError('worktree-key-needed', `${cwd} is an empty folder: sessmig cannot tell which worktree of the remote to pull into it`, 'name it with --worktree KEY (`sessmig ls` lists them), e.g. `sessmig pull --migrate --worktree KEY`');
    }
    return { root, key: assertWorktreeKey(explicitKey), keySource: 'flag', branch: null, otherCheckouts: [], empty: true };
  }
  if (!top.ok || !top.out) {
    throw usageError(
      'not-a-worktree',
      `${cwd} is not inside a git worktree`,
      'cd into the repository whose opencode sessions you want to move (sessmig keys sessions by repository)',
    );
  }
  const root = await realpath(top.out).catch(() => path.resolve(top.out));
  const [branch, checkouts, projectId] = await Promise.all([
    git(['symbolic-ref', '--quiet', '--short', 'HEAD']).then((r) => (r.ok && r.out ? r.out : null)),
    git(['worktree', 'list', '--porcelain']).then((r) => (r.ok ? parseWorktreeList(r.out) : [])),
    projectIdOf(git),
  ]);
  const otherCheckouts: { root: string; branch: string | null }[] = [];
  for (const checkout of checkouts) {
    const real = await realpath(checkout.root).catch(() => undefined);
    if (real !== undefined && real !== root) otherCheckouts.push({ root: real, branch: checkout.branch });
  }
  const common = { root, branch, otherCheckouts, ...(projectId ? { projectId } : {}) };
  if (explicitKey !== undefined) return { ...common, key: assertWorktreeKey(explicitKey), keySource: 'flag' };
  if (!projectId) {
    throw new SessmigError('no-commit', `the repository at ${root} has no commit yet, so it has no opencode project id`, {
      hint: 'make a first commit, or name the worktree with --worktree NAME',
    });
  }
  return { ...common, key: projectId, keySource: 'opencode-project' };
}

/** opencode's project id: the cached `.git/opencode` (linked checkout's or common dir), else the first root commit. */
async function projectIdOf(git: (args: string[]) => Promise<{ ok: boolean; out: string }>): Promise<string | undefined> {
  const gitDir = await git(['rev-parse', '--absolute-git-dir']);
  const commonDir = await git(['rev-parse', '--path-format=absolute', '--git-common-dir']);
  for (const dir of [gitDir.out, commonDir.out]) {
    if (!dir) continue;
    const cached = (await readFile(path.join(dir, 'opencode'), 'utf8').catch(() => '')).trim();
    if (cached && WORKTREE_KEY.test(cached)) return cached;
  }
  const roots = await git(['rev-list', '--max-parents=0', 'HEAD']);
  return roots.ok ? roots.out.split('\n').map((line) => line.trim()).filter(Boolean).sort()[0] : undefined;
}

/** `git worktree list --porcelain`: one block per checkout (`worktree PATH`, `branch refs/heads/NAME` or `detached`). */
export function parseWorktreeList(text: string): { root: string; branch: string | null }[] {
  const out: { root: string; branch: string | null }[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const lines = block.split('\n');
    const root = lines.find((line) => line.startsWith('worktree '))?.slice('worktree '.length);
    if (!root || lines.includes('bare')) continue;
    const branch = lines.find((line) => line.startsWith('branch '))?.slice('branch '.length).replace(/^refs\/heads\//, '') ?? null;
    out.push({ root, branch });
  }
  return out;
}

/** Is `dir` the worktree root or inside it? */
export function isInside(root: string, dir: string): boolean {
  const rel = path.relative(root, dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
