import { readCodeState } from '../code/codeLeg.js';
import { codeBundleKey } from '../format/codeLayout.js';
import { blobKey, carriedFileKey } from '../format/layout.js';
import type { ParsedKey } from '../format/keys.js';
import type { Manifest, ManifestSession } from '../format/schema.js';
import type { Remote } from '../remote/remote.js';

/**
 * Every object a checkpoint needs besides its manifest, read from the manifest (docs/FORMAT.md,
 * FORMAT-snapshots.md, FORMAT-code.md): the session blobs, the truncated tool outputs the sessions
 * point at, the snapshot packs and the code bundles. Prune keeps what a kept checkpoint names and
 * check verifies it; both read the list here, so an object kind added to the format is added once.
 */

/** `blob` a session blob, `out` a truncated tool output, `pack` a snapshot pack, `bundle` a code bundle. */
export type ObjectKind = 'blob' | 'out' | 'pack' | 'bundle';

export const OBJECT_KINDS: readonly ObjectKind[] = ['blob', 'out', 'pack', 'bundle'];

/** How messages name each kind. */
export const OBJECT_NOUN: Record<ObjectKind, string> = { blob: 'blob', out: 'tool output', pack: 'snapshot pack', bundle: 'code bundle' };

export interface ObjectRef {
  kind: ObjectKind;
  /** The object's name: sha256 of its uncompressed bytes (blob, out, pack) or of the bundle file (bundle). */
  sha256: string;
  /** Bytes in the remote as the manifest records them (gzip for blob/out/pack; the bundle's bytes). */
  storedBytes: number;
  /** Bytes the sha256 covers (uncompressed for blob/out/pack; equal to storedBytes for a bundle). */
  rawBytes: number;
  /** The session entry that names it (blob, out); null for packs and bundles (the worktree's). */
  session: ManifestSession | null;
}

/**
 * The objects `manifest` names, in manifest order (duplicates included: two sessions may name one
 * tool output). A bundle is listed for every bundle of the code chain: the checkpoint needs the whole
 * chain (a later incremental bundle has the earlier ones as prerequisites). Throws readCodeState's
 * `code-format-newer` / `code-state-malformed` when the code part cannot be read.
 */
export function objectsOf(manifest: Manifest): ObjectRef[] {
  const refs: ObjectRef[] = [];
  for (const session of manifest.sessions) {
    refs.push({ kind: 'blob', sha256: session.sha256, storedBytes: session.storedBytes, rawBytes: session.rawBytes, session });
    for (const output of session.toolOutputs ?? []) refs.push({ kind: 'out', sha256: output.sha256, storedBytes: output.storedBytes, rawBytes: output.rawBytes, session });
  }
  for (const pack of manifest.snapshots?.packs ?? []) refs.push({ kind: 'pack', sha256: pack.sha256, storedBytes: pack.storedBytes, rawBytes: pack.rawBytes, session: null });
  for (const bundle of readCodeState(manifest as Manifest & Record<string, unknown>)?.bundles ?? []) {
    refs.push({ kind: 'bundle', sha256: bundle.sha256, storedBytes: bundle.bytes, rawBytes: bundle.bytes, session: null });
  }
  return refs;
}

/** The key of an object as the format names it (before a sealed remote maps it: storedObjectKey). */
export function objectKey(worktree: string, kind: ObjectKind, sha256: string): string {
  if (kind === 'blob') return blobKey(worktree, sha256);
  if (kind === 'bundle') return codeBundleKey(worktree, sha256);
  return carriedFileKey(worktree, sha256, kind);
}

/** The key the object is stored under in `remote`: its keyed `.age` name on an encrypted worktree, else objectKey. */
export function storedObjectKey(remote: Remote, worktree: string, kind: ObjectKind, sha256: string): string {
  const key = objectKey(worktree, kind, sha256);
  return remote.sealing ? remote.sealing.storedKey(key) : key;
}

/**
 * What a listed object is, for prune and check: an ObjectKind, or `sealed` for an encrypted
 * worktree's `blobs/<keyed name>.age` (its name hides whether it holds a blob, a pack or a tool
 * output; a sealed code bundle is still a `bundle`). Undefined for everything else (pointer,
 * manifests, marker, tickets, uploads, unknown names): never collected.
 */
export type ListedKind = ObjectKind | 'sealed';

export const LISTED_KINDS: readonly ListedKind[] = [...OBJECT_KINDS, 'sealed'];

export const LISTED_NOUN: Record<ListedKind, string> = { ...OBJECT_NOUN, sealed: 'sealed object' };

export function listedKind(parsed: ParsedKey | undefined): ListedKind | undefined {
  switch (parsed?.kind) {
    case 'blob':
    case 'out':
    case 'pack':
    case 'bundle':
      return parsed.kind;
    case 'sealed-bundle':
      return 'bundle';
    case 'sealed-blob':
      return 'sealed';
    default:
      return undefined;
  }
}
