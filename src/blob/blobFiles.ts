import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { SessmigError } from '../util/errors.js';
import type { Timing } from '../util/timing.js';
import type { SessionExporter } from '../opencode/exporter.js';
import type { Remote } from '../remote/remote.js';
import { redact } from '../util/redact.js';
import { JsonScanError, JsonScanner } from '../util/jsonScan.js';
import { blobHooks, type BlobFacts } from './sessionBlob.js';
import { adaptBlobFor, BlobUnfitError } from '../opencode/adapters.js';
import { composeHooks, pathRebaseHooks, type PathRebase, type RebasedValue } from './sessionRefs.js';

/** Below this much free space in the temp folder, a cut-short export is blamed on the disk. */
const LOW_SPACE_BYTES = 1024 * 1024;

async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  } catch {
    return undefined;
  }
}

/** Counts and hashes the bytes that pass through it. */
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

export interface ExportedBlob {
  file: string;
  sha256: string;
  contentHash: string;
  rawBytes: number;
  storedBytes: number;
  facts: BlobFacts;
}

/**
 * `opencode export <id>` (to a temp file, see runToFiles.ts) → scan (facts, content hash) → sha256 → gzip → a 0600 temp file.
 * Streams end to end: memory does not grow with the session's size.
 */
export async function exportToBlobFile(
  exporter: SessionExporter,
  id: string,
  file: string,
  options: { gzip?: boolean; timing?: Timing } = {},
): Promise<ExportedBlob> {
  const gzip = options.gzip ?? true;
  const t0 = performance.now();
  const source = await exporter.exportSession(id);
  const t1 = performance.now();
  options.timing?.add('export', t1 - t0);
  const { hooks, facts } = blobHooks();
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  const raw = new Meter();
  const stored = new Meter();
  try {
    if (gzip) {
      await pipeline(source, scanner, raw, createGzip({ level: 6 }), stored, createWriteStream(file, { mode: 0o600 }));
    } else {
      await pipeline(source, scanner, raw, stored, createWriteStream(file, { mode: 0o600 }));
    }
  } catch (error) {
    source.destroy();
    await rm(file, { force: true });
    if (error instanceof JsonScanError) {
      // opencode exits 0 when its output file hits a full disk (measured on 1.18.33): the JSON is
      // merely cut short. Say so rather than blame opencode.
      const free = await freeBytes(path.dirname(file));
      if (free !== undefined && free < LOW_SPACE_BYTES) {
        throw new SessmigError('local-io', `the export of ${id} was cut short: the temp folder ${path.dirname(file)} is full (${free} bytes free)`, {
          hint: 'free disk space (or point TMPDIR at a folder with room) and re-run; nothing was committed',
          cause: error,
        });
      }
      throw new SessmigError('export-malformed', `opencode export of ${id} printed invalid JSON: ${error.message}`, {
        hint: 'run `opencode export <id>` by hand to see its output',
      });
    }
    const code = (error as NodeJS.ErrnoException).code;
    throw new SessmigError('local-io', `cannot write the export of ${id} to ${file}: ${(error as Error).message}`, {
      hint: code === 'ENOSPC' ? 'free disk space (or point TMPDIR elsewhere) and re-run' : 'check that TMPDIR is writable and re-run',
      cause: error,
    });
  }
  options.timing?.add(gzip ? 'compress' : 'scan', performance.now() - t1);
  if (facts.id !== id) {
    await rm(file, { force: true });
    throw new SessmigError('export-malformed', `opencode export of ${id} returned session ${String(facts.id)}`, {
      hint: 'run `opencode export <id>` by hand to see its output',
    });
  }
  return {
    file,
    sha256: raw.digest(),
    contentHash: scanner.normalizedDigest(),
    rawBytes: raw.bytes,
    storedBytes: stored.bytes,
    facts,
  };
}

export interface ExpectedBlob {
  id: string;
  sha256: string;
  rawBytes: number;
  storedBytes: number;
}

/**
 * Downloads a blob and writes it, rebased onto `directory`, to `file` — verifying the stored size,
 * the raw size and the raw sha256 on the way. A blob that fails any check is deleted and refused.
 * With `destination` (the local opencode version), the blob is also adapted to what that version
 * imports, and refused ('blob-unfit', with the field) if it holds what that version would reject
 * half-way (src/opencode/adapters.ts). With `paths`, the paths opencode acts on (patch files, tool
 * file paths, tool-output paths) are moved onto the destination too (src/blob/sessionRefs.ts);
 * `rewritten` lists each value changed, for the check after import.
 */
export async function downloadRebasedBlob(
  remote: Remote,
  key: string,
  expected: ExpectedBlob,
  directory: string,
  file: string,
  destination?: string,
  paths?: PathRebase,
): Promise<{ facts: BlobFacts; adapted: number; rewritten: RebasedValue[] }> {
  const { hooks, facts } = blobHooks(directory);
  const adaptation = destination === undefined ? undefined : adaptBlobFor(destination);
  const pathRebase = paths === undefined ? undefined : pathRebaseHooks(paths);
  const scanner = new JsonScanner(composeHooks(...[hooks, adaptation?.hooks, pathRebase?.hooks].filter((set): set is NonNullable<typeof set> => set !== undefined)));
  const stored = new Meter();
  const raw = new Meter();
  const refuse = async (why: string, cause?: unknown): Promise<never> => {
    await rm(file, { force: true });
    throw new SessmigError('blob-corrupt', `blob of session ${expected.id} (${key}) ${why}`, {
      hint: 'the remote copy is damaged: push again from the host that has the session, or pull another checkpoint with --checkpoint',
      cause,
    });
  };
  let source: Readable;
  try {
    source = await remote.getStream(key);
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'not-found') return refuse('is missing from the remote');
    // A sealed blob that fails authentication is damaged like a plaintext one: refused alone.
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return refuse(`cannot be opened: ${error.message}`, error);
    throw error;
  }
  // A download cut off by the network (the server died, the connection reset) is not a damaged
  // blob: the source stream fails before its end, and not because of what gunzip or the scanner read.
  let sourceEnded = false;
  source.once('end', () => {
    sourceEnded = true;
  });
  try {
    await pipeline(source, stored, createGunzip(), raw, scanner, createWriteStream(file, { mode: 0o600 }));
  } catch (error) {
    if (error instanceof BlobUnfitError) {
      await rm(file, { force: true });
      throw new SessmigError('blob-unfit', `session ${expected.id} cannot be imported faithfully by opencode ${destination}: ${error.message}`, {
        hint: 'upgrade opencode on this host to the version that exported it (see `sessmig doctor`); nothing of this session was imported',
        data: { session: expected.id, field: error.fieldPath, destination },
      });
    }
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return refuse(`cannot be opened: ${error.message}`, error);
    if (error instanceof SessmigError) {
      await rm(file, { force: true });
      throw error;
    }
    const code = (error as NodeJS.ErrnoException).code;
    const readError = error instanceof JsonScanError || (typeof code === 'string' && code.startsWith('Z_'));
    if (!sourceEnded && !readError && code !== 'ENOSPC' && code !== 'EACCES' && code !== 'EROFS' && code !== 'EDQUOT') {
      await rm(file, { force: true });
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const detail = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new SessmigError('remote-unreachable', `download of the blob of session ${expected.id} (${key}) broke off after ${stored.bytes} of ${expected.storedBytes} bytes (${redact(String(detail))})`, {
        hint: 'check the network and the remote, then re-run; nothing was imported',
        cause: error,
      });
    }
    if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EDQUOT') {
      await rm(file, { force: true });
      throw new SessmigError('local-io', `cannot write the downloaded session to ${file}: ${(error as Error).message}`, {
        hint: 'free disk space or point TMPDIR at a writable folder; nothing was imported',
      });
    }
    if (stored.bytes !== expected.storedBytes) {
      return refuse(`is ${stored.bytes} bytes in the remote, expected ${expected.storedBytes} (truncated?)`, error);
    }
    return refuse(`cannot be read: ${(error as Error).message}`, error);
  }
  if (stored.bytes !== expected.storedBytes) return refuse(`is ${stored.bytes} bytes in the remote, expected ${expected.storedBytes}`);
  const sha256 = raw.digest();
  if (raw.bytes !== expected.rawBytes || sha256 !== expected.sha256) {
    return refuse(`does not match its checksum (sha256 ${sha256.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…)`);
  }
  if (facts.id !== expected.id) return refuse(`holds session ${String(facts.id)}, not ${expected.id}`);
  if (pathRebase) paths?.rewritten?.set(expected.id, pathRebase.rewritten);
  return { facts, adapted: adaptation?.counts.legacyDiffsToPatch ?? 0, rewritten: pathRebase?.rewritten ?? [] };
}
