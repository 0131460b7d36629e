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

/**
 * What a key under a worktree's folder names (docs/FORMAT.md "Layout", FORMAT-code.md,
 * FORMAT-snapshots.md), read back from the key:
 *
 * | kind            | key (after `sessmig/v1/worktrees/<worktree>/`) | id                          |
 * | --------------- | ---------------------------------------------- | --------------------------- |
 * | `pointer`       | `HEAD.json`                                    | `''`                        |
 * | `marker`        | `ENCRYPTION.json` (an encrypted worktree)      | `''`                        |
 * | `checkpoint`    | `checkpoints/<checkpoint id>.json`             | the checkpoint id           |
 * | `blob`          | `blobs/<sha256>.json.gz`                       | the sha256                  |
 * | `pack`          | `blobs/<sha256>.pack.gz`                       | the sha256                  |
 * | `out`           | `blobs/<sha256>.out.gz`                        | the sha256                  |
 * | `bundle`        | `code/<sha256>.bundle`                         | the sha256                  |
 * | `sealed-blob`   | `blobs/<64 hex>.age` (a sealed blob, pack or out: the name does not say which) | the keyed name |
 * | `sealed-bundle` | `code/<64 hex>.age` (a sealed code bundle)     | the keyed name              |
 * | `ticket`        | `tickets/<anything>`                           | what follows `tickets/`     |
 * | `upload`        | `incoming/<anything>`                          | what follows `incoming/`    |
 */
export type WorktreeKeyKind = 'pointer' | 'marker' | 'checkpoint' | 'blob' | 'pack' | 'out' | 'bundle' | 'sealed-blob' | 'sealed-bundle' | 'ticket' | 'upload';

export interface WorktreeKey {
  kind: WorktreeKeyKind;
  /** The name's variable part (see the table); '' for the pointer and the marker. */
  id: string;
}

const WORKTREE_KEYS: readonly { re: RegExp; kind: WorktreeKeyKind; id?: RegExp }[] = [
  { re: /^HEAD\.json$/, kind: 'pointer' },
  { re: /^ENCRYPTION\.json$/, kind: 'marker' },
  { re: /^checkpoints\/([^/]+)\.json$/, kind: 'checkpoint', id: CHECKPOINT_ID },
  { re: /^blobs\/([^/]+)\.json\.gz$/, kind: 'blob', id: SHA256 },
  { re: /^blobs\/([^/]+)\.pack\.gz$/, kind: 'pack', id: SHA256 },
  { re: /^blobs\/([^/]+)\.out\.gz$/, kind: 'out', id: SHA256 },
  { re: /^code\/([^/]+)\.bundle$/, kind: 'bundle', id: SHA256 },
  { re: /^blobs\/([^/]+)\.age$/, kind: 'sealed-blob', id: SHA256 },
  { re: /^code\/([^/]+)\.age$/, kind: 'sealed-bundle', id: SHA256 },
  { re: /^tickets\/(.+)$/, kind: 'ticket' },
  { re: /^incoming\/(.+)$/, kind: 'upload' },
];

/**
 * The kind and id of `rest`, a key relative to its worktree's folder (what follows
 * `worktreePrefix(worktree)`); undefined for a name the format does not define. Pure: no I/O.
 * A name whose id part is not valid for its kind (an upper-case sha256, a bad checkpoint id) is
 * undefined too: no sessmig writes it.
 */
export function parseWorktreeKey(rest: string): WorktreeKey | undefined {
  for (const entry of WORKTREE_KEYS) {
    const match = entry.re.exec(rest);
    if (!match) continue;
    const id = match[1] ?? '';
    if (entry.id && !entry.id.test(id)) return undefined;
    return { kind: entry.kind, id };
  }
  return undefined;
}

/**
 * A full key split into its worktree and the rest (`sessmig/v1/worktrees/<worktree>/<rest>`), or
 * undefined for a key outside every valid worktree folder. `rest` is not parsed (parseWorktreeKey).
 */
export function splitWorktreeKey(key: string): { worktree: string; rest: string } | undefined {
  const root = worktreesPrefix();
  if (!key.startsWith(root)) return undefined;
  const tail = key.slice(root.length);
  const slash = tail.indexOf('/');
  if (slash <= 0) return undefined;
  const worktree = tail.slice(0, slash);
  return WORKTREE_KEY.test(worktree) ? { worktree, rest: tail.slice(slash + 1) } : undefined;
}
