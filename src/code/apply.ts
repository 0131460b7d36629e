import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, realpath, rm, stat as statPath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError, usageError } from '../util/errors.js';
import type { CodeBundle, CodeState } from '../format/codeSchema.js';
import { hashFile, readBundleHeader } from './bundleFile.js';
import { copyIndex, writeStateTrees } from './capture.js';
import { checkoutTree, installIndex, stageTree } from './checkout.js';
import { saveCheckoutState, undoCode, writeBackup, type CodeBackup } from './codeBackup.js';
import { existingObjects, git, splitNul, type GitCall } from './git.js';

/**
 * Apply (pull side of the code leg, docs/FORMAT-code.md): makes a checkout hold a checkpoint's
 * HEAD, branch, index and working tree. Order, so that a refusal or a failure leaves the
 * destination as it was:
 * 1. every needed bundle is checked (sha256, size, header against the manifest, `git bundle
 *    verify`) and unbundled into a private bare repository that borrows the destination's objects
 *    (alternates), and the three state commits are checked there — nothing of the destination
 *    is written yet;
 * 2. the destination is inspected: tracked changes, untracked or ignored files in the way, a
 *    branch of that name that is not an ancestor → `code-destination-dirty`, unless `force`;
 * 3. its state is saved (CodeBackup) — always, so a failure later, or `undoCode`, restores it;
 * 4. objects are fetched from the private repository, the working tree and index rewritten, and
 *    last the branch and HEAD moved. A failure in 4 runs the undo and rethrows.
 */
export interface ApplyOptions {
  /** Bundle files by sha256 (from fetchCodeLeg); only those the destination lacks are needed. */
  bundleFiles: ReadonlyMap<string, string>;
  /** A private folder for the verification repository and temporary index files. */
  tempDir: string;
  /** Folder this host keeps the saved state in (e.g. the pull's backup folder). */
  backupDir: string;
  /** Apply over tracked changes, untracked or ignored files in the way and a diverged branch (all saved first). */
  force?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface ApplyResult {
  destination: string;
  /** The folder held no checkout: `git init` made one. */
  created: boolean;
  head: string;
  branch: string | null;
  /** The saved state: `undoCode(backup, …)` puts the destination back. */
  backup: CodeBackup;
  /** With force: what the refusal would have named (now saved in the backup). */
  overridden: DestinationConflicts | null;
}

/** What stands in the way of an apply. */
export interface DestinationConflicts {
  /** Tracked files with staged or unstaged changes. */
  changed: string[];
  /** Untracked or ignored paths that the checkpoint would overwrite. */
  inTheWay: string[];
  /** A branch of the checkpoint's name whose commit is not an ancestor of the checkpoint's head. */
  branch: { name: string; commit: string } | null;
}

/** Which bundles of `state` a destination lacks (all of them for a missing or empty folder). */
export async function bundlesNeeded(destination: string, state: CodeState, env?: NodeJS.ProcessEnv): Promise<CodeBundle[]> {
  const kind = await destinationKind(destination, env);
  if (kind !== 'checkout') return state.bundles;
  const call: GitCall = { cwd: destination, env };
  const known = await existingObjects([...state.bundles.flatMap((b) => [...b.tips, ...b.prerequisites]), state.head, state.index, state.worktree], call);
  if ([state.head, state.index, state.worktree].every((id) => known.has(id))) return [];
  // From the newest back: a bundle whose tips are here is not needed (fetched objects are
  // connected, so its whole content is here). Stop once the oldest bundle taken so far has every
  // prerequisite here; until then older bundles are taken, down to the full one if need be.
  const needed: CodeBundle[] = [];
  for (let i = state.bundles.length - 1; i >= 0; i--) {
    const bundle = state.bundles[i]!;
    if (bundle.tips.every((tip) => known.has(tip))) continue;
    needed.unshift(bundle);
    if (bundle.prerequisites.every((id) => known.has(id))) break;
  }
  return needed;
}

/**
 * Makes `destination` hold `state` (see the order above). Errors (SessmigError), all before the
 * destination changed: `code-destination-dirty` (data: changed, inTheWay, branch),
 * `code-destination-invalid`, `code-branch-busy`, `code-object-format`, `code-index-locked`,
 * `code-bundle-missing` / `code-bundle-damaged` / `code-state-incomplete` / `code-state-invalid`;
 * after it changed: the git error, once the saved state is back (`code-rollback-failed` if
 * putting it back failed too, naming the saved state).
 */
export async function applyCode(destination: string, state: CodeState, options: ApplyOptions): Promise<ApplyResult> {
  // The real path: git reports real paths (worktree list, show-toplevel), and a checkout may be reached through a symlink.
  const root = await realpath(destination).catch(() => path.resolve(destination));
  const kind = await destinationKind(root, options.env);
  const call: GitCall = { cwd: root, env: options.env };
  const nonce = randomBytes(8).toString('hex');
  const scratch = path.join(options.tempDir, `code-verify-${nonce}.git`);
  const privateIndex = path.join(options.tempDir, `code-apply-${nonce}.index`);
  try {
    // 1. Verify into a private repository.
    const facts = kind === 'checkout' ? await readCheckout(root, call) : undefined;
    if (facts && facts.objectFormat !== state.objectFormat) {
      throw usageError('code-object-format', `${root} is a ${facts.objectFormat} repository; the checkpoint's code is ${state.objectFormat}`, 'pull into an empty folder instead');
    }
    await git(['init', '-q', '--bare', `--object-format=${state.objectFormat}`, scratch], { cwd: options.tempDir, env: options.env });
    const scratchCall: GitCall = { cwd: scratch, env: options.env };
    if (facts) await writeFile(path.join(scratch, 'objects', 'info', 'alternates'), `${facts.objectsDir}\n`);
    const needed = await bundlesNeeded(root, state, options.env);
    for (const bundle of needed) await verifyAndUnbundle(bundle, options.bundleFiles, scratchCall);
    await checkStateCommits(state, scratchCall);
    if (state.branch) await git(['check-ref-format', '--branch', state.branch], scratchCall);

    // 2. What stands in the way.
    const conflicts = facts ? await findConflicts(root, state, facts, call, scratchCall) : { changed: [], inTheWay: [], branch: null };
    let trees: { indexTree: string; worktreeTree: string } | undefined;
    if (facts && (conflicts.changed.length > 0 || conflicts.inTheWay.length > 0)) {
      const held = await handedOverState(state, facts, options.tempDir, call);
      trees = held.trees;
      if (held.matches) {
        // The "local work" is a state this checkpoint descends from (the one this host handed over): nothing of it is lost.
        conflicts.changed = [];
        conflicts.inTheWay = [];
      }
    }
    const blocked = conflicts.changed.length > 0 || conflicts.inTheWay.length > 0 || conflicts.branch !== null;
    if (blocked && !options.force) throw destinationDirty(root, conflicts);
    if (facts && state.branch) await assertBranchFree(root, state.branch, call);

    // An index.lock now would make the index install fail after the files were rewritten.
    if (facts && (await lstat(`${facts.indexFile}.lock`).then(() => true, () => false))) {
      throw new SessmigError('code-index-locked', `${facts.indexFile}.lock exists: another git command is running in ${root}`, {
        hint: 'wait for it to finish (or remove the stale lock file if none runs), then re-run; nothing was changed',
      });
    }

    // 3. Save.
    const backup = await saveCheckoutState({
      destination: root,
      backupDir: options.backupDir,
      branch: state.branch,
      overwritten: conflicts.inTheWay,
      checkout: facts ? { indexFile: facts.indexFile, head: facts.head, headRef: facts.headRef } : undefined,
      trees,
      env: options.env,
    });

    // 4. Change the destination.
    try {
      if (!facts) {
        await mkdir(root, { recursive: true });
        await git(['init', '-q', `--object-format=${state.objectFormat}`], call);
      }
      await git(['config', 'uploadpack.allowAnySHA1InWant', 'true'], scratchCall);
      // The bundles' tips too: the next capture here builds its increment on them.
      const wanted = [...new Set([state.head, state.index, state.worktree, ...needed.flatMap((bundle) => bundle.tips)])];
      await git(['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', 'fetch', '-q', '--no-tags', '--no-write-fetch-head', '--no-auto-gc', scratch, ...wanted], call);
      const indexFile = facts?.indexFile ?? path.resolve(root, (await git(['rev-parse', '--git-path', 'index'], call)).stdout.trim());
      if (options.force) for (const file of conflicts.inTheWay) await rm(path.join(root, file), { recursive: true, force: true });
      if (facts) await copyIndex(facts.indexFile, privateIndex);
      await checkoutTree(state.worktree, privateIndex, call);
      await stageTree(state.index, privateIndex, call);
      await installIndex(privateIndex, indexFile);
      if (state.branch) {
        const ref = `refs/heads/${state.branch}`;
        await git(['update-ref', '-m', 'sessmig: code of a pulled checkpoint', ref, state.head, backup.branch?.was ?? zeroId(state.objectFormat)], call);
        await git(['symbolic-ref', '-m', 'sessmig: code of a pulled checkpoint', 'HEAD', ref], call);
      } else {
        await git(['update-ref', '--no-deref', '-m', 'sessmig: code of a pulled checkpoint', 'HEAD', state.head], call);
      }
      const done: CodeBackup = { ...backup, applied: { head: state.head, index: state.index, worktree: state.worktree } };
      await writeBackup(options.backupDir, done);
      return { destination: root, created: !facts, head: state.head, branch: state.branch, backup: done, overridden: blocked ? conflicts : null };
    } catch (error) {
      try {
        // The files may be anywhere between the old state and the checkpoint's: paths of the
        // checkpoint's working tree that the saved state lacks are deleted, the saved ones rewritten.
        await undoCode(backup, { backupDir: options.backupDir, tempDir: options.tempDir, force: true, onDisk: state.worktree, env: options.env });
      } catch (rollback) {
        throw new SessmigError('code-rollback-failed', `${(error as Error).message}; putting ${root} back also failed: ${(rollback as Error).message}`, {
          hint: `its saved state is in refs/sessmig/saved/${backup.id}/ and ${path.join(options.backupDir, `code-${backup.id}.json`)}; fix the cause and run the undo again`,
          cause: error,
        });
      }
      throw error;
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
    await rm(privateIndex, { force: true });
  }
}

type DestinationKind = 'missing' | 'empty' | 'checkout';

/** A missing folder, an empty one, or the top-level folder of a (non-bare) checkout; anything else is refused. */
export async function destinationKind(root: string, env?: NodeJS.ProcessEnv): Promise<DestinationKind> {
  const stat = await statPath(root).catch(() => undefined);
  if (!stat) return 'missing';
  if (!stat.isDirectory()) throw usageError('code-destination-invalid', `${root} is not a folder`, 'pull into a checkout of the repository or an empty folder');
  if ((await readdir(root)).length === 0) return 'empty';
  const top = await git(['rev-parse', '--show-toplevel'], { cwd: root, env, allowFailure: true });
  const shown = top.stdout.trim();
  // git prints the real path: compare real paths, so a checkout reached through a symlink is one.
  if (top.exitCode !== 0 || !shown || (await realpath(shown)) !== (await realpath(root))) {
    throw usageError(
      'code-destination-invalid',
      top.exitCode === 0 && shown ? `${root} is inside the checkout ${shown}, not its top-level folder` : `${root} is neither a git checkout nor empty`,
      'pull from the top-level folder of a checkout of the repository, or into an empty folder',
    );
  }
  return 'checkout';
}

interface CheckoutFacts {
  indexFile: string;
  objectsDir: string;
  objectFormat: 'sha1' | 'sha256';
  /** null: unborn HEAD (no commit yet). */
  head: string | null;
  headRef: string | null;
  headTree: string | null;
}

async function readCheckout(root: string, call: GitCall): Promise<CheckoutFacts> {
  const [indexPath, commonDir, format] = (await git(['rev-parse', '--git-path', 'index', '--path-format=absolute', '--git-common-dir', '--show-object-format'], call)).stdout.split('\n');
  const head = await git(['rev-parse', '--verify', '-q', 'HEAD^{commit}'], { ...call, allowFailure: true });
  const symbolic = await git(['symbolic-ref', '-q', 'HEAD'], { ...call, allowFailure: true });
  const headId = head.exitCode === 0 ? head.stdout.trim() : null;
  return {
    indexFile: path.resolve(root, indexPath ?? '.git/index'),
    objectsDir: path.join(commonDir ?? path.join(root, '.git'), 'objects'),
    objectFormat: format === 'sha256' ? 'sha256' : 'sha1',
    head: headId,
    headRef: symbolic.exitCode === 0 ? symbolic.stdout.trim() : null,
    headTree: headId ? (await git(['rev-parse', `${headId}^{tree}`], call)).stdout.trim() : null,
  };
}

async function verifyAndUnbundle(bundle: CodeBundle, files: ReadonlyMap<string, string>, scratch: GitCall): Promise<void> {
  const file = files.get(bundle.sha256);
  if (!file) {
    throw new SessmigError('code-bundle-missing', `bundle ${bundle.sha256} was not downloaded`, { hint: 'internal: fetch the bundles bundlesNeeded names first' });
  }
  const { sha256, bytes } = await hashFile(file);
  if (sha256 !== bundle.sha256 || bytes !== bundle.bytes) throw bundleDamaged(bundle, `its file has ${bytes} bytes with sha256 ${sha256}`);
  const header = await readBundleHeader(file);
  const same = (a: string[], b: string[]) => a.length === b.length && [...a].sort().join() === [...b].sort().join();
  if (!same(header.prerequisites, bundle.prerequisites) || !same(header.refs.map((r) => r.id), bundle.tips)) {
    throw bundleDamaged(bundle, 'its header does not list the prerequisites and tips the manifest names');
  }
  const verified = await git(['bundle', 'verify', '-q', file], { ...scratch, allowFailure: true });
  if (verified.exitCode !== 0) throw bundleDamaged(bundle, `git bundle verify: ${verified.stderr.trim()}`);
  await git(['bundle', 'unbundle', file], scratch);
}

/** The manifest's three commits exist and are shaped as the format says (index's parent = head, worktree's = index). */
async function checkStateCommits(state: CodeState, scratch: GitCall): Promise<void> {
  const present = await existingObjects([state.head, state.index, state.worktree], scratch);
  const missing = [state.head, state.index, state.worktree].filter((id) => !present.has(id));
  if (missing.length > 0) {
    throw new SessmigError('code-state-incomplete', `the checkpoint's bundles do not hold commit(s) ${missing.join(', ')}`, {
      hint: 'the code leg in the remote is incomplete or damaged; push the code again from the source host',
    });
  }
  const parents = (await git(['rev-list', '--no-walk=unsorted', '--parents', state.index, state.worktree], scratch)).stdout.trim().split('\n');
  const trees = (await git(['rev-parse', `${state.index}^{tree}`, `${state.worktree}^{tree}`], scratch)).stdout.trim().split('\n');
  if (parents[0] !== `${state.index} ${state.head}` || parents[1] !== `${state.worktree} ${state.index}` || trees[0] !== state.indexTree || trees[1] !== state.worktreeTree) {
    throw new SessmigError('code-state-invalid', 'the checkpoint\'s index and working-tree commits are not shaped as the format says', {
      hint: 'the code leg was not written by sessmig or is damaged; push the code again from the source host',
    });
  }
}

async function findConflicts(root: string, state: CodeState, facts: CheckoutFacts, call: GitCall, scratch: GitCall): Promise<DestinationConflicts> {
  const status = splitNul((await git(['status', '--porcelain=v1', '-z', '--no-renames', '--untracked-files=no', '--ignore-submodules=none'], call)).stdout);
  const changed = status.map((line) => line.slice(3));
  // Paths the checkpoint has and the destination does not track: on disk, they are in the way.
  const from = facts.headTree ?? (await git(['hash-object', '-t', 'tree', '--stdin'], { ...scratch, input: '' })).stdout.trim();
  const diff = splitNul((await git(['diff-tree', '-r', '-z', '--no-renames', '--name-status', from, state.worktree], scratch)).stdout);
  const added: string[] = [];
  const removed = new Set<string>();
  for (let i = 0; i + 1 < diff.length; i += 2) {
    if (diff[i] === 'A') added.push(diff[i + 1]!);
    else if (diff[i] === 'D') removed.add(diff[i + 1]!);
  }
  const tracked = facts.head ? removed : new Set<string>();
  const inTheWay = new Set<string>();
  for (const file of added) {
    const parts = file.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const dir = parts.slice(0, depth).join('/');
      const stat = await lstat(path.join(root, dir)).catch(() => undefined);
      if (!stat) break;
      if (!stat.isDirectory() && !tracked.has(dir)) inTheWay.add(dir);
      if (!stat.isDirectory()) break;
    }
    const stat = await lstat(path.join(root, file)).catch(() => undefined);
    if (stat && !(stat.isDirectory() && (await onlyTracked(root, file, tracked)))) inTheWay.add(file);
  }
  let branch: DestinationConflicts['branch'] = null;
  if (state.branch) {
    const found = await git(['rev-parse', '--verify', '-q', `refs/heads/${state.branch}^{commit}`], { ...call, allowFailure: true });
    const commit = found.stdout.trim();
    if (found.exitCode === 0 && commit !== state.head) {
      const ancestor = await git(['merge-base', '--is-ancestor', commit, state.head], { ...scratch, allowFailure: true });
      // A branch at a head this checkpoint was built on (the one this host handed over, then
      // amended or rebased elsewhere) holds nothing the remote's earlier checkpoint lacks.
      const handedOver = state.lineage.some((entry) => entry.head === commit);
      if (ancestor.exitCode !== 0 && !handedOver) branch = { name: state.branch, commit };
    }
  }
  return { changed, inTheWay: [...inTheWay].sort(), branch };
}

/**
 * Does the checkout hold exactly the checkpoint's state or one of its lineage (HEAD, index tree,
 * working tree)? Returns the trees it built, so the save does not build them again.
 */
async function handedOverState(state: CodeState, facts: CheckoutFacts, tempDir: string, call: GitCall): Promise<{ matches: boolean; trees?: { indexTree: string; worktreeTree: string } }> {
  const candidates = [{ head: state.head, indexTree: state.indexTree, worktreeTree: state.worktreeTree }, ...state.lineage].filter((entry) => entry.head === facts.head);
  if (candidates.length === 0) return { matches: false };
  const nonce = randomBytes(4).toString('hex');
  const indexCopy = path.join(tempDir, `code-compare-${nonce}.index`);
  const worktreeIndex = path.join(tempDir, `code-compare-${nonce}.worktree`);
  try {
    const unmerged = (await git(['ls-files', '-u'], call)).stdout.trim();
    if (unmerged) return { matches: false };
    const trees = await writeStateTrees(facts.indexFile, indexCopy, worktreeIndex, call);
    return { matches: candidates.some((entry) => entry.indexTree === trees.indexTree && entry.worktreeTree === trees.worktreeTree), trees };
  } finally {
    await rm(indexCopy, { force: true });
    await rm(worktreeIndex, { force: true });
  }
}

/** A directory at a path the checkpoint turns into a file is no loss if it holds only files the apply deletes anyway. */
async function onlyTracked(root: string, dir: string, tracked: Set<string>): Promise<boolean> {
  for (const entry of await readdir(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) {
      if (!(await onlyTracked(root, rel, tracked))) return false;
    } else if (!tracked.has(rel)) return false;
  }
  return true;
}

/** A branch checked out in another worktree of the same repository cannot be moved under it. */
async function assertBranchFree(root: string, branch: string, call: GitCall): Promise<void> {
  const list = (await git(['worktree', 'list', '--porcelain', '-z'], call)).stdout.split('\0');
  let current = '';
  for (const line of list) {
    if (line.startsWith('worktree ')) current = line.slice('worktree '.length);
    if (line === `branch refs/heads/${branch}` && path.resolve(current) !== path.resolve(root)) {
      throw usageError('code-branch-busy', `branch ${branch} is checked out in ${current}, another worktree of this repository`, `pull there, or switch that worktree to another branch first`);
    }
  }
}

export function destinationDirty(root: string, conflicts: DestinationConflicts): SessmigError {
  const parts: string[] = [];
  const list = (files: string[]) => `${files.slice(0, 20).join(', ')}${files.length > 20 ? `, … (${files.length})` : ''}`;
  if (conflicts.changed.length > 0) parts.push(`uncommitted changes in ${list(conflicts.changed)}`);
  if (conflicts.inTheWay.length > 0) parts.push(`untracked or ignored files the checkpoint would overwrite: ${list(conflicts.inTheWay)}`);
  if (conflicts.branch) parts.push(`branch ${conflicts.branch.name} is at ${conflicts.branch.commit.slice(0, 12)}, which the checkpoint's commit does not contain`);
  return new SessmigError('code-destination-dirty', `${root} has local work the code would overwrite: ${parts.join('; ')}. Nothing was changed`, {
    hint: 'commit, stash or move that work, or pull with --force (it saves the checkout first; `sessmig undo` restores it)',
    data: { ...conflicts },
  });
}

function bundleDamaged(bundle: CodeBundle, why: string): SessmigError {
  return new SessmigError('code-bundle-damaged', `code bundle ${bundle.sha256} failed verification: ${why}`, {
    hint: 'nothing was changed; the remote copy is damaged — push the code again from the source host (sessmig check names damaged objects)',
  });
}

function zeroId(format: 'sha1' | 'sha256'): string {
  return '0'.repeat(format === 'sha256' ? 64 : 40);
}
