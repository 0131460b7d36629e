import { stat } from 'node:fs/promises';
import { assertSessionId } from '../format/ids.js';
import type { Opencode } from './opencode.js';
import { readBlob } from './blobReader.js';
import { sqlString } from './todos.js';

/**
 * Does the destination's opencode store a session as its blob says, field by field? opencode's
 * importer (and its event replay) decode with its own schemas and drop, without a word, what those
 * do not know — measured on 1.18.33: `synthetic: true` of a user `file` part (an attachment from
 * `opencode run -f pic.png`), which its own `opencode export` writes.
 *
 * What is stored is read from opencode's database (`opencode db`, one process for all sessions):
 * each message and part row keeps its JSON in `data` — the export's object without its ids — and
 * `opencode export` prints it as it is. (`opencode serve`'s routes do not: they encode through
 * opencode's schemas and leave out the same `synthetic`, measured on 1.18.33; so a read-back
 * through the server cannot see what was dropped.) Each row is compared with the blob, key order
 * aside; rows over ROW_LIMIT are compared by their keys and their size only.
 *
 * A field the destination dropped from a message or a part is put back into that row's JSON
 * through `opencode db` (opencode's own binary: json_set on rows whose data is a JSON object); the
 * UPDATE returns the rows it changed, which confirm each restored value. Anything else that
 * differs is reported per session.
 */

/** Fields of the session info that the destination decides (see contentHash in docs/FORMAT.md). */
export const HOST_BOUND_INFO = ['directory', 'projectID', 'path', 'time.updated'] as const;

export type Segment = string | number;

export interface Difference {
  /** Where, as a reader would write it: `messages[0].parts[2].synthetic`. */
  at: string;
  /** The row that holds it: the session, a message, or a part (with its id). */
  record: { kind: 'session' } | { kind: 'message'; id: string } | { kind: 'part'; id: string; messageID: string };
  /** The path inside that row's JSON. */
  path: Segment[];
  /** dropped: the blob has it, the destination does not; added: the other way; changed: both, unequal. */
  kind: 'dropped' | 'added' | 'changed';
  /** The blob's value (dropped, changed). */
  value?: unknown;
}

/** At most this many differences are collected per session (the rest are counted). */
const MAX_DIFFERENCES = 100;

export interface Comparison {
  differences: Difference[];
  /** How many more differences there were beyond those listed. */
  more: number;
  /**
   * Messages of the blob too large to compare field by field (MESSAGE_LIMIT), as `messages[3]`:
   * neither they nor the rows they would match are compared.
   */
  unchecked?: string[];
}

/**
 * A message of the blob larger than this is not compared with the database: a message is parsed
 * whole, and a parsed message costs several times its size in memory (a 300 MB text part took
 * sessmig's pull to 1.4 GB RSS, measured by `npm run bench`). Its rows still went through opencode's
 * import or replay, and pull's verification still counts its messages.
 */
export const MESSAGE_LIMIT = 16 * 1024 * 1024;

/** The session info as opencode serves it here (`stored`), compared with the blob's, host-bound fields aside. */
export async function compareInfo(stored: unknown, blobFile: string): Promise<Comparison> {
  const blob = readBlob(blobFile);
  const out = new Collector();
  try {
    const first = await blob.next();
    if (!first.done && first.value.kind === 'info') compareValues(withoutHostBound(stored), withoutHostBound(first.value.value), [], 'info', { kind: 'session' }, out);
  } finally {
    await blob.return(undefined).catch(() => undefined);
  }
  return out.result();
}

/** Compares the session as the destination stores it (`storedFile`, its export) with `blobFile` (what was imported). */
export async function compareStored(storedFile: string, blobFile: string): Promise<Comparison> {
  const stored = readBlob(storedFile);
  const blob = readBlob(blobFile);
  const out = new Collector();
  try {
    for (let index = -1; ; index++) {
      const [have, want] = await Promise.all([stored.next(), blob.next()]);
      if (have.done || want.done) {
        if (!(have.done && want.done)) out.add({ at: 'messages.length', record: { kind: 'session' }, path: [], kind: have.done ? 'dropped' : 'added' });
        return out.result();
      }
      if (index === -1) {
        compareValues(withoutHostBound(have.value.value), withoutHostBound(want.value.value), [], 'info', { kind: 'session' }, out);
      } else {
        compareMessage(have.value.value, want.value.value, index, out);
      }
    }
  } finally {
    await stored.return(undefined).catch(() => undefined);
    await blob.return(undefined).catch(() => undefined);
  }
}

/** The differences within one message (with its parts) of an export: `have` stored here, `want` the blob's. */
export function compareOneMessage(have: unknown, want: unknown, index: number): Comparison {
  const out = new Collector();
  compareMessage(have, want, index, out);
  return out.result();
}

class Collector {
  readonly differences: Difference[] = [];
  more = 0;
  add(difference: Difference): void {
    if (this.differences.length < MAX_DIFFERENCES) this.differences.push(difference);
    else this.more++;
  }
  result(): Comparison {
    return { differences: this.differences, more: this.more };
  }
}

function withoutHostBound(info: unknown): unknown {
  if (!isObject(info)) return info;
  const { directory: _directory, projectID: _projectID, path: _path, ...rest } = info;
  if (isObject(rest.time)) {
    const { updated: _updated, ...time } = rest.time;
    rest.time = time;
  }
  return rest;
}

function compareMessage(have: unknown, want: unknown, index: number, out: Collector): void {
  const at = `messages[${index}]`;
  if (!isObject(have) || !isObject(want)) {
    compareValues(have, want, [], at, { kind: 'session' }, out);
    return;
  }
  const wantInfo = want.info;
  const messageID = isObject(wantInfo) && typeof wantInfo.id === 'string' ? wantInfo.id : '';
  compareValues(have.info, wantInfo, [], `${at}.info`, { kind: 'message', id: messageID }, out);
  const haveParts = Array.isArray(have.parts) ? have.parts : [];
  const wantParts = Array.isArray(want.parts) ? want.parts : [];
  // Parts are paired by id (an import that drops a whole part must not shift the rest).
  const byId = new Map<string, unknown>();
  for (const part of haveParts) if (isObject(part) && typeof part.id === 'string') byId.set(part.id, part);
  const seen = new Set<string>();
  wantParts.forEach((part, at2) => {
    const id = isObject(part) && typeof part.id === 'string' ? part.id : '';
    const where = `${at}.parts[${at2}]`;
    seen.add(id);
    const stored = byId.get(id);
    if (stored === undefined) {
      out.add({ at: where, record: { kind: 'message', id: messageID }, path: [], kind: 'dropped', value: part });
      return;
    }
    compareValues(stored, part, [], where, { kind: 'part', id, messageID }, out);
  });
  for (const [id] of byId) if (!seen.has(id)) out.add({ at: `${at}.parts(${id})`, record: { kind: 'message', id: messageID }, path: [], kind: 'added' });
}

/** Walks two JSON values (key order does not count) and adds every place where they differ. */
function compareValues(have: unknown, want: unknown, path: Segment[], at: string, record: Difference['record'], out: Collector): void {
  if (have === want) return;
  if (isObject(have) && isObject(want)) {
    for (const key of Object.keys(want)) {
      const where = `${at}.${key}`;
      if (!(key in have)) out.add({ at: where, record, path: [...path, key], kind: 'dropped', value: want[key] });
      else compareValues(have[key], want[key], [...path, key], where, record, out);
    }
    for (const key of Object.keys(have)) if (!(key in want)) out.add({ at: `${at}.${key}`, record, path: [...path, key], kind: 'added' });
    return;
  }
  if (Array.isArray(have) && Array.isArray(want) && have.length === want.length) {
    for (let i = 0; i < want.length; i++) compareValues(have[i], want[i], [...path, i], `${at}[${i}]`, record, out);
    return;
  }
  out.add({ at, record, path, kind: 'changed', value: want });
}

/** Rows whose JSON is larger than this are compared by their keys and size only (memory stays bounded). */
const ROW_LIMIT = 1024 * 1024;

interface StoredRow {
  kind: 'message' | 'part';
  id: string;
  sessionID: string;
  messageID: string | null;
  /** The row's JSON, parsed; undefined when larger than ROW_LIMIT. */
  data: Record<string, unknown> | undefined;
  bytes: number;
  keys: string[];
}

/** The message and part rows of these sessions, by row id (one `opencode db`). */
async function readStoredRows(opencode: Opencode, ids: string[]): Promise<Map<string, StoredRow>> {
  const list = ids.map((id) => sqlString(assertSessionId(id))).join(', ');
  const select = (table: 'message' | 'part', messageColumn: string) =>
    `SELECT '${table}' AS kind, id, session_id, ${messageColumn} AS message_id, ` +
    `CASE WHEN length(CAST(data AS BLOB)) <= ${ROW_LIMIT} THEN data END AS data, length(CAST(data AS BLOB)) AS bytes, ` +
    `(SELECT json_group_array(key) FROM json_each(${table}.data)) AS keys FROM ${table} WHERE session_id IN (${list})`;
  const rows = await opencode.query(`${select('message', 'NULL')} UNION ALL ${select('part', 'message_id')}`);
  const out = new Map<string, StoredRow>();
  for (const raw of rows as Record<string, unknown>[]) {
    if (typeof raw.id !== 'string' || typeof raw.session_id !== 'string' || typeof raw.bytes !== 'number' || typeof raw.keys !== 'string') {
      throw new Error('opencode db returned message or part rows of an unexpected shape');
    }
    const data = typeof raw.data === 'string' ? (JSON.parse(raw.data) as unknown) : undefined;
    out.set(raw.id, {
      kind: raw.kind === 'part' ? 'part' : 'message',
      id: raw.id,
      sessionID: raw.session_id,
      messageID: typeof raw.message_id === 'string' ? raw.message_id : null,
      data: isObject(data) ? data : undefined,
      bytes: raw.bytes,
      keys: JSON.parse(raw.keys) as string[],
    });
  }
  return out;
}

/**
 * Compares what opencode's database holds for each session with the blob it came from (`file`):
 * every message and part, field by field. One `opencode db` for all of them; the blobs are read
 * one message at a time.
 */
export async function compareWithDatabase(opencode: Opencode, sessions: { id: string; file: string }[]): Promise<Map<string, Comparison>> {
  const out = new Map<string, Comparison>();
  // Sessions in batches of about BATCH_BYTES of blob: what one `opencode db` prints is read whole.
  let batch: { id: string; file: string }[] = [];
  let size = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const rows = await readStoredRows(opencode, batch.map((session) => session.id));
    for (const session of batch) out.set(session.id, await compareRows(session.id, session.file, rows));
    batch = [];
    size = 0;
  };
  for (const session of sessions) {
    const bytes = (await stat(session.file)).size;
    if (batch.length > 0 && size + bytes > BATCH_BYTES) await flush();
    batch.push(session);
    size += bytes;
  }
  await flush();
  return out;
}

/** About this much blob per `opencode db` read of stored rows. */
const BATCH_BYTES = 64 * 1024 * 1024;

async function compareRows(sessionID: string, file: string, rows: Map<string, StoredRow>): Promise<Comparison> {
  const out = new Collector();
  const seen = new Set<string>();
  const unchecked: string[] = [];
  const blob = readBlob(file, { maxMessageBytes: MESSAGE_LIMIT });
  try {
    for await (const piece of blob) {
      if (piece.kind !== 'message') continue;
      if (piece.oversized !== undefined) {
        unchecked.push(`messages[${piece.index}]`);
        continue;
      }
      const message = piece.value as { info?: unknown; parts?: unknown };
      const at = `messages[${piece.index}]`;
      const info = isObject(message.info) ? message.info : {};
      const messageID = typeof info.id === 'string' ? info.id : '';
      seen.add(messageID);
      compareRow(rows.get(messageID), withoutIds(info), `${at}.info`, { kind: 'message', id: messageID }, out);
      const parts = Array.isArray(message.parts) ? message.parts : [];
      parts.forEach((part, index) => {
        const fields = isObject(part) ? part : {};
        const id = typeof fields.id === 'string' ? fields.id : '';
        seen.add(id);
        compareRow(rows.get(id), withoutIds(fields), `${at}.parts[${index}]`, { kind: 'part', id, messageID }, out);
      });
    }
  } finally {
    await blob.return(undefined).catch(() => undefined);
  }
  // Rows no compared message matched are extra here — unless a message went unchecked (its rows are among them).
  if (unchecked.length === 0) {
    for (const row of rows.values()) {
      if (row.sessionID === sessionID && !seen.has(row.id)) out.add({ at: `${row.kind} ${row.id}`, record: { kind: 'session' }, path: [], kind: 'added' });
    }
    return out.result();
  }
  return { ...out.result(), unchecked };
}

function compareRow(row: StoredRow | undefined, want: Record<string, unknown>, at: string, record: Difference['record'], out: Collector): void {
  if (!row) {
    out.add({ at, record: { kind: 'session' }, path: [], kind: 'dropped' });
    return;
  }
  if (row.data) {
    compareValues(row.data, want, [], at, record, out);
    return;
  }
  // A large row: its keys, and its size (opencode stores compact JSON: the same value has the same size whatever its key order).
  const keys = new Set(row.keys);
  for (const key of Object.keys(want)) if (!keys.has(key)) out.add({ at: `${at}.${key}`, record, path: [key], kind: 'dropped', value: want[key] });
  for (const key of keys) if (!(key in want)) out.add({ at: `${at}.${key}`, record, path: [key], kind: 'added' });
  if ([...keys].every((key) => key in want) && Object.keys(want).every((key) => keys.has(key)) && Buffer.byteLength(JSON.stringify(want)) !== row.bytes) {
    out.add({ at, record, path: [], kind: 'changed' });
  }
}

/** A message's info or a part as its row keeps it: without the ids, which are columns. */
function withoutIds(value: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, sessionID: _sessionID, messageID: _messageID, ...rest } = value;
  return rest;
}

/** Can this difference be put right by setting the blob's value into the row's JSON? */
export function restorable(difference: Difference): boolean {
  if (difference.kind !== 'dropped' || difference.record.kind === 'session' || difference.path.length === 0) return false;
  // the ids are columns, not part of the row's JSON
  if (difference.path.length === 1 && ['id', 'sessionID', 'messageID'].includes(String(difference.path[0]))) return false;
  return difference.path.every((segment) => typeof segment === 'number' || /^[^"\\\u0000-\u001f]{1,256}$/.test(segment));
}

/** A JSON path for SQLite's json_set: `$."state"."metadata"[0]`. */
function jsonPath(path: Segment[]): string {
  return `$${path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : `."${segment}"`)).join('')}`;
}

/** Longest SQL statement sent in one `opencode db` argument (Linux: 128 KiB per argv string). */
const MAX_STATEMENT = 100_000;

/**
 * Puts the blob's values of dropped fields back into the message and part rows of these sessions,
 * through `opencode db` (one UPDATE per table, each only touching rows whose JSON is an object).
 * Returns the differences it wrote, each confirmed by the row the UPDATE returned.
 */
export async function restoreDropped(opencode: Opencode, sessionIDs: string[], differences: Difference[]): Promise<Difference[]> {
  const sessions = sessionIDs.map((id) => sqlString(assertSessionId(id))).join(', ');
  const written: Difference[] = [];
  for (const table of ['message', 'part'] as const) {
    const rows = new Map<string, Difference[]>();
    for (const difference of differences) {
      if (!restorable(difference) || difference.record.kind !== table) continue;
      const id = difference.record.id;
      if (!/^(msg|prt)_[0-9A-Za-z]{1,64}$/.test(id)) continue;
      rows.set(id, [...(rows.get(id) ?? []), difference]);
    }
    if (rows.size === 0) continue;
    const cases: string[] = [];
    const ids: string[] = [];
    const taken: Difference[] = [];
    let size = 0;
    for (const [id, list] of rows) {
      let setter: string;
      try {
        setter = `WHEN ${sqlString(id)} THEN json_set(data, ${list.map((item) => `${sqlString(jsonPath(item.path))}, json(${sqlString(JSON.stringify(item.value))})`).join(', ')})`;
      } catch {
        continue; // a value SQLite cannot take as a string literal (NUL): left to be reported
      }
      if (size + setter.length > MAX_STATEMENT) continue; // too large for one statement: reported instead
      size += setter.length;
      cases.push(setter);
      ids.push(sqlString(id));
      taken.push(...list);
    }
    if (cases.length === 0) continue;
    const answer = await opencode.query(
      `UPDATE ${table} SET data = CASE id ${cases.join(' ')} ELSE data END WHERE session_id IN (${sessions}) AND id IN (${ids.join(', ')}) AND json_type(data) = 'object' RETURNING id, data`,
    );
    // The rows as the UPDATE left them: each restored field must now hold the blob's value.
    const updated = new Map<unknown, unknown>();
    for (const row of answer as { id?: unknown; data?: unknown }[]) updated.set(row.id, typeof row.data === 'string' ? JSON.parse(row.data) : undefined);
    written.push(...taken.filter((item) => item.record.kind === table && updated.has(item.record.id) && sameJson(valueAt(updated.get(item.record.id), item.path), item.value)));
  }
  return written;
}

export interface RowsOutcome {
  /** Dropped fields put back, and confirmed by the second read. */
  restored: string[];
  /** What still differs after that (reported, not repaired). */
  remaining: Comparison;
}

/** What the core asks of opencode after an import: align its rows with the blobs (part of OpencodeAdapter; the real one: alignStoredRows). */
export interface RowAligner {
  alignRows(sessions: { id: string; file: string }[], options?: { restore?: boolean }): Promise<Map<string, RowsOutcome>>;
}

/** The core's entry point: asks the adapter it is given. */
export const alignRows = (opencode: RowAligner, sessions: { id: string; file: string }[], options: { restore?: boolean } = {}) => opencode.alignRows(sessions, options);

/**
 * Compares each session's message and part rows with the blob it came from and puts back the
 * fields opencode dropped: one `opencode db` to read (per ~64 MiB of blob), and one UPDATE per
 * table that needs one, whose RETURNING rows confirm each restored value. What pull, `sessmig undo`
 * and a rollback run after an import.
 */
export async function alignStoredRows(opencode: Opencode, sessions: { id: string; file: string }[], options: { restore?: boolean } = {}): Promise<Map<string, RowsOutcome>> {
  const outcome = new Map<string, RowsOutcome>();
  const first = await compareWithDatabase(opencode, sessions);
  for (const [id, remaining] of first) outcome.set(id, { restored: [], remaining });
  if (options.restore === false) return outcome;
  const repairable = [...first.values()].flatMap((comparison) => comparison.differences.filter(restorable));
  if (repairable.length === 0) return outcome;
  const written = new Set(await restoreDropped(opencode, [...first.keys()], repairable));
  for (const [id, comparison] of first) {
    outcome.set(id, {
      restored: comparison.differences.filter((difference) => written.has(difference)).map((difference) => difference.at),
      remaining: { differences: comparison.differences.filter((difference) => !written.has(difference)), more: comparison.more, ...(comparison.unchecked ? { unchecked: comparison.unchecked } : {}) },
    });
  }
  return outcome;
}

function valueAt(value: unknown, path: Segment[]): unknown {
  let at = value;
  for (const segment of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string | number, unknown>)[segment];
  }
  return at;
}

function sameJson(a: unknown, b: unknown): boolean {
  const none = new Collector();
  compareValues(a, b, [], '', { kind: 'session' }, none);
  return none.differences.length === 0 && none.more === 0 && a !== undefined;
}

/** One line per session for what still differs: the first few places, and how many in all. */
export function describeDifferences(differences: Difference[], more: number): string {
  const shown = differences.slice(0, 5).map((item) => `${item.at} (${item.kind === 'dropped' ? 'missing here' : item.kind === 'added' ? 'only here' : 'differs'})`);
  const rest = differences.length - shown.length + more;
  return `${shown.join(', ')}${rest > 0 ? ` and ${rest} more` : ''}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
