import { execa } from 'execa';
import { SessmigError, usageError } from '../util/errors.js';

/**
 * The one way the code leg runs the real `git` CLI. Every call gets a clean environment: the
 * caller's GIT_DIR / GIT_INDEX_FILE / GIT_WORK_TREE and friends are dropped (a sessmig started
 * from a git hook must not act on the hook's repository), optional locks are off (so a status
 * never rewrites the user's index), and messages are in English for the error texts we quote.
 */
export interface GitCall {
  /** Working directory (a worktree root, or any folder for `git init`). */
  cwd: string;
  /** Base environment (default process.env); repository-selecting GIT_* variables are removed. */
  env?: NodeJS.ProcessEnv;
  /** GIT_INDEX_FILE: an absolute path to a private index, so the user's index is never written. */
  indexFile?: string;
  /** Extra variables set after the clean-up (e.g. the synthetic commits' identity). */
  extraEnv?: Record<string, string>;
  /** Bytes or text for stdin. */
  input?: string | Buffer;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

export interface GitResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const DROPPED = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_NAMESPACE',
  'GIT_COMMON_DIR',
  'GIT_PREFIX',
  'GIT_QUARANTINE_PATH',
];

export function gitEnv(call: Pick<GitCall, 'env' | 'indexFile' | 'extraEnv'>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...(call.env ?? process.env) };
  for (const name of DROPPED) delete env[name];
  env.GIT_OPTIONAL_LOCKS = '0';
  env.GIT_TERMINAL_PROMPT = '0';
  env.LC_ALL = 'C';
  if (call.indexFile) env.GIT_INDEX_FILE = call.indexFile;
  return { ...env, ...call.extraEnv };
}

/** Runs `git args…`; throws `git-failed` (with git's stderr) on a non-zero exit unless allowFailure. */
export async function git(args: string[], call: GitCall): Promise<GitResult> {
  const started = (call.env ?? process.env).SESSMIG_TRACE_GIT ? Date.now() : 0;
  let result;
  try {
    result = await execa('git', args, {
      cwd: call.cwd,
      env: gitEnv(call),
      extendEnv: false,
      reject: false,
      input: call.input,
      stdin: call.input === undefined ? 'ignore' : undefined,
      maxBuffer: 1024 ** 3,
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw gitMissing();
    throw error;
  }
  if (result.failed && result.exitCode === undefined) {
    if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw gitMissing();
    throw new SessmigError('git-failed', `git ${args[0]} could not run in ${call.cwd}: ${result.shortMessage}`, { hint: 'check that git works here' });
  }
  // A diagnostic for the bench: every git call of the code leg with its wall time, on stderr.
  if (started) process.stderr.write(`git ${args.join(' ').slice(0, 120)}  ${Date.now() - started} ms\n`);
  const out: GitResult = { exitCode: result.exitCode ?? 1, stdout: String(result.stdout), stderr: String(result.stderr) };
  if (out.exitCode !== 0 && !call.allowFailure) {
    throw new SessmigError('git-failed', `git ${args.slice(0, 2).join(' ')} failed in ${call.cwd}: ${out.stderr.trim() || `exit ${out.exitCode}`}`, {
      hint: 'nothing of the code leg was committed; fix the repository (git fsck) or report the message',
      data: { args, exitCode: out.exitCode },
    });
  }
  return out;
}

/** Lines of a `-z` output (NUL-separated), without the empty tail. */
export function splitNul(text: string): string[] {
  const parts = text.split('\0');
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/** Object ids that exist in the repository at cwd, out of `ids` (one `cat-file --batch-check`). */
export async function existingObjects(ids: readonly string[], call: GitCall): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { stdout } = await git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], { ...call, input: `${ids.join('\n')}\n` });
  const present = new Set<string>();
  for (const line of stdout.split('\n')) {
    const [id, type] = line.split(' ');
    if (id && type && type !== 'missing') present.add(id);
  }
  return present;
}

/** A fixed author and committer for synthetic commits: no user config needed, and equal input gives equal ids. */
export const SYNTHETIC_IDENTITY: Record<string, string> = {
  GIT_AUTHOR_NAME: 'sessmig',
  GIT_AUTHOR_EMAIL: 'sessmig@localhost',
  GIT_AUTHOR_DATE: '1700000000 +0000',
  GIT_COMMITTER_NAME: 'sessmig',
  GIT_COMMITTER_EMAIL: 'sessmig@localhost',
  GIT_COMMITTER_DATE: '1700000000 +0000',
};

function gitMissing(): SessmigError {
  return usageError('git-missing', 'git is not installed or not on PATH', 'install git; the code leg runs the git CLI');
}
