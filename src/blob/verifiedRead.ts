import { createHash, type Hash } from 'node:crypto';
import { Transform, Writable, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { JsonScanError } from '../util/jsonScan.js';
import { redact } from '../util/redact.js';

/** Counts and hashes the bytes that pass through it (sha256, hex). */
export class Meter extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * What reading one stored object found. `ok` gives what the caller compares with the manifest:
 * the stored bytes, and the bytes and sha256 of what the object's name covers (the gunzipped
 * bytes of blobs, snapshot packs and tool outputs; the stored bytes of code bundles).
 * `damaged`: the object is there but is not what it should be (bad gzip, bad JSON, a sealed object
 * that does not open); `why` completes "object … <why>".
 */
export type VerifiedRead =
  | { status: 'ok'; storedBytes: number; rawBytes: number; sha256: string }
  | { status: 'missing' }
  | { status: 'damaged'; why: string; storedBytes: number; cause?: unknown };

export interface ReadStages {
  /** gunzip between the stored and the raw meter (blobs, packs, outputs); false: the sha256 covers the stored bytes (code bundles). */
  gzip: boolean;
  /** Streams after the raw meter (the JSON scanner, the rebase); a JsonScanError from them is damage. */
  through?: NodeJS.ReadWriteStream[];
  /** Where the bytes end (a temp file); default: nowhere. A write error there is `local-io`. */
  sink?: NodeJS.WritableStream;
  /** Errors of the `through` streams the caller handles itself: rethrown as they are (e.g. BlobUnfitError). */
  passThrough?: (error: unknown) => boolean;
  /** How messages name the object (default: its key). */
  what?: string;
  /** The stored size the manifest promises, for the message of a download that broke off. */
  expectedStoredBytes?: number;
  /** What a failure leaves undone, for its hint (default "nothing was changed"). */
  unchanged?: string;
}

/** Errors a write to local disk ends with: the destination's fault, not the remote's. */
const LOCAL_WRITE_ERRORS = new Set(['ENOSPC', 'EACCES', 'EROFS', 'EDQUOT']);

/**
 * The one pipeline that reads a stored object to verify it (pull's downloads, `sessmig check`,
 * taking in an upload): the remote's stream → stored meter → [gunzip] → raw meter → `through` →
 * `sink`, every error sorted into missing / damaged (returned) or a failure (thrown):
 * `remote-unreachable` when the download broke off before the object's end (the network, not the
 * object), `local-io` when the sink could not be written, any other SessmigError as it is. A
 * missing or damaged result, and every throw, leave the sink's file to the caller to delete.
 */
export async function readVerified(remote: Remote, key: string, stages: ReadStages): Promise<VerifiedRead> {
  const what = stages.what ?? key;
  let source: Readable;
  try {
    source = await remote.getStream(key);
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'not-found') return { status: 'missing' };
    // A sealed object that fails authentication is damaged like a plaintext one.
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return { status: 'damaged', why: `cannot be opened: ${error.message}`, storedBytes: 0, cause: error };
    throw error;
  }
  // A download cut off by the network (the server died, the connection reset) is not a damaged
  // object: the source stream fails before its end, and not because of what gunzip or the scanner read.
  let sourceEnded = false;
  source.once('end', () => {
    sourceEnded = true;
  });
  const stored = new Meter();
  const raw = new Meter();
  const sink =
    stages.sink ??
    new Writable({
      write(_chunk, _encoding, callback) {
        callback();
      },
    });
  try {
    await pipeline([source, stored, ...(stages.gzip ? [createGunzip()] : []), raw, ...(stages.through ?? []), sink]);
  } catch (error) {
    if (stages.passThrough?.(error)) throw error;
    const damaged = (why: string) => ({ status: 'damaged' as const, why, storedBytes: stored.bytes, cause: error });
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return damaged(`cannot be opened: ${error.message}`);
    if (error instanceof SessmigError) throw error;
    if (error instanceof JsonScanError) return damaged(`is not valid JSON${stages.gzip ? ' after gunzip' : ''}: ${error.message}`);
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) return damaged(`is not valid gzip: ${(error as Error).message}`);
    if (typeof code === 'string' && LOCAL_WRITE_ERRORS.has(code)) {
      throw new SessmigError('local-io', `cannot write ${what} to local disk: ${(error as Error).message}`, {
        hint: `free disk space or point TMPDIR at a writable folder; ${stages.unchanged ?? 'nothing was changed'}`,
        cause: error,
      });
    }
    if (!sourceEnded) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const detail = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new SessmigError('remote-unreachable', `download of ${what} broke off after ${stored.bytes}${stages.expectedStoredBytes !== undefined ? ` of ${stages.expectedStoredBytes}` : ''} bytes (${redact(String(detail))})`, {
        hint: `check the network and the remote, then re-run; ${stages.unchanged ?? 'nothing was changed'}`,
        cause: error,
      });
    }
    return damaged(`cannot be read: ${(error as Error).message}`);
  }
  return { status: 'ok', storedBytes: stored.bytes, rawBytes: raw.bytes, sha256: raw.digest() };
}
