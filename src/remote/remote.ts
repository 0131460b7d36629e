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
