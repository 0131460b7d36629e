import type { Readable } from 'node:stream';

/**
 * One interface for every remote kind (a local folder, S3 and S3-compatible stores). Keys are
 * relative to the remote's root and always built by src/format/layout.ts.
 */
export interface Remote {
  /** The remote's URL as the user gave it, safe to print. */
  readonly display: string;
  /** True when `put` honours ifMatch / ifNoneMatch atomically (a read-back check runs anyway). */
  readonly conditionalWrites: boolean;

  /** A small object whole, or undefined when absent. Refuses objects over maxBytes. */
  get(key: string, maxBytes: number): Promise<StoredObject | undefined>;
  /** Writes a small object. ifNoneMatch: fail if it exists; ifMatch: fail unless its etag matches. */
  put(key: string, body: Buffer, conditions?: PutConditions): Promise<{ etag: string }>;
  /** Size and etag, or undefined when absent. */
  head(key: string): Promise<{ size: number; etag: string } | undefined>;
  /** Streams a file of known size to key (blobs). */
  putFile(key: string, path: string, size: number): Promise<void>;
  /** Streams an object (blobs); throws a SessmigError with code 'not-found' when absent. */
  getStream(key: string): Promise<Readable>;
  /** Every object under prefix, in key order. */
  list(prefix: string): AsyncIterable<ListedObject>;
  delete(key: string): Promise<void>;
  /** Marks an existing object as just written (its last-modified time becomes now): a push that
   * reuses a blob protects it from a concurrent prune's grace period (docs/FORMAT.md, Pruning). */
  touch(key: string): Promise<void>;
  /**
   * Local folders only: the objects and folders under prefix (that folder and the folders above it
   * included) whose mode lets other users in beyond what the remote grants (docs/FORMAT.md, Remotes).
   */
  exposed?(prefix: string): Promise<ExposedObject[]>;
  /**
   * The endpoint, when objects travel over plain HTTP to a host that is not this machine (S3 only);
   * undefined otherwise. Safe to print: scheme, host and port.
   */
  cleartextEndpoint?(): string | undefined;

  // Capabilities: what some remotes can do beyond storing objects. The core asks for these, never
  // for a class, so it works on any Remote (and on fakes in tests).

  /** Set on an encrypted worktree's remote (crypto/sealedRemote.ts): how it seals. */
  readonly sealing?: Sealing;
  /** Set on a store that signs URLs for tickets (S3). */
  readonly presigner?: Presigner;
  /** Set on a remote made of one ticket's URLs: it has no pointer and takes no uploads in. */
  readonly ticketOnly?: boolean;
}

/** The key material a sealed remote derives from the user's key (docs/FORMAT.md, "Encryption"). */
export interface SealingKeys {
  /** The public fingerprint of the user's key. */
  keyId(): string;
  /** The age identity (`AGE-SECRET-KEY-1…`) that opens one blob (by the sha256 of its plaintext). */
  blobIdentity(sha256: string): string;
  /** The age identity that opens one code bundle (by the sha256 of its plaintext; docs/FORMAT-code.md). */
  codeIdentity(sha256: string): string;
  /** The age identity an encrypted ticket document is sealed to. */
  ticketIdentity(ticketId: string): string;
  /** The age identity an upload through an encrypted upload ticket is sealed to. */
  uploadIdentity(ticketId: string): string;
}

/** What an encrypted worktree's remote offers the core. */
export interface Sealing {
  readonly key: SealingKeys;
  /** The store under the sealing (where tickets are signed). */
  readonly inner: Remote;
  /** The stored (keyed) name of a blob. */
  storedBlobKey(sha256: string): string;
  /**
   * The key an object is stored under: the keyed `.age` name for a blob, a carried file (`.pack.gz`,
   * `.out.gz`) or a code bundle of this worktree; any other key unchanged. Prune and check map what
   * the manifests name onto the listing with it.
   */
  storedKey(key: string): string;
  /** The stored (keyed) name of a code bundle (`code/<HMAC code name>.age`). */
  storedCodeKey(sha256: string): string;
  /**
   * Seals an object this worktree has in plaintext under `key` (a blob, tool output, snapshot pack
   * or code bundle key, as the format names it), once; true when it did. The first encrypted push
   * of a worktree that has plaintext checkpoints reuses their objects through this.
   */
  adoptPlain(key: string, tempName: string): Promise<boolean>;
}

/** Presigned URLs (SigV4), for tickets. Lifetimes in seconds. */
export interface Presigner {
  presignGet(key: string, expiresIn?: number): Promise<string>;
  /** A PUT of exactly `size` bytes. */
  presignPut(key: string, size: number, expiresIn?: number): Promise<string>;
}

export interface ExposedObject {
  /** The key; a folder's ends with '/'. */
  key: string;
  folder: boolean;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Who gets in beyond the remote's policy: any user, or the object's group. */
  who: 'others' | 'group';
}

export interface StoredObject {
  body: Buffer;
  etag: string;
}

export interface PutConditions {
  ifMatch?: string;
  ifNoneMatch?: boolean;
}

export interface ListedObject {
  key: string;
  size: number;
  lastModified: Date;
}

/** The largest object a single PUT may carry on S3. */
export const MAX_SINGLE_PUT_BYTES = 5 * 1024 ** 3;
