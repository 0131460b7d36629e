import { open, statfs, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { JsonScanError, JsonScanner, pathIs } from '../util/jsonScan.js';
import { SessmigError } from '../util/errors.js';
import { redact } from '../util/redact.js';

/**
 * Where the session is in what `opencode export <id>` printed. opencode loads the repository's
 * plugins even for export, and whatever a plugin prints lands on the same stdout: lines before the
 * JSON (measured on 1.18.33: `[noisy] loaded`, twice), possibly after it, possibly lines that are
 * JSON themselves. The session is the JSON object whose `info.id` is the requested id and that has
 * `messages`; everything else is not stored. If no such object can be found, or two can, sessmig
 * cannot tell the session from the junk: that session is refused ('export-unclear'), naming what
 * was printed.
 */
export interface SessionInOutput {
  /** Byte range of the session's JSON object: [start, end). */
  start: number;
  end: number;
  /** Nothing but whitespace around it: the output is stored as it is. */
  clean: boolean;
  /** Bytes before and after it that are not whitespace (what a plugin printed). */
  junkBefore: number;
  junkAfter: number;
}

const CHUNK = 64 * 1024;
/** At most this many places where a `{` could start the session are tried. */
const MAX_CANDIDATES = 256;

type Candidate = { kind: 'session'; end: number } | { kind: 'other'; end: number } | { kind: 'invalid' };

/** Reads the JSON value that starts at `start` (a `{`): is it the session, another value, or not JSON? */
async function readCandidate(file: FileHandle, start: number, size: number, id: string): Promise<Candidate> {
  let infoId: unknown;
  let hasMessages = false;
  const scanner = new JsonScanner({
    wants: (path) => pathIs(path, 'info', 'id'),
    onScalar: (path, value) => {
      if (pathIs(path, 'info', 'id')) infoId = value;
    },
    onValueStart: (path) => {
      if (pathIs(path, 'messages')) hasMessages = true;
    },
  });
  const buffer = Buffer.alloc(CHUNK);
  let at = start;
  try {
    while (at < size && scanner.documentEnd === undefined) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, size - at), at);
      if (bytesRead === 0) break;
      scanner.inspect(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
  } catch (error) {
    // Bytes after a complete value fail the scan; the value itself stands.
    if (!(error instanceof JsonScanError) || scanner.documentEnd === undefined) return { kind: 'invalid' };
  }
  if (scanner.documentEnd === undefined) return { kind: 'invalid' };
  const end = start + scanner.documentEnd;
  return infoId === id && hasMessages ? { kind: 'session', end } : { kind: 'other', end };
}

/** The next `{` at or after `from`, or -1. */
async function nextBrace(file: FileHandle, from: number, size: number): Promise<number> {
  const buffer = Buffer.alloc(CHUNK);
  for (let at = from; at < size; at += CHUNK) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, size - at), at);
    const found = buffer.subarray(0, bytesRead).indexOf(0x7b);
    if (found >= 0) return at + found;
  }
  return -1;
}

/** Finds the first session object in [from, to); returns its range, or undefined. */
async function findSession(file: FileHandle, from: number, to: number, id: string): Promise<{ start: number; end: number } | undefined> {
  let at = from;
  for (let tries = 0; tries < MAX_CANDIDATES; tries++) {
    const start = await nextBrace(file, at, to);
    if (start < 0) return undefined;
    const candidate = await readCandidate(file, start, to, id);
    if (candidate.kind === 'session') return { start, end: candidate.end };
    // A complete JSON value that is not the session (a plugin's JSON line) is skipped whole.
    at = candidate.kind === 'other' ? candidate.end : start + 1;
  }
  return undefined;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** The bytes in [start, end) that are not whitespace, and the first of them as a quote. */
async function junkIn(file: FileHandle, start: number, end: number): Promise<{ bytes: number; quote: string }> {
  let bytes = 0;
  let quote = '';
  const buffer = Buffer.alloc(CHUNK);
  for (let at = start; at < end; at += CHUNK) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, end - at), at);
    const chunk = buffer.subarray(0, bytesRead);
    if (quote.length < 200) quote += chunk.subarray(0, 200).toString('utf8');
    for (const c of chunk) if (!isSpace(c)) bytes++;
  }
  return { bytes, quote: redact(quote.trim().replace(/\s+/g, ' ')).slice(0, 80) };
}

function unclear(id: string, what: string): SessmigError {
  return new SessmigError('export-unclear', `opencode export of ${id} ${what} — a plugin writes to stdout (.opencode/plugin/ or the global opencode config); this session was not pushed`, {
    hint: 'make the plugin log to a file or stderr instead of stdout, then push again',
    data: { id },
  });
}

/** Below this much free space where the output went, an output without the session was cut short. */
const LOW_SPACE_BYTES = 1024 * 1024;

/**
 * opencode exits 0 when its output file hits a full disk (measured on 1.18.33): the JSON is merely
 * cut short. Say so rather than blame a plugin.
 */
async function assertRoomFor(output: string, id: string): Promise<void> {
  const dir = path.dirname(output);
  const stats = await statfs(dir).catch(() => undefined);
  const free = stats ? stats.bavail * stats.bsize : undefined;
  if (free !== undefined && free < LOW_SPACE_BYTES) {
    throw new SessmigError('local-io', `the export of ${id} was cut short: the temp folder ${dir} is full (${free} bytes free)`, {
      hint: 'free disk space (or point TMPDIR at a folder with room) and re-run; nothing was committed',
    });
  }
}

/** Locates session `id` in the export output `output` (see SessionInOutput); throws 'export-unclear'. */
export async function locateSessionInOutput(output: string, id: string): Promise<SessionInOutput> {
  const file = await open(output, 'r');
  try {
    const size = (await file.stat()).size;
    const found = await findSession(file, 0, size, id);
    if (!found) {
      await assertRoomFor(output, id);
      const junk = await junkIn(file, 0, Math.min(size, 4096));
      throw unclear(id, size === 0 ? 'printed nothing' : `printed ${size} bytes with no JSON object that is session ${id} (it starts: '${junk.quote}')`);
    }
    const before = await junkIn(file, 0, found.start);
    const after = await junkIn(file, found.end, size);
    // A second copy of the session after the first: which one is the export cannot be told.
    if (after.bytes > 0 && (await findSession(file, found.end, size, id))) {
      throw unclear(id, `printed session ${id} twice (${before.bytes} bytes before the first, ${after.bytes} after it: '${after.quote}')`);
    }
    const clean = before.bytes === 0 && after.bytes === 0 && found.start === 0;
    return { start: found.start, end: found.end, clean, junkBefore: before.bytes, junkAfter: after.bytes };
  } finally {
    await file.close();
  }
}
