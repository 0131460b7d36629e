import { randomBytes } from 'node:crypto';
import { copyFile, readFile, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError, usageError } from '../util/errors.js';
import { DEFAULT_CODE_MAX_BYTES } from '../format/codeLayout.js';
import { CODE_FORMAT_VERSION, type CodeBundle, type CodeState } from '../format/codeSchema.js';
import { hashFile, readBundleHeader } from './bundleFile.js';
import { existingObjects, git, splitNul, SYNTHETIC_IDENTITY, type GitCall } from './git.js';

/**
 * Capture (push side of the code leg, docs/FORMAT-code.md): HEAD, branch, index and working tree
 * of a checkout as synthetic commits, packed as one git bundle on top of the chain of the previous
 * checkpoint's code part. The user's index, stash and refs are never written: both trees are
 * built in private index files, and the only ref (`refs/sessmig/capture/<nonce>`, which
 * `git bundle create` needs to name its tip) is deleted before this returns.
 *
 * Ignored files stay home. To carry one on purpose (a `.env`), name it in the repository's git
 * config: `git config --add sessmig.codeInclude .env` (a pathspec; repeatable). Such a file
 * travels in the working tree and arrives untracked (and ignored) at the destination.
 */
export interface CaptureOptions {
  /** A private folder for the temporary index files and the bundle file (the file stays for the upload). */
  tempDir: string;
  /** The code part of the checkpoint this push builds on: its bundles become the chain's start. */
  base?: CodeState | undefined;
  /** Cap on the new bundles' bytes together (default 512 MiB); over it: `code-too-large`. */
  maxBytes?: number;
  /** Base environment for git (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** A bundle this capture wrote, at `file`, to be uploaded. */
export interface CapturedBundle extends CodeBundle {
  file: string;
}

export interface CapturedCode {
  /** The code part for the new checkpoint manifest. */
  state: CodeState;
  /** Bundles to upload: none when the state equals the base's; else one increment, or a new chain (one full bundle, or history up to the upstream merge base plus the rest). */
  newBundles: CapturedBundle[];
  /** Base bundles the chain keeps (already in the remote). */
  reusedBundles: CodeBundle[];
  /** Human warnings (submodules, LFS, includes that matched nothing). */
  warnings: string[];
}

/** A chain longer than this, or whose increments outweigh its first (full) bundle, starts over. */
const MAX_CHAIN = 32;
/** …but small chains stay: below this many bytes of increments a full bundle saves nothing worth a re-upload. */
const REBASE_FLOOR_BYTES = 1024 * 1024;

/**
 * Captures the checkout that `root` is in (any folder of it). Returns the code part and the bundle
 * files to upload (in `options.tempDir`; the caller deletes them). Errors (SessmigError):
 * `code-no-commit` and `code-unmerged` (exit 2), `code-too-large` (exit 2, names
 * `--code-max-bytes`), `git-failed`, `git-missing`. Nothing is left in the repository on any path.
 */
export async function captureCode(root: string, options: CaptureOptions): Promise<CapturedCode> {
  const repo = await describeRepository(root, { cwd: root, env: options.env });
  // From the top-level folder: `git add -A -- .` in a subfolder would capture only that subfolder.
  const call: GitCall = { cwd: repo.root, env: options.env };
  const warnings: string[] = [];
  const nonce = randomBytes(8).toString('hex');
  const indexCopy = path.join(options.tempDir, `code-index-${nonce}`);
  const worktreeIndex = path.join(options.tempDir, `code-worktree-${nonce}`);
  const ref = `refs/sessmig/capture/${nonce}`;
  let refCreated = false;
  try {
    const unmerged = splitNul((await git(['ls-files', '-u', '-z'], call)).stdout);
    if (unmerged.length > 0) {
      const files = [...new Set(unmerged.map((line) => line.slice(line.indexOf('\t') + 1)))];
      throw usageError('code-unmerged', `${repo.root} has unmerged paths (${files.slice(0, 10).join(', ')}${files.length > 10 ? ', …' : ''}); the index cannot be captured`, 'finish or abort the merge/rebase first, or push with --no-code');
    }
    const { indexTree, worktreeTree } = await writeStateTrees(repo.indexFile, indexCopy, worktreeIndex, call, warnings);
    const commit = async (tree: string, parents: string[], message: string) =>
      (await git(['commit-tree', '--no-gpg-sign', tree, ...parents.flatMap((parent) => ['-p', parent]), '-m', message], { ...call, extraEnv: SYNTHETIC_IDENTITY })).stdout.trim();
    const index = await commit(indexTree, [repo.head], 'sessmig: index');
    const worktree = await commit(worktreeTree, [index], 'sessmig: working tree');

    const submodules = await gitlinks(worktreeIndex, call);
    if (submodules.length > 0) {
      warnings.push(`${submodules.length} submodule(s) (${submodules.slice(0, 5).map((s) => s.path).join(', ')}) travel as gitlinks only: their content does not; run \`git submodule update --init\` at the destination`);
    }
    const lfsPointers = await countLfsPaths(repo.root, worktreeIndex, call);
    if (lfsPointers > 0) {
      const lfsSetUp = (await git(['config', '--get', 'filter.lfs.clean'], { ...call, allowFailure: true })).exitCode === 0;
      warnings.push(
        lfsSetUp
          ? `${lfsPointers} path(s) are tracked with git-lfs: they travel as LFS pointer files, not their content; run \`git lfs pull\` at the destination`
          : `${lfsPointers} path(s) are marked for git-lfs but git-lfs is not set up here: they travel as the bytes on disk (pointer files if never smudged)`,
      );
    }

    const base = options.base && options.base.objectFormat === repo.objectFormat ? options.base : undefined;
    const same = base !== undefined && base.head === repo.head && base.index === index && base.worktree === worktree;
    const lineage = !base ? [] : same ? base.lineage : [{ head: base.head, indexTree: base.indexTree, worktreeTree: base.worktreeTree }, ...base.lineage].slice(0, 16);
    const state = {
      formatVersion: CODE_FORMAT_VERSION as typeof CODE_FORMAT_VERSION,
      objectFormat: repo.objectFormat,
      head: repo.head,
      branch: repo.branch,
      index,
      worktree,
      indexTree,
      worktreeTree,
      lineage,
      submodules,
      lfsPointers,
    };
    if (base && same) return { state: { ...state, bundles: base.bundles }, newBundles: [], reusedBundles: base.bundles, warnings };

    // Incremental when this repository still has some of the chain's commits. The tip is a
    // transport commit whose parents are the new working-tree commit and the base's index and
    // working-tree commits: git only leaves out objects of excluded commits that are parents
    // of what it packs, so this is what keeps unchanged untracked files out of the bundle.
    const chainTips = base ? base.bundles.flatMap((bundle) => bundle.tips) : [];
    const known = base ? await existingObjects([...chainTips, base.head, base.index, base.worktree], call) : new Set<string>();
    const incremental = base !== undefined && known.size > 0;
    const bundle = async (name: string, tip: string, exclude: string[]): Promise<CapturedBundle> => {
      await git(['update-ref', ref, tip], call);
      refCreated = true;
      const file = path.join(options.tempDir, `code-${nonce}-${name}.bundle`);
      await git(['bundle', 'create', '-q', file, ref, ...(exclude.length > 0 ? ['--not', ...exclude] : [])], call);
      const header = await readBundleHeader(file);
      const { sha256, bytes } = await hashFile(file);
      return { file, sha256, bytes, prerequisites: header.prerequisites, tips: header.refs.map((r) => r.id) };
    };
    const increment = async (against: CodeState): Promise<CapturedBundle> => {
      const tip = await commit(worktreeTree, [worktree, ...[against.worktree, against.index].filter((id) => known.has(id))], 'sessmig: transport');
      return bundle('incremental', tip, [...new Set([...chainTips, against.head, against.index, against.worktree])].filter((id) => known.has(id)));
    };
    // A new chain. When HEAD shares history with its upstream (or origin's HEAD), the chain is
    // two bundles: that history up to the merge base, then everything else on top of it. A
    // destination that is a clone already has the first and downloads only the second; an empty
    // folder downloads both.
    const fullChain = async (): Promise<CapturedBundle[]> => {
      const tip = await commit(worktreeTree, [worktree], 'sessmig: transport');
      const upstream = await upstreamBase(call);
      if (!upstream) return [await bundle('full', tip, [])];
      const history = await bundle('history', upstream, []);
      return [history, await bundle('local', tip, [upstream])];
    };

    let fresh: CapturedBundle[];
    let reusedBundles: CodeBundle[] = [];
    if (incremental && base) {
      fresh = [await increment(base)];
      const increments = base.bundles.slice(1).reduce((sum, b) => sum + b.bytes, 0) + fresh[0]!.bytes;
      const first = base.bundles[0];
      if (base.bundles.length >= MAX_CHAIN || (first && increments > Math.max(first.bytes, REBASE_FLOOR_BYTES))) {
        await rm(fresh[0]!.file, { force: true });
        fresh = await fullChain();
      } else {
        reusedBundles = base.bundles;
      }
    } else {
      fresh = await fullChain();
    }
    const maxBytes = options.maxBytes ?? DEFAULT_CODE_MAX_BYTES;
    const newBytes = fresh.reduce((sum, b) => sum + b.bytes, 0);
    if (newBytes > maxBytes) {
      for (const b of fresh) await rm(b.file, { force: true });
      throw codeTooLarge(newBytes, maxBytes);
    }
    return { state: { ...state, bundles: [...reusedBundles, ...fresh.map(strip)] }, newBundles: fresh, reusedBundles, warnings };
  } finally {
    if (refCreated) await git(['update-ref', '-d', ref], { ...call, allowFailure: true });
    await rm(indexCopy, { force: true });
    await rm(worktreeIndex, { force: true });
  }
}

/**
 * The index tree and the working-tree tree of the checkout whose index is `indexFile`, built in the private index files
 * `indexCopy` and `worktreeIndex` (left for the caller to read and delete). The working tree is
 * `git add -A` (untracked included, ignored excluded) plus `git add -f` of each
 * `sessmig.codeInclude` pathspec; one that matches nothing adds a warning.
 */
export async function writeStateTrees(indexFile: string, indexCopy: string, worktreeIndex: string, call: GitCall, warnings: string[] = []): Promise<{ indexTree: string; worktreeTree: string }> {
  // write-tree refreshes the cache-tree extension of the index it reads: work on copies.
  await copyIndex(indexFile, indexCopy);
  await copyIndex(indexFile, worktreeIndex);
  const indexTree = (await git(['write-tree'], { ...call, indexFile: indexCopy })).stdout.trim();
  await git(['add', '-A', '--', '.'], { ...call, indexFile: worktreeIndex });
  const includes = (await git(['config', '--get-all', 'sessmig.codeInclude'], { ...call, allowFailure: true })).stdout.split('\n').map((line) => line.trim()).filter(Boolean);
  for (const include of includes) {
    const added = await git(['add', '-f', '--', include], { ...call, indexFile: worktreeIndex, allowFailure: true });
    if (added.exitCode !== 0) warnings.push(`sessmig.codeInclude ${JSON.stringify(include)} matched nothing; not carried`);
  }
  const worktreeTree = (await git(['write-tree'], { ...call, indexFile: worktreeIndex })).stdout.trim();
  return { indexTree, worktreeTree };
}

export function codeTooLarge(bytes: number, maxBytes: number): SessmigError {
  return new SessmigError('code-too-large', `the code leg needs a ${bytes}-byte bundle, over the cap of ${maxBytes} bytes`, {
    hint: 'raise the cap with --code-max-bytes N (bytes), or leave the code behind with --no-code; large untracked files are the usual cause (ignore them in .gitignore)',
    data: { bytes, maxBytes },
  });
}

export interface RepositoryFacts {
  root: string;
  gitDir: string;
  /** Absolute path of this worktree's index file (a linked worktree has its own). */
  indexFile: string;
  objectFormat: 'sha1' | 'sha256';
  /** `git rev-parse HEAD`. */
  head: string;
  /** The checked-out branch without refs/heads/, or null (detached). */
  branch: string | null;
}

/** HEAD, branch and paths of the checkout at root; `code-no-commit` before the first commit. */
export async function describeRepository(root: string, call: GitCall): Promise<RepositoryFacts> {
  const facts = (await git(['rev-parse', '--show-toplevel', '--absolute-git-dir', '--git-path', 'index', '--show-object-format'], call)).stdout.split('\n');
  const [top, gitDir, indexPath, format] = facts;
  if (!top || !gitDir || !indexPath) throw new SessmigError('git-failed', `git rev-parse gave no worktree facts in ${root}`);
  const head = await git(['rev-parse', '--verify', '-q', 'HEAD^{commit}'], { ...call, allowFailure: true });
  if (head.exitCode !== 0) {
    throw usageError('code-no-commit', `${root} has no commit yet: there is no code to carry`, 'make a first commit, or push with --no-code');
  }
  const symbolic = await git(['symbolic-ref', '-q', 'HEAD'], { ...call, allowFailure: true });
  const full = symbolic.stdout.trim();
  const branch = symbolic.exitCode === 0 && full.startsWith('refs/heads/') ? full.slice('refs/heads/'.length) : null;
  return {
    root: top,
    gitDir,
    indexFile: path.resolve(root, indexPath),
    objectFormat: format === 'sha256' ? 'sha256' : 'sha1',
    head: head.stdout.trim(),
    branch,
  };
}

/**
 * The merge base of HEAD with its upstream branch, else with `refs/remotes/origin/HEAD`: history a
 * clone of the repository already has. Undefined when there is neither, or no common history.
 */
async function upstreamBase(call: GitCall): Promise<string | undefined> {
  for (const candidate of ['@{upstream}', 'refs/remotes/origin/HEAD']) {
    const found = await git(['rev-parse', '-q', '--verify', `${candidate}^{commit}`], { ...call, allowFailure: true });
    if (found.exitCode !== 0) continue;
    const base = await git(['merge-base', 'HEAD', found.stdout.trim()], { ...call, allowFailure: true });
    if (base.exitCode === 0 && base.stdout.trim()) return base.stdout.trim();
  }
  return undefined;
}

/**
 * Copies the index at `from` to `to`; a missing index (a fresh clone with no checkout) copies as
 * empty. The copy keeps the original's modification time: git's racy-clean check compares each
 * entry's file time with the index file's, and a newer copy would make git trust stat data of a
 * file rewritten in the same second as the index (same size) and miss the change.
 */
export async function copyIndex(from: string, to: string): Promise<void> {
  try {
    await copyFile(from, to);
    const { atime, mtime } = await stat(from);
    await utimes(to, atime, mtime);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await rm(to, { force: true });
  }
}

async function gitlinks(indexFile: string, call: GitCall): Promise<{ path: string; commit: string }[]> {
  const out: { path: string; commit: string }[] = [];
  for (const line of splitNul((await git(['ls-files', '-s', '-z'], { ...call, indexFile })).stdout)) {
    if (!line.startsWith('160000 ')) continue;
    const [meta, file] = [line.slice(0, line.indexOf('\t')), line.slice(line.indexOf('\t') + 1)];
    out.push({ path: file, commit: meta.split(' ')[1] ?? '' });
  }
  return out;
}

/** Paths the .gitattributes files route through git-lfs (0 without any `filter=lfs` line: no per-file check). */
async function countLfsPaths(root: string, indexFile: string, call: GitCall): Promise<number> {
  const attributes = splitNul((await git(['ls-files', '-z', '--', '.gitattributes', ':(glob)**/.gitattributes'], { ...call, indexFile })).stdout);
  let mentioned = false;
  for (const file of attributes) {
    const text = await readFile(path.join(root, file), 'utf8').catch(() => '');
    if (/filter=lfs/.test(text)) mentioned = true;
  }
  if (!mentioned) return 0;
  const files = (await git(['ls-files', '-z'], { ...call, indexFile })).stdout;
  const checked = splitNul((await git(['check-attr', '--stdin', '-z', 'filter'], { ...call, indexFile, input: files })).stdout);
  let count = 0;
  for (let i = 0; i + 2 < checked.length; i += 3) if (checked[i + 2] === 'lfs') count++;
  return count;
}

function strip(bundle: CapturedBundle): CodeBundle {
  const { file: _file, ...rest } = bundle;
  return rest;
}
