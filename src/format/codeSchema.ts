import { z } from 'zod';
import { SHA256 } from './ids.js';

/**
 * The `code` part of a checkpoint manifest (docs/FORMAT-code.md): the worktree's git state —
 * HEAD, branch, index and working tree — and the git bundles that carry its objects.
 * Schema first, type inferred; loose so a newer sessmig's fields survive.
 */
export const CODE_FORMAT_VERSION = 1 as const;

/** A git object id: sha1 (40 hex) or sha256 (64 hex) repositories. */
export const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/**
 * A branch name (without `refs/heads/`) we accept from a manifest: git's check-ref-format rules
 * that matter for safety (no `..`, no leading `-` or `/`, no control characters, no `@{`, no
 * component starting with `.` or ending with `.lock`). `git check-ref-format --branch` runs too.
 */
export const BRANCH_NAME = /^(?!-)(?!\/)(?!.*\/\/)(?!.*\.\.)(?!.*@\{)(?!.*(?:^|\/)\.)(?!.*\.lock(?:\/|$))(?!.*\/$)[^\x00-\x20\x7f~^:?*[\\]{1,255}$/;

const objectId = z.string().regex(OBJECT_ID, 'not a git object id');

export const CodeBundle = z.looseObject({
  /** sha256 of the bundle file's bytes, lowercase hex; names the object `code/<sha256>.bundle`. */
  sha256: z.string().regex(SHA256, 'not a sha256 hex digest'),
  /** Size of the bundle file in bytes. */
  bytes: z.number().int().nonnegative(),
  /** Commits the bundle needs in the repository before it can be unbundled (git's "requires"). */
  prerequisites: z.array(objectId).max(10_000),
  /** The bundle's tip commits (what `git bundle list-heads` lists). */
  tips: z.array(objectId).min(1).max(16),
});
export type CodeBundle = z.infer<typeof CodeBundle>;

export const CodeSubmodule = z.looseObject({ path: z.string().max(4096), commit: objectId });

export const CodeState = z.looseObject({
  formatVersion: z.literal(CODE_FORMAT_VERSION),
  /** The repository's object format. */
  objectFormat: z.enum(['sha1', 'sha256']),
  /** `git rev-parse HEAD` at the source. */
  head: objectId,
  /** The checked-out branch without `refs/heads/`, or null for a detached HEAD. */
  branch: z.string().regex(BRANCH_NAME, 'not a branch name').nullable(),
  /** Synthetic commit: tree = the index (`git write-tree`), single parent = head. */
  index: objectId,
  /** Synthetic commit: tree = the working tree with untracked, non-ignored files; single parent = index. */
  worktree: objectId,
  /** The trees of `index` and `worktree` (so a host can compare its checkout without the objects). */
  indexTree: objectId,
  worktreeTree: objectId,
  /**
   * Earlier states this one was built on, newest first (at most 16): the code part of the
   * checkpoint the capture started from, then that one's lineage. A destination whose HEAD,
   * index and working tree equal one of them holds work it handed over, not local work: the
   * apply does not count it as uncommitted changes.
   */
  lineage: z.array(z.looseObject({ head: objectId, indexTree: objectId, worktreeTree: objectId })).max(16).default([]),
  /**
   * The chain: bundles to unbundle in this order into an empty repository to get every object of
   * head, index and worktree. The first has no prerequisites; each later one's prerequisites are
   * reachable from the tips of those before it. A destination skips those whose tips it has.
   */
  bundles: z.array(CodeBundle).min(1).max(64),
  /** Gitlinks (mode 160000) in the working tree: carried as commit ids only, never the submodule's content. */
  submodules: z.array(CodeSubmodule).max(10_000).default([]),
  /** Paths the source's .gitattributes route through git-lfs: carried as LFS pointer files. */
  lfsPointers: z.number().int().nonnegative().default(0),
});
export type CodeState = z.infer<typeof CodeState>;
