import { SHA256 } from './ids.js';
import { worktreePrefix } from './layout.js';

/**
 * Object keys of the code leg (docs/FORMAT-code.md), next to the worktree's blobs:
 * `sessmig/v1/worktrees/<worktree>/code/<sha256>.bundle`, immutable and content-addressed
 * (sha256 of the bundle file's bytes).
 */
export function codePrefix(worktree: string): string {
  return `${worktreePrefix(worktree)}code/`;
}

export function codeBundleKey(worktree: string, sha256: string): string {
  if (!SHA256.test(sha256)) throw new Error('internal: refusing to build a key from an invalid bundle name');
  return `${codePrefix(worktree)}${sha256}.bundle`;
}

/** The default cap on the bytes one push uploads for the code leg (new bundles); `--code-max-bytes` raises it. */
export const DEFAULT_CODE_MAX_BYTES = 512 * 1024 ** 2;
