import { codeBundleKey } from './codeLayout.js';
import { CHECKPOINT_ID, SHA256, WORKTREE_KEY } from './ids.js';
import { blobKey, carriedFileKey, checkpointKey, pointerKey, worktreePrefix, worktreesPrefix } from './layout.js';
import { MAX_SLOTS, TICKET_ID, ticketKey, uploadManifestKey, uploadPrefix, uploadSlotKey } from './ticketSchema.js';

/**
 * Every object key of one worktree that docs/FORMAT.md (and FORMAT-code.md, FORMAT-snapshots.md)
 * defines, as data: `keyOf` builds a key from its parts (with the builders of layout.ts,
 * codeLayout.ts and ticketSchema.ts, plus the sealed names and the marker, built only here), and
 * `parseKey` reads a key back. Code that has a key and wants to know what it names asks
 * `parseKey`, never a regex of its own: a parsed key is rebuilt with `keyOf` and must come out
 * byte for byte the same, so the two directions cannot drift apart.
 *
 * Kinds, under `sessmig/v1/worktrees/<worktree>/`:
 * - `pointer` HEAD.json; `marker` ENCRYPTION.json (id '')
 * - `checkpoint` checkpoints/<checkpoint id>.json
 * - `blob` blobs/<sha256>.json.gz; `pack` blobs/<sha256>.pack.gz; `out` blobs/<sha256>.out.gz
 * - `sealed-blob` blobs/<keyed name>.age (an encrypted worktree's blob, pack or out)
 * - `bundle` code/<sha256>.bundle; `sealed-bundle` code/<keyed name>.age
 * - `ticket` tickets/<ticket id>.json
 * - `upload-manifest` incoming/<ticket id>/manifest.json; `upload-slot` incoming/<ticket id>/slots/<n>.json.gz;
 *   `upload-rejected` incoming/<ticket id>/rejected.json (written by a host that refused the upload)
 */
export type KeyKind =
  | 'pointer'
  | 'marker'
  | 'checkpoint'
  | 'blob'
  | 'pack'
  | 'out'
  | 'sealed-blob'
  | 'bundle'
  | 'sealed-bundle'
  | 'ticket'
  | 'upload-manifest'
  | 'upload-slot'
  | 'upload-rejected';

export interface ParsedKey {
  worktree: string;
  kind: KeyKind;
  /**
   * What names the object within its kind: the checkpoint id, the sha256 (blob, pack, out,
   * bundle), the keyed name (sealed-blob, sealed-bundle: 64 hex digits, HMAC-SHA256), the ticket
   * id (ticket, upload-manifest, upload-slot); '' for the pointer and the marker.
   */
  id: string;
  /** upload-slot only: the slot number, 0 ≤ slot < MAX_SLOTS. */
  slot?: number;
}

/** The encryption marker's file name under a worktree (docs/FORMAT.md, "Encryption"). */
export const ENCRYPTION_MARKER = 'ENCRYPTION.json';

/** A keyed (HMAC-SHA256, hex) object name of an encrypted worktree: the same shape as a sha256. */
export const SEALED_NAME = SHA256;

function checked(re: RegExp, value: string, what: string): string {
  if (!re.test(value)) throw new Error(`internal: refusing to build a key from an invalid ${what}`);
  return value;
}

export function markerKey(worktree: string): string {
  return `${worktreePrefix(worktree)}${ENCRYPTION_MARKER}`;
}

/** Where an encrypted worktree stores a blob (or pack, or tool output): its keyed name, never the sha256. */
export function sealedBlobKey(worktree: string, name: string): string {
  return `${worktreePrefix(worktree)}blobs/${checked(SEALED_NAME, name, 'sealed blob name')}.age`;
}

/** Where an encrypted worktree stores a code bundle (docs/FORMAT-code.md): its keyed name. */
export function sealedBundleKey(worktree: string, name: string): string {
  return `${worktreePrefix(worktree)}code/${checked(SEALED_NAME, name, 'sealed bundle name')}.age`;
}

/** The mark a host leaves on an upload it refused (docs/FORMAT.md, "Upload tickets"). */
export function uploadRejectedKey(worktree: string, ticketId: string): string {
  return `${uploadPrefix(worktree, ticketId)}rejected.json`;
}

/** The key of a parsed key's parts; throws (internal) on parts no key may be built from. */
export function keyOf(parsed: ParsedKey): string {
  const { worktree, id } = parsed;
  switch (parsed.kind) {
    case 'pointer':
      return pointerKey(worktree);
    case 'marker':
      return markerKey(worktree);
    case 'checkpoint':
      return checkpointKey(worktree, id);
    case 'blob':
      return blobKey(worktree, id);
    case 'pack':
    case 'out':
      return carriedFileKey(worktree, id, parsed.kind);
    case 'sealed-blob':
      return sealedBlobKey(worktree, id);
    case 'bundle':
      return codeBundleKey(worktree, id);
    case 'sealed-bundle':
      return sealedBundleKey(worktree, id);
    case 'ticket':
      return ticketKey(worktree, id);
    case 'upload-manifest':
      return uploadManifestKey(worktree, id);
    case 'upload-slot':
      return uploadSlotKey(worktree, id, parsed.slot ?? -1);
    case 'upload-rejected':
      return uploadRejectedKey(worktree, id);
  }
}

const HEX64 = '([0-9a-f]{64})';
const CHECKPOINT = '(\\d{8}T\\d{9}Z-[0-9a-f]{8})';
const TICKET = '(\\d{8}T\\d{9}Z-[0-9a-f]{16})';

/** The part of a key after `<worktree>/`, by kind. The captures are checked again by keyOf. */
const SHAPES: { kind: KeyKind; re: RegExp }[] = [
  { kind: 'pointer', re: /^HEAD\.json$/ },
  { kind: 'marker', re: /^ENCRYPTION\.json$/ },
  { kind: 'checkpoint', re: new RegExp(`^checkpoints/${CHECKPOINT}\\.json$`) },
  { kind: 'blob', re: new RegExp(`^blobs/${HEX64}\\.json\\.gz$`) },
  { kind: 'pack', re: new RegExp(`^blobs/${HEX64}\\.pack\\.gz$`) },
  { kind: 'out', re: new RegExp(`^blobs/${HEX64}\\.out\\.gz$`) },
  { kind: 'sealed-blob', re: new RegExp(`^blobs/${HEX64}\\.age$`) },
  { kind: 'bundle', re: new RegExp(`^code/${HEX64}\\.bundle$`) },
  { kind: 'sealed-bundle', re: new RegExp(`^code/${HEX64}\\.age$`) },
  { kind: 'ticket', re: new RegExp(`^tickets/${TICKET}\\.json$`) },
  { kind: 'upload-manifest', re: new RegExp(`^incoming/${TICKET}/manifest\\.json$`) },
  { kind: 'upload-rejected', re: new RegExp(`^incoming/${TICKET}/rejected\\.json$`) },
  { kind: 'upload-slot', re: new RegExp(`^incoming/${TICKET}/slots/(0|[1-9]\\d{0,9})\\.json\\.gz$`) },
];

/**
 * The worktree whose folder `key` lies in (`sessmig/v1/worktrees/<worktree>/…`), whatever the rest
 * names; undefined outside every valid worktree folder.
 */
export function worktreeOfKey(key: string): string | undefined {
  const root = worktreesPrefix();
  if (!key.startsWith(root)) return undefined;
  const slash = key.indexOf('/', root.length);
  const worktree = slash < 0 ? '' : key.slice(root.length, slash);
  return WORKTREE_KEY.test(worktree) ? worktree : undefined;
}

/**
 * What a key names, or undefined when it is not a key of the format (a name another program
 * left, a temp file, a key from a later format version). Keys are relative to the remote's root.
 */
export function parseKey(key: string): ParsedKey | undefined {
  const root = worktreesPrefix();
  if (!key.startsWith(root)) return undefined;
  const slash = key.indexOf('/', root.length);
  if (slash < 0) return undefined;
  const worktree = key.slice(root.length, slash);
  if (!WORKTREE_KEY.test(worktree)) return undefined;
  const rest = key.slice(slash + 1);
  for (const { kind, re } of SHAPES) {
    const match = re.exec(rest);
    if (!match) continue;
    const parsed: ParsedKey = { worktree, kind, id: match[1] ?? '' };
    if (kind === 'upload-slot') {
      const slot = Number(match[2]);
      if (slot >= MAX_SLOTS) return undefined;
      parsed.slot = slot;
    }
    if (kind === 'checkpoint' && !CHECKPOINT_ID.test(parsed.id)) return undefined;
    if ((kind === 'ticket' || kind.startsWith('upload-')) && !TICKET_ID.test(parsed.id)) return undefined;
    // One definition of every key: what parses must build back to the same bytes.
    let rebuilt: string;
    try {
      rebuilt = keyOf(parsed);
    } catch {
      return undefined;
    }
    return rebuilt === key ? parsed : undefined;
  }
  return undefined;
}

/** The kinds that hold a blob's bytes under its sha256 (what a ticket carries and an encrypted worktree seals as a blob). */
export const PLAIN_BLOB_KINDS: readonly KeyKind[] = ['blob', 'pack', 'out'];
