import { SHA256, CHECKPOINT_ID, WORKTREE_KEY } from './ids.js';

/**
 * Object keys of the remote format (docs/FORMAT.md), relative to the remote's root.
 * Every key is built here from validated parts, so no value read from a manifest, a blob or the
 * command line can name an object outside its worktree.
 */
export const FORMAT_ROOT = 'sessmig/v1';

function check(re: RegExp, value: string, what: string): string {
  if (!re.test(value)) throw new Error(`internal: refusing to build a key from an invalid ${what}`);
  return value;
}

export function worktreePrefix(worktree: string): string {
  return `${FORMAT_ROOT}/worktrees/${check(WORKTREE_KEY, worktree, 'worktree key')}/`;
}

export function pointerKey(worktree: string): string {
  return `${worktreePrefix(worktree)}HEAD.json`;
}

export function checkpointsPrefix(worktree: string): string {
  return `${worktreePrefix(worktree)}checkpoints/`;
}

export function checkpointKey(worktree: string, checkpoint: string): string {
  return `${checkpointsPrefix(worktree)}${check(CHECKPOINT_ID, checkpoint, 'checkpoint id')}.json`;
}

export function blobsPrefix(worktree: string): string {
  return `${worktreePrefix(worktree)}blobs/`;
}

export function blobKey(worktree: string, sha256: string): string {
  return `${blobsPrefix(worktree)}${check(SHA256, sha256, 'blob name')}.json.gz`;
}

/**
 * What a session points at besides its blob (docs/FORMAT-snapshots.md): `pack` a git pack of
 * opencode snapshot objects, `out` a truncated tool output's whole file. Both gzip-compressed,
 * named by the sha256 of their uncompressed bytes.
 */
export type CarriedKind = 'pack' | 'out';

export function carriedFileKey(worktree: string, sha256: string, kind: CarriedKind): string {
  if (kind !== 'pack' && kind !== 'out') throw new Error('internal: unknown carried file kind');
  return `${blobsPrefix(worktree)}${check(SHA256, sha256, 'carried file name')}.${kind}.gz`;
}

export function worktreesPrefix(): string {
  return `${FORMAT_ROOT}/worktrees/`;
}

/** Size caps for the small JSON documents: larger ones are refused, never truncated. */
export const MAX_POINTER_BYTES = 64 * 1024;
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

