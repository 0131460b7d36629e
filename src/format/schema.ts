import { z } from 'zod';
import { Todo } from './todo.js';
import { CHECKPOINT_ID, HOST_ID, SESSION_ID, SHA256, WORKTREE_KEY } from './ids.js';

/**
 * The remote format's documents (docs/FORMAT.md is the contract; this file is its code).
 * Schema first, type inferred. Objects are loose: a newer sessmig's extra fields are kept and
 * ignored, while `formatVersion` says when a document can no longer be read.
 */
export const FORMAT_VERSION = 1;
/**
 * Checkpoint manifests are at version 2 since sessions carry their checkout and the manifest its
 * tombstones (docs/FORMAT.md, "Format versions"). A v1 manifest is still read: its sessions belong
 * to the checkout it was pushed from, and it has no tombstones.
 */
export const MANIFEST_FORMAT_VERSION = 2;

const sessionId = z.string().regex(SESSION_ID, 'not an opencode session id');
const sha256 = z.string().regex(SHA256, 'not a sha256 hex digest');
const checkpointId = z.string().regex(CHECKPOINT_ID, 'not a checkpoint id');
const worktreeKey = z.string().regex(WORKTREE_KEY, 'not a worktree key');
const isoTime = z.iso.datetime({ offset: true });
const count = z.number().int().nonnegative();

export const Host = z.looseObject({
  hostId: z.string().regex(HOST_ID, 'not a host id'),
  hostname: z.string().max(256),
});
export type Host = z.infer<typeof Host>;

/** The checkout a session lives in: a host and that checkout's top directory, and its branch then. */
export const Checkout = z.looseObject({
  host: Host,
  /** The checkout's top directory on that host, as `git rev-parse --show-toplevel` (real path). */
  root: z.string().max(4096),
  /** The checked-out branch (short name), or null for a detached HEAD. */
  branch: z.string().max(1024).nullable(),
});
export type Checkout = z.infer<typeof Checkout>;

/** A file stored beside the blobs (docs/FORMAT-snapshots.md): sha256 and size of its bytes, size stored (gzip). */
export const CarriedFile = z.looseObject({
  sha256,
  rawBytes: count,
  storedBytes: count,
});
export type CarriedFile = z.infer<typeof CarriedFile>;

/** A truncated tool output a session's part points at (`state.metadata.outputPath`). */
export const CarriedToolOutput = CarriedFile.extend({
  /** The absolute path on the source host, exactly as the part holds it. */
  path: z.string().min(1).max(4096),
});
export type CarriedToolOutput = z.infer<typeof CarriedToolOutput>;

const gitObjectId = z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, 'not a git object id');

/** The opencode snapshot objects the remote holds for this worktree (docs/FORMAT-snapshots.md). */
export const CarriedSnapshots = z.looseObject({
  /** Git packs, oldest first; together they hold every object reachable from `trees`. */
  packs: z.array(CarriedFile).max(100_000),
  /** The tree ids sessions of this worktree referenced, as far as the source still had them. */
  trees: z.array(gitObjectId).max(1_000_000),
  /** Referenced tree ids the source no longer had (opencode prunes snapshots after 7 days). */
  missing: z.array(gitObjectId).max(1_000_000).optional(),
});
export type CarriedSnapshots = z.infer<typeof CarriedSnapshots>;

export const ManifestSession = z.looseObject({
  /** opencode session id, unchanged across hosts. */
  id: sessionId,
  /** The parent session for a subagent child, or null for a root session. */
  parentID: sessionId.nullable(),
  title: z.string().max(4096),
  /** info.directory on the source host. */
  directory: z.string().max(4096),
  /** info.version: the opencode version that created the session. */
  version: z.string().max(64),
  /** sha256 of the blob as exported (uncompressed JSON); also the blob's object name. */
  sha256,
  /** Normalized hash of the session's content (a Merkle hash; whitespace and member order do not count, host-bound info fields count as null), exactly as docs/FORMAT.md specifies. Equal content on two hosts gives equal hashes. */
  contentHash: sha256,
  rawBytes: count,
  storedBytes: count,
  /** info.time.updated, milliseconds since the epoch. */
  timeUpdated: count,
  messages: count,
  /** The last assistant message had no time.completed when exported: opencode was mid-turn. */
  busy: z.boolean(),
  /** The session's todo list (not in opencode's export; read from its todo table). Absent: none. */
  todos: z.array(Todo).max(10_000).optional(),
  /** v2: the checkout the session lives in (absent in v1: the manifest's source checkout). */
  checkout: Checkout.optional(),
  /** The truncated tool outputs its parts point at, stored beside the blob. Absent: none, or pushed by an older sessmig. */
  toolOutputs: z.array(CarriedToolOutput).max(100_000).optional(),
  /**
   * The model and agent the session last used (its last message that names them), so that pull and
   * doctor can say, without reading the blob, whether a host's opencode offers them. Absent: not
   * known (pushed by an older sessmig, or the session names none).
   */
  lastUsed: z
    .looseObject({
      model: z.looseObject({ providerID: z.string().max(256), modelID: z.string().max(256) }).optional(),
      agent: z.string().max(256).optional(),
    })
    .optional(),
});
export type ManifestSession = z.infer<typeof ManifestSession>;

export const SkippedSession = z.looseObject({
  id: sessionId,
  reason: z.string().max(1024),
});
export type SkippedSession = z.infer<typeof SkippedSession>;

/** A session deleted on some host: carried forward by every push, so the deletion travels. */
export const Tombstone = z.looseObject({
  id: sessionId,
  parentID: sessionId.nullable(),
  title: z.string().max(4096),
  /** The session's content hash when it was deleted (what a host must still hold to delete its copy silently). */
  contentHash: sha256,
  deletedAt: isoTime,
  /** The host that deleted it. */
  by: Host,
});
export type Tombstone = z.infer<typeof Tombstone>;

export const Manifest = z.looseObject({
  formatVersion: z.union([z.literal(1), z.literal(MANIFEST_FORMAT_VERSION)]),
  kind: z.literal('sessmig.checkpoint'),
  id: checkpointId,
  worktree: worktreeKey,
  /** The checkpoint that was current when this one was made, or null. */
  parent: checkpointId.nullable(),
  createdAt: isoTime,
  source: z.looseObject({
    host: Host,
    /** The worktree's root directory on the source host. */
    worktreeRoot: z.string().max(4096),
    /** `opencode --version` of the exporting binary. */
    opencodeVersion: z.string().max(64),
    sessmigVersion: z.string().max(64),
    /** v2: the source checkout's branch (null: detached HEAD). */
    branch: z.string().max(1024).nullable().optional(),
    /** v2: pushed with --migrate (handed over from the source checkout). */
    migrate: z.boolean().optional(),
  }),
  /** Parents before children. */
  sessions: z.array(ManifestSession).max(100_000),
  skipped: z.array(SkippedSession).max(100_000),
  /** v2: sessions deleted since they were pushed (never also in `sessions`). Absent in v1: none. */
  deleted: z.array(Tombstone).max(100_000).optional(),
  /** opencode snapshot objects (undo history). Absent: pushed by an older sessmig, undo history did not travel. */
  snapshots: CarriedSnapshots.optional(),
});
export type Manifest = z.infer<typeof Manifest>;

export const Pointer = z.looseObject({
  formatVersion: z.literal(FORMAT_VERSION),
  kind: z.literal('sessmig.pointer'),
  worktree: worktreeKey,
  /** Incremented by every write; a write expects the generation it read. */
  generation: z.number().int().positive(),
  /** The current checkpoint. */
  checkpoint: checkpointId,
  /** The host that owns the worktree's sessions, or null while they are released (in transit). */
  owner: Host.nullable(),
  updatedAt: isoTime,
  updatedBy: Host,
  /** A random nonce per write: the read-back check compares it, to detect a racing writer. */
  writeId: z.string().max(64).optional(),
});
export type Pointer = z.infer<typeof Pointer>;

/** Any sessmig document: read `formatVersion` first, so a future format gets its own message. */
export const Versioned = z.looseObject({ formatVersion: z.number().int() });
