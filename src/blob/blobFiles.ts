import { createWriteStream } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { SessmigError } from '../util/errors.js';
import type { Timing } from '../util/timing.js';
import type { SessionExporter } from '../opencode/exporter.js';
import type { Remote } from '../remote/remote.js';
import { JsonScanError, JsonScanner } from '../util/jsonScan.js';
import { blobHooks, type BlobFacts } from './sessionBlob.js';
import { adaptBlobFor, BlobUnfitError } from '../opencode/adapters.js';
import { composeHooks, pathRebaseHooks, type PathRebase, type RebasedValue } from './sessionRefs.js';
import { Meter, readVerified, type VerifiedRead } from './verifiedRead.js';
import { GZIP_LEVEL } from './storedObject.js';

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
      await pipeline(source, scanner, raw, createGzip({ level: GZIP_LEVEL }), stored, createWriteStream(file, { mode: 0o600 }));
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
  const refuse = async (why: string, cause?: unknown): Promise<never> => {
    await rm(file, { force: true });
    throw new SessmigError('blob-corrupt', `blob of session ${expected.id} (${key}) ${why}`, {
      hint: 'the remote copy is damaged: push again from the host that has the session, or pull another checkpoint with --checkpoint',
      cause,
    });
  };
  let read: VerifiedRead;
  try {
    read = await readVerified(remote, key, {
      gzip: true,
      through: [scanner],
      sink: createWriteStream(file, { mode: 0o600 }),
      passThrough: (error) => error instanceof BlobUnfitError,
      what: `the blob of session ${expected.id} (${key})`,
      expectedStoredBytes: expected.storedBytes,
      unchanged: 'nothing was imported',
    });
  } catch (error) {
    await rm(file, { force: true });
    if (error instanceof BlobUnfitError) {
      throw new SessmigError('blob-unfit', `session ${expected.id} cannot be imported faithfully by opencode ${destination}: ${error.message}`, {
        hint: 'upgrade opencode on this host to the version that exported it (see `sessmig doctor`); nothing of this session was imported',
        data: { session: expected.id, field: error.fieldPath, destination },
      });
    }
    throw error;
  }
  if (read.status === 'missing') return refuse('is missing from the remote');
  if (read.status === 'damaged') {
    // A read error on a short object: say it is short, the likelier story.
    if (read.storedBytes !== expected.storedBytes && !read.why.startsWith('cannot be opened')) return refuse(`is ${read.storedBytes} bytes in the remote, expected ${expected.storedBytes} (truncated?)`, read.cause);
    return refuse(read.why, read.cause);
  }
  if (read.storedBytes !== expected.storedBytes) return refuse(`is ${read.storedBytes} bytes in the remote, expected ${expected.storedBytes}`);
  if (read.rawBytes !== expected.rawBytes || read.sha256 !== expected.sha256) {
    return refuse(`does not match its checksum (sha256 ${read.sha256.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…)`);
  }
  if (facts.id !== expected.id) return refuse(`holds session ${String(facts.id)}, not ${expected.id}`);
  if (pathRebase) paths?.rewritten?.set(expected.id, pathRebase.rewritten);
  return { facts, adapted: adaptation?.counts.legacyDiffsToPatch ?? 0, rewritten: pathRebase?.rewritten ?? [] };
}
