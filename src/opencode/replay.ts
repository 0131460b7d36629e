import semver from 'semver';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError } from '../util/errors.js';
import { SESSION_ID } from '../format/ids.js';
import { redact } from '../util/redact.js';
import { compareOneMessage, restorable, type Difference } from './fidelity.js';
import { readBlob, ReplayInputError } from './blobReader.js';
export { readBlob, type BlobPiece } from './blobReader.js';
import type { Opencode } from './opencode.js';
import type { OpencodeServer } from './server.js';

/**
 * Brings a session into the destination's opencode through one running `opencode serve`, by
 * replaying events synthesized from an export blob (POST /sync/replay), instead of one
 * `opencode import` process per session (≈2 s each).
 *
 *   const server = await OpencodeServer.start({ bin, env, cwd: worktree, timeoutMs, tempDir });
 *   try {
 *     if (await replayAvailable(server)) await replaySession(server, blobFile, { tempDir, opencode });
 *   } finally {
 *     await server.stop();
 *   }
 *
 * What it relies on (measured on opencode 1.18.33; see shared OPENCODE.md, "Event sync routes"):
 *  - POST /sync/replay {directory, events:[{id, aggregateID, seq, type, data}]} applies the events of
 *    one session in order; seq must go on from the session's latest (0 for an unknown session), an
 *    event at or below it is skipped silently. Each event commits on its own, so one session may
 *    take several POSTs (measured) and a failure leaves what came before it: hence the cleanup.
 *  - The event data is decoded with opencode's own schemas: a bad part type or field is a 500 (the
 *    events before it stay), unknown keys are dropped (as `opencode import` drops them).
 *  - The session's tokens are summed from the message events (with the blob's totals in
 *    `session.created` they come out doubled: measured), so `session.created` carries zero
 *    counters (cost too, to be safe) and a last `session.updated` sets the blob's info.
 *  - `directory` of the body is only logged; the session keeps the info of its events, so the info
 *    carries the destination's directory, project id and path, set as `opencode import` sets them.
 *  - DELETE /session/{id} (and `opencode session delete`) remove the session, its children and its
 *    event log, so a session can be replayed again from seq 0 after a cleanup.
 * Verification reads the session back (GET /session/{id} and /message, as its export) and compares
 * it with the blob message by message, so a silently skipped or altered event cannot pass.
 * Memory: the blob is read as a stream, one message (with its parts) at a time; events go out in
 * POSTs of about `batchBytes`.
 */

/** Strict replay (refusing a seq gap) exists from 1.17.19; 1.14.34–1.15.13 skip bad events silently. */
export function replaySupported(version: string): boolean {
  // Releases only; 2.x reworked the server; not measured.
  return semver.valid(version.trim()) !== null && semver.satisfies(version.trim(), '>=1.17.19 <2.0.0');
}

/**
 * The one list of fields that may differ from the blob: fields of the session's info that the
 * destination decides. Replay sets them as `opencode import` does, and verification expects these
 * values instead of the blob's. Every other field, of the info and of each message and part,
 * counters (tokens, cost) included, must read back exactly as the blob has it; opencode derives
 * nothing else (measured on 1.18.33: replayed and imported exports are deep-equal).
 */
export const DESTINATION_FIELDS = {
  projectID: 'the rebased blob carries "": the project opencode finds for the directory (GET /project/current)',
  path: 'the directory relative to that project\'s worktree, as `opencode import` computes it',
} as const;

export interface Destination {
  directory: string;
  projectID: string;
  path: string;
}

/** The values of DESTINATION_FIELDS for this destination. */
function destinationFields(destination: Destination): Record<keyof typeof DESTINATION_FIELDS, string> {
  return { projectID: destination.projectID, path: destination.path };
}

export interface ReplayOptions {
  /** Where the read-back of the replayed session goes for verification (removed afterwards). */
  tempDir: string;
  /**
   * For the cleanup when the server itself is gone (crashed, killed, stopped by an interrupt):
   * `opencode session delete` in a process of its own. Without it such a cleanup is not possible.
   */
  opencode?: Opencode;
  /** Events are sent in POSTs of about this many bytes (default 2 MiB); an event larger goes alone. */
  batchBytes?: number;
  /** Called after each POST opencode accepted, with the number of events replayed so far. */
  onBatch?: (events: number) => void | Promise<void>;
}

const DEFAULT_BATCH_BYTES = 2 * 1024 * 1024;
const MESSAGE_ID = /^msg_[0-9A-Za-z]{1,64}$/;
const PART_ID = /^prt_[0-9A-Za-z]{1,64}$/;
const SESSION_NOT_FOUND = /Session not found/i;

const availability = new WeakMap<OpencodeServer, Promise<string | undefined>>();

/**
 * Whether this server can take a replay: its version (GET /global/health) is one that replays
 * strictly, and its OpenAPI description (GET /doc) has the routes and the event shape used here.
 * Decided once per server, never by trying a replay. The first GET /doc of a server is slow (opencode
 * builds its OpenAPI description: 1.5–5 s measured), so ask early, e.g. while blobs download.
 */
export async function replayAvailable(server: OpencodeServer): Promise<boolean> {
  return (await whyUnavailable(server)) === undefined;
}

/**
 * replayAvailable, trusting what an earlier full probe found for the same opencode binary
 * (`knownVersion`: the version that probe saw, kept in the version cache): where the server tells
 * that same version (GET /global/health, quick), the routes are taken as probed and /doc — slow on
 * a server's first ask — is not read. Any other answer falls back to the full probe.
 */
export async function replayAvailableAs(server: OpencodeServer, knownVersion: string | undefined): Promise<boolean> {
  if (knownVersion !== undefined && !availability.has(server)) {
    const known = probeVersion(server, knownVersion).catch((error: unknown) => {
      availability.delete(server);
      throw error;
    });
    availability.set(server, known);
  }
  return replayAvailable(server);
}

async function probeVersion(server: OpencodeServer, knownVersion: string): Promise<string | undefined> {
  const health = await server.request('GET', '/global/health');
  const version = health.status === 200 ? (parseJson(health.body) as { version?: unknown } | undefined)?.version : undefined;
  if (version === knownVersion && replaySupported(version)) return undefined;
  return probe(server);
}

function whyUnavailable(server: OpencodeServer): Promise<string | undefined> {
  let known = availability.get(server);
  if (!known) {
    // a failed probe (timeout, server gone) is not remembered: only an answer is
    known = probe(server).catch((error: unknown) => {
      availability.delete(server);
      throw error;
    });
    availability.set(server, known);
  }
  return known;
}

async function probe(server: OpencodeServer): Promise<string | undefined> {
  const health = await server.request('GET', '/global/health');
  const version = health.status === 200 ? (parseJson(health.body) as { version?: unknown } | undefined)?.version : undefined;
  if (typeof version !== 'string') return `opencode serve did not tell its version (GET /global/health answered ${health.status})`;
  if (!replaySupported(version)) return `opencode ${version} has no strict event replay (1.17.19 or later is needed)`;
  const doc = await server.request('GET', '/doc');
  const paths = (parseJson(doc.body) as { paths?: Record<string, Record<string, unknown>> } | undefined)?.paths;
  if (doc.status !== 200 || !paths) return `opencode serve answered ${doc.status} to GET /doc`;
  const replay = paths['/sync/replay']?.post as
    | { requestBody?: { content?: Record<string, { schema?: { properties?: { events?: { items?: { properties?: Record<string, unknown> } } } } }> } }
    | undefined;
  const event = replay?.requestBody?.content?.['application/json']?.schema?.properties?.events?.items?.properties;
  if (!event) return 'opencode serve has no POST /sync/replay route';
  for (const field of ['id', 'aggregateID', 'seq', 'type', 'data']) {
    if (!(field in event)) return `the events of POST /sync/replay have no "${field}" on opencode ${version}`;
  }
  if (!paths['/project/current']?.get) return 'opencode serve has no GET /project/current route';
  if (!paths['/session/{sessionID}']?.delete) return 'opencode serve has no DELETE /session/{sessionID} route';
  return undefined;
}

/**
 * Replays the session of `blobFile` (an export blob, rebased: info.directory is the destination
 * directory) into the server's opencode, then verifies it. On any failure it deletes whatever the
 * replay left and throws a SessmigError 'replay-failed' (the caller falls back to `opencode import`);
 * an interrupt stays 'interrupted'. A session that already exists is refused and left untouched.
 * Returns the fields of messages and parts that opencode dropped while decoding the events (as its
 * import drops them, see fidelity.ts): the caller restores them; anything else that differs fails.
 */
export async function replaySession(server: OpencodeServer, blobFile: string, options: ReplayOptions): Promise<Difference[]> {
  const unavailable = await whyUnavailable(server).catch((error: unknown) => `cannot ask opencode serve: ${(error as Error).message}`);
  if (unavailable) throw failure(unavailable, undefined, { cleaned: true });

  const blob = readBlob(blobFile);
  let id: string | undefined;
  let directory: string | undefined;
  let started = false;
  try {
    const first = await blob.next();
    if (first.done || first.value.kind !== 'info') throw new ReplayInputError('the blob does not start with the session info');
    const info = first.value.value;
    id = sessionIdOf(info);
    const destination = await destinationOf(server, info);
    directory = destination.directory;
    await assertAbsent(server, id);

    const expected = { ...info, ...destinationFields(destination) };
    const sender = new EventSender(server, id, destination.directory, options);
    started = true;
    await sender.add('session.created.1', { sessionID: id, info: { ...expected, ...zeroCounters(expected) } });
    for (;;) {
      const next = await blob.next();
      if (next.done) break;
      if (next.value.kind !== 'message') throw new ReplayInputError('the blob holds a second session info');
      const { info: message, parts } = checkMessage(next.value.value, id, next.value.index);
      await sender.add('message.updated.1', { sessionID: id, info: message });
      for (const part of parts) await sender.add('message.part.updated.1', { sessionID: id, part, time: Date.now() });
    }
    await sender.add('session.updated.1', { sessionID: id, info: expected });
    await sender.flush();
    return await verify(server, id, blobFile, expected, options.tempDir);
  } catch (error) {
    await blob.return(undefined).catch(() => undefined);
    const leftover = started && id ? await removeReplayed(server, id, directory ?? options.tempDir, options) : undefined;
    if (error instanceof SessmigError && error.code === 'interrupted') {
      if (leftover === undefined) throw error;
      throw new SessmigError('interrupted', `${error.message}; the partial session ${id} could not be deleted (${leftover})`, {
        hint: `delete it by hand (opencode session delete ${id}) before the next pull`,
        data: { id, cleaned: false },
      });
    }
    throw failure(describe(error), id, { cleaned: leftover === undefined, ...(leftover ? { leftover } : {}), cause: error });
  }
}

/** The same value with every number under `tokens` and `cost` at 0 (opencode sums them from the messages). */
function zeroCounters(info: Record<string, unknown>): Record<string, unknown> {
  const zero = (value: unknown): unknown =>
    typeof value === 'number'
      ? 0
      : value && typeof value === 'object' && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, zero(inner)]))
        : value;
  const counters: Record<string, unknown> = {};
  for (const key of ['tokens', 'cost']) if (key in info) counters[key] = zero(info[key]);
  return counters;
}

function sessionIdOf(info: Record<string, unknown>): string {
  const id = info.id;
  if (typeof id !== 'string' || !SESSION_ID.test(id)) throw new ReplayInputError('the blob has no valid session id');
  return id;
}

/** The destination project of the blob's (rebased) directory, as opencode sees it. */
async function destinationOf(server: OpencodeServer, info: Record<string, unknown>): Promise<Destination> {
  const directory = info.directory;
  if (typeof directory !== 'string' || !path.isAbsolute(directory)) throw new ReplayInputError('the blob has no absolute info.directory');
  if (!existsSync(directory)) throw new ReplayInputError(`the destination directory ${directory} does not exist`);
  const { status, body } = await server.request('GET', '/project/current', { directory });
  const project = parseJson(body) as { id?: unknown; worktree?: unknown } | undefined;
  if (status !== 200 || typeof project?.id !== 'string' || project.id === '' || typeof project.worktree !== 'string') {
    throw new ReplayInputError(`opencode serve answered ${status} to GET /project/current for ${directory}`);
  }
  return { directory, projectID: project.id, path: path.relative(path.resolve(project.worktree), directory).replaceAll('\\', '/') };
}

async function assertAbsent(server: OpencodeServer, id: string): Promise<void> {
  const { status, body } = await server.request('GET', `/session/${id}`);
  if (status === 200) throw new ReplayInputError(`session ${id} already exists here; replay only brings new sessions (delete it first to replace it)`);
  if (status !== 404 || !SESSION_NOT_FOUND.test(body)) throw new ReplayInputError(`opencode serve answered ${status} to GET /session/${id}`);
}

/** A message of the blob, checked to belong to the session (the events would write it wherever it says). */
function checkMessage(value: unknown, sessionID: string, index: number): { info: Record<string, unknown>; parts: Record<string, unknown>[] } {
  const where = `messages[${index}]`;
  const message = value as { info?: unknown; parts?: unknown };
  const info = message.info as Record<string, unknown> | undefined;
  if (!isObject(info) || typeof info.id !== 'string' || !MESSAGE_ID.test(info.id)) throw new ReplayInputError(`${where} has no valid message id`);
  if (info.sessionID !== sessionID) throw new ReplayInputError(`${where} belongs to another session`);
  if (!Array.isArray(message.parts)) throw new ReplayInputError(`${where} has no parts array`);
  const parts = message.parts as unknown[];
  parts.forEach((part, at) => {
    const p = part as Record<string, unknown>;
    if (!isObject(p) || typeof p.id !== 'string' || !PART_ID.test(p.id)) throw new ReplayInputError(`${where}.parts[${at}] has no valid part id`);
    if (p.sessionID !== sessionID || p.messageID !== info.id) throw new ReplayInputError(`${where}.parts[${at}] belongs to another message`);
  });
  return { info, parts: parts as Record<string, unknown>[] };
}

/** Numbers the events from 0 and sends them in POSTs of about `batchBytes`. */
class EventSender {
  /** The seq of the next event. */
  private seq = 0;
  /** How many events opencode has accepted. */
  private sent = 0;
  private batch: string[] = [];
  private batchSize = 0;
  private readonly limit: number;

  constructor(
    private readonly server: OpencodeServer,
    private readonly id: string,
    private readonly directory: string,
    private readonly options: ReplayOptions,
  ) {
    this.limit = options.batchBytes ?? DEFAULT_BATCH_BYTES;
  }

  async add(type: string, data: unknown): Promise<void> {
    const event = JSON.stringify({ id: eventId(), aggregateID: this.id, seq: this.seq++, type, data });
    if (this.batch.length > 0 && this.batchSize + event.length > this.limit) await this.send(this.batch.length);
    this.batch.push(event);
    this.batchSize += event.length;
  }

  async flush(): Promise<void> {
    if (this.batch.length > 0) await this.send(this.batch.length);
  }

  private async send(count: number): Promise<void> {
    const body = `{"directory":${JSON.stringify(this.directory)},"events":[${this.batch.join(',')}]}`;
    this.batch = [];
    this.batchSize = 0;
    const { status, body: answer } = await this.server.request('POST', '/sync/replay', { body, directory: this.directory });
    if (status !== 200 || (parseJson(answer) as { sessionID?: unknown } | undefined)?.sessionID !== this.id) {
      const range = count === 1 ? `event ${this.sent}` : `events ${this.sent}–${this.sent + count - 1}`;
      throw new SessmigError('replay-failed', `opencode refused ${range} of ${this.id} (${status}): ${redact(answer).slice(0, 300)}`);
    }
    this.sent += count;
    await this.options.onBatch?.(this.sent);
  }
}

/**
 * Reads the session back as its export and compares it with the blob: the info with the
 * destination's fields (DESTINATION_FIELDS), then each message with its parts, deep-equal after
 * JSON.parse (key order does not count). One message of each side is in memory at a time. Fields
 * of messages and parts that opencode dropped are returned (fidelity.ts restores them); any other
 * difference fails the replay.
 */
async function verify(server: OpencodeServer, id: string, blobFile: string, expectedInfo: Record<string, unknown>, tempDir: string): Promise<Difference[]> {
  const file = path.join(tempDir, `sessmig-replay-${randomBytes(6).toString('hex')}.json`);
  await server.exportToFile(id, file);
  const stored = readBlob(file);
  const blob = readBlob(blobFile);
  const dropped: Difference[] = [];
  try {
    for (let index = -1; ; index++) {
      const [have, want] = await Promise.all([stored.next(), blob.next()]);
      if (have.done || want.done) {
        if (have.done && want.done) return dropped;
        throw new SessmigError('replay-failed', `${id} was replayed with ${have.done ? 'fewer' : 'more'} messages than the blob has`);
      }
      if (index === -1) {
        const difference = firstDifference(have.value.value, expectedInfo, 'info');
        if (difference) throw new SessmigError('replay-failed', `${id} does not read back as the blob: ${difference} differs`);
        continue;
      }
      const { differences, more } = compareOneMessage(have.value.value, want.value.value, index);
      const other = differences.find((difference) => !restorable(difference));
      if (other || more > 0) throw new SessmigError('replay-failed', `${id} does not read back as the blob: ${(other ?? differences[0]!).at} differs`);
      dropped.push(...differences);
    }
  } finally {
    await stored.return(undefined).catch(() => undefined);
    await blob.return(undefined).catch(() => undefined);
    await rm(file, { force: true });
  }
}

/** Deletes what a failed replay left: through the server, else through `opencode session delete`. Returns the problem, if any is left. */
async function removeReplayed(server: OpencodeServer, id: string, cwd: string, options: ReplayOptions): Promise<string | undefined> {
  let problem: string;
  try {
    await server.deleteSession(id);
    return undefined;
  } catch (error) {
    problem = (error as Error).message;
  }
  if (!options.opencode) return `${problem}; no opencode to delete it with`;
  try {
    await options.opencode.uninterruptible().deleteSession(id, cwd);
    return undefined;
  } catch (error) {
    // a session whose creation never committed is not there to delete
    if (SESSION_NOT_FOUND.test((error as Error).message)) return undefined;
    return `${problem}; opencode session delete: ${(error as Error).message}`;
  }
}

function failure(message: string, id: string | undefined, details: { cleaned: boolean; leftover?: string; cause?: unknown }): SessmigError {
  const left = details.leftover ? `; the partial session could not be deleted (${details.leftover})` : '';
  return new SessmigError('replay-failed', `replay${id ? ` of ${id}` : ''} failed: ${message}${left}`, {
    hint: details.leftover && id ? `delete it by hand (opencode session delete ${id}), then re-run the pull` : 'sessmig brings the session with opencode import instead',
    ...(details.cause === undefined ? {} : { cause: details.cause }),
    data: { ...(id ? { id } : {}), cleaned: details.cleaned },
  });
}

function describe(error: unknown): string {
  if (error instanceof ReplayInputError) return error.message;
  if (error instanceof SessmigError) return error.message.replace(/^replay of \S+ failed: /, '');
  return (error as Error).message ?? String(error);
}

/** A blob or a destination that replay does not take (before or while sending). */

// ---------------------------------------------------------------------------------------------
// Event ids, in opencode's shape: evt_ + 12 hex digits of (ms * 4096 + counter) + 14 base62.

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
let lastMs = 0;
let counter = 0;

function eventId(): string {
  const now = Date.now();
  counter = now === lastMs ? counter + 1 : 0;
  lastMs = now;
  const stamp = (BigInt(now) * 0x1000n + BigInt(counter)) & 0xffffffffffffn;
  let random = '';
  for (let i = 0; i < 14; i++) random += BASE62[randomInt(62)];
  return `evt_${stamp.toString(16).padStart(12, '0')}${random}`;
}

// ---------------------------------------------------------------------------------------------


function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The path of the first place where two JSON values differ (key order does not count), or undefined. */
export function firstDifference(have: unknown, want: unknown, at: string): string | undefined {
  if (have === want) return undefined;
  if (Array.isArray(have) || Array.isArray(want)) {
    if (!Array.isArray(have) || !Array.isArray(want)) return at;
    if (have.length !== want.length) return `${at}.length`;
    for (let i = 0; i < have.length; i++) {
      const difference = firstDifference(have[i], want[i], `${at}[${i}]`);
      if (difference) return difference;
    }
    return undefined;
  }
  if (isObject(have) && isObject(want)) {
    const keys = new Set([...Object.keys(have), ...Object.keys(want)]);
    for (const key of [...keys].sort()) {
      if (!(key in have) || !(key in want)) return `${at}.${key}`;
      const difference = firstDifference(have[key], want[key], `${at}.${key}`);
      if (difference) return difference;
    }
    return undefined;
  }
  return at;
}
