/**
 * opencode's snapshot repositories (undo / revert history) and its tool-output folder, as sessmig
 * reads and extends them. Nothing here runs opencode: git does the work, on the snapshot repository's
 * GIT_DIR, the way opencode's own `packages/opencode/src/snapshot/index.ts` drives it.
 *
 * Facts this relies on (measured on the real binaries 1.3.2, 1.14.41, 1.17.19, 1.18.33; 2026-11-29):
 *  - opencode's data directory is `$XDG_DATA_HOME/opencode` (default `~/.local/share/opencode`;
 *    `packages/opencode/src/global/index.ts`, xdg-basedir).
 *  - The snapshot repository of a worktree is a bare-style git dir (no commits, no refs: trees written
 *    with `git write-tree`) at `<data>/snapshot/<project id>/<sha1 hex of the worktree path>` on
 *    1.14.41, 1.17.19 and 1.18.33, and at `<data>/snapshot/<project id>` on 1.3.2. The project id
 *    is the repository's root commit (the worktree key sessmig uses). Versions between 1.3.2 and
 *    1.14.41 are not measured: for them an existing repository at either place is used, else the
 *    newer layout.
 *  - opencode creates it with `git init` (GIT_DIR and GIT_WORK_TREE in the environment), then sets
 *    core.autocrlf=false, core.longpaths=true, core.symlinks=true, core.fsmonitor=false.
 *  - `step-start`/`step-finish` parts carry `snapshot` (a tree id there), `patch` parts carry `hash`
 *    (a tree id) and `files` (absolute paths), a session's pending `info.revert` carries `snapshot`.
 *    Revert checks the files out of the patch trees (`git checkout <hash> -- <file>`), unrevert reads
 *    the `info.revert.snapshot` tree back (`git read-tree` + `checkout-index -a -f`).
 *  - Truncated tool output is saved whole as `<data>/tool-output/tool_<id>` (1.14.41 – 1.18.33;
 *    1.3.2 did not truncate a 170 KB bash output).
 * opencode prunes its snapshot objects after 7 days (`git gc --prune=7.days`): a tree a session
 * names may be gone on the source already; it is reported, not invented.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { SessmigError } from '../util/errors.js';
import { compareVersions, parseVersion } from './versions.js';

/** A git object id: sha1 (40 hex) or sha256 (64 hex) repositories. */
export const GIT_OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** The first measured version that keeps one snapshot repository per worktree (`<project>/<sha1(worktree)>`). */
export const PER_WORKTREE_SNAPSHOTS_FROM = '1.14.41';
/** The newest measured version that keeps one snapshot repository per project (`<project>`). */
export const PER_PROJECT_SNAPSHOTS_UPTO = '1.3.2';

/** opencode's data directory for this environment: `$XDG_DATA_HOME/opencode`, else `~/.local/share/opencode`. */
export function opencodeDataDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(env.HOME || os.homedir(), '.local', 'share');
  return path.join(xdg, 'opencode');
}

/** Where opencode keeps truncated tool outputs: `<data>/tool-output`. */
export function toolOutputDir(env: NodeJS.ProcessEnv): string {
  return path.join(opencodeDataDir(env), 'tool-output');
}

/** The sha1 hex of the worktree path: opencode's `Hash.fast(worktree)` (measured equal on 1.14.41 – 1.18.33). */
export function worktreeHash(worktree: string): string {
  return createHash('sha1').update(worktree).digest('hex');
}

/**
 * The snapshot repositories opencode `version` may use for `worktree` of project `projectId`, the
 * one it would create first. Unmeasured versions between the two layouts get both.
 */
export function snapshotGitDirs(dataDir: string, projectId: string, worktree: string, version: string): string[] {
  const perWorktree = path.join(dataDir, 'snapshot', projectId, worktreeHash(worktree));
  const perProject = path.join(dataDir, 'snapshot', projectId);
  if (!parseVersion(version)) return [perWorktree];
  if (compareVersions(version, PER_PROJECT_SNAPSHOTS_UPTO) <= 0) return [perProject];
  if (compareVersions(version, PER_WORKTREE_SNAPSHOTS_FROM) >= 0) return [perWorktree];
  return [perWorktree, perProject];
}

/**
 * The environment of a git child: exactly `env` when given (execa would otherwise lay it over
 * process.env, leaking the caller's variables — e.g. GIT_DIR from a hook — into a library call).
 */
function childEnv(env: NodeJS.ProcessEnv | undefined): { env?: NodeJS.ProcessEnv; extendEnv?: boolean } {
  return env ? { env, extendEnv: false } : {};
}

async function git(gitDir: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}) {
  return execa('git', ['--git-dir', gitDir, ...args], {
    reject: false,
    ...childEnv(options.env),
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
    stripFinalNewline: true,
  });
}

/** Is `gitDir` a git directory (has HEAD and objects/)? */
export function isGitDir(gitDir: string): boolean {
  return existsSync(path.join(gitDir, 'HEAD')) && existsSync(path.join(gitDir, 'objects'));
}

/** Which of `ids` the repository has (as any object); one `git cat-file --batch-check`. */
export async function presentObjects(gitDir: string, ids: readonly string[], env?: NodeJS.ProcessEnv): Promise<Set<string>> {
  const present = new Set<string>();
  if (ids.length === 0 || !isGitDir(gitDir)) return present;
  const result = await git(gitDir, ['cat-file', '--batch-check=%(objectname) %(objecttype)'], { input: `${ids.join('\n')}\n`, env });
  if (result.exitCode !== 0) return present;
  for (const line of String(result.stdout).split('\n')) {
    const [id, type] = line.split(' ');
    if (id && type && type !== 'missing' && GIT_OBJECT_ID.test(id)) present.add(id);
  }
  return present;
}

/**
 * Packs every object reachable from `roots` (trees) that is not reachable from `held`, into `file`
 * (a git pack, `git pack-objects --stdout`: complete, no deltas against objects outside it).
 * `roots` and `held` must exist in the repository (see presentObjects). Returns the object count,
 * 0 (and no file) when there is nothing to pack.
 */
export async function packSnapshotObjects(gitDir: string, roots: readonly string[], held: readonly string[], file: string, env?: NodeJS.ProcessEnv): Promise<number> {
  if (roots.length === 0) return 0;
  const list = await git(gitDir, ['rev-list', '--objects', '--missing=allow-any', '--stdin'], {
    // `^id` lines: git before 2.42 refuses `--not` in --stdin mode (measured on 2.39.5).
    input: `${[...roots, ...held.map((id) => `^${id}`)].join('\n')}\n`,
    env,
  });
  if (list.exitCode !== 0) {
    throw new SessmigError('snapshot-failed', `cannot list the snapshot objects in ${gitDir}: ${String(list.stderr).slice(0, 300)}`, {
      hint: 'check that git works here and that the snapshot repository is readable; push again with the snapshot repository intact',
    });
  }
  const objects = String(list.stdout).split('\n').filter((line) => line.trim() !== '');
  if (objects.length === 0) return 0;
  const pack = execa('git', ['--git-dir', gitDir, 'pack-objects', '--stdout', '-q'], { input: `${objects.join('\n')}\n`, ...childEnv(env), buffer: { stdout: false }, reject: false });
  await pipeline(pack.stdout!, createWriteStream(file, { mode: 0o600 }));
  const done = await pack;
  if (done.exitCode !== 0) {
    throw new SessmigError('snapshot-failed', `git pack-objects failed in ${gitDir}: ${String(done.stderr).slice(0, 300)}`, {
      hint: 'check that git works here and that the snapshot repository is readable',
    });
  }
  return objects.length;
}

/**
 * Makes `gitDir` a snapshot repository as opencode makes one (`git init` with GIT_DIR and
 * GIT_WORK_TREE, then its four settings), unless it already is a git directory.
 */
export async function ensureSnapshotRepo(gitDir: string, worktree: string, env?: NodeJS.ProcessEnv): Promise<void> {
  if (isGitDir(gitDir)) return;
  await mkdir(gitDir, { recursive: true });
  const init = await execa('git', ['init', '-q'], { env: { ...(env ?? process.env), GIT_DIR: gitDir, GIT_WORK_TREE: worktree }, extendEnv: false, reject: false, stdin: 'ignore', cwd: worktree });
  if (init.exitCode !== 0) {
    throw new SessmigError('snapshot-failed', `cannot create the snapshot repository ${gitDir}: ${String(init.stderr).slice(0, 300)}`, { hint: 'check that the opencode data directory is writable' });
  }
  for (const [key, value] of [
    ['core.autocrlf', 'false'],
    ['core.longpaths', 'true'],
    ['core.symlinks', 'true'],
    ['core.fsmonitor', 'false'],
  ] as const) {
    await git(gitDir, ['config', key, value], { env });
  }
}

/** Adds the objects of a pack file to the repository (`git index-pack --stdin`; objects already there are fine). */
export async function addSnapshotPack(gitDir: string, file: string, env?: NodeJS.ProcessEnv): Promise<void> {
  if ((await stat(file)).size === 0) return;
  const indexer = execa('git', ['--git-dir', gitDir, 'index-pack', '--stdin'], { ...childEnv(env), reject: false, stdin: 'pipe' });
  await pipeline(createReadStream(file), indexer.stdin!);
  const done = await indexer;
  if (done.exitCode !== 0) {
    throw new SessmigError('snapshot-failed', `cannot add the snapshot objects to ${gitDir}: ${String(done.stderr).slice(0, 300)}`, {
      hint: 'check that the opencode data directory is writable and git works here; the sessions were not changed',
    });
  }
}
