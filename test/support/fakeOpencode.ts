/**
 * An in-memory opencode for unit tests of the core's orchestration (push, pull, their plans,
 * rollbacks): it implements OpencodeAdapter (src/opencode/opencodeAdapter.ts) over a few maps, so a
 * push and a pull run in-process through a real LocalRemote in milliseconds, with no opencode process.
 *
 * What it models, as opencode 1.18.33 does it (shared OPENCODE.md, "export", "import", "What 1.18.33
 * import does"):
 *  - sessions with messages and parts (made from a real 1.18.33 export, test/fixtures/blobs/child.json,
 *    without its snapshot hashes), subagent children (`info.parentID`); `deleteSession` removes
 *    the session with its children, their todos and their shares;
 *  - `exportSession`: the session as `opencode export` prints it (`{info, messages:[{info, parts}]}`,
 *    pretty-printed, then a newline); 'session-gone' for an id it does not have;
 *  - `importFile`: the blob's info with directory = the cwd, projectID = this host's project, path
 *    = ""; a new session keeps the blob's time.updated; a re-import updates only directory, project
 *    and path (time.updated = now) and appends the messages and parts it does not have by id;
 *  - todos and shares (session_share rows) per session, as the todo/share tables hold them;
 *  - `version()` as configured (default 1.18.33);
 *  - failures on demand (`failNext`): an import that fails half-way leaves the session row with
 *    its first message (opencode's import is not atomic), an export or a delete that fails.
 *
 * What it does not model: SQL (`query` throws; the core's own reads — busy sessions, rewritten part
 * fields, message counts — are answered from the maps), `opencode serve` (`serve` rejects, so the
 * checks after a pull warn that models, agents and the session info went unchecked; the exporter
 * and the importer are always the per-session CLI paths, never the server or the replay), fields
 * that an import drops (it keeps every field: `alignRows` finds nothing), the validation of a
 * blob's shape (any JSON with info.id is taken), other opencode versions' export shapes, snapshot
 * repositories and tool-output files, the event log, the busy timeout of a locked database, the
 * abort signal.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ExportVia, OpenedExporter } from '../../src/opencode/exporter.js';
import type { RowsOutcome } from '../../src/opencode/fidelity.js';
import type { ReplayMode, SessionImporter } from '../../src/opencode/importer.js';
import type { SessionRow } from '../../src/opencode/opencode.js';
import type { PartFields } from '../../src/opencode/sessionQueries.js';
import type { OpencodeAdapter } from '../../src/opencode/opencodeAdapter.js';
import type { OpencodeServer } from '../../src/opencode/server.js';
import type { SessionExtras, ShareRow } from '../../src/opencode/shareRows.js';
import type { SessionState, Todo } from '../../src/opencode/todos.js';
import { SessmigError } from '../../src/util/errors.js';

type Json = Record<string, unknown>;
interface StoredMessage {
  info: Json;
  parts: Json[];
}
interface StoredSession {
  info: Json;
  messages: StoredMessage[];
}

/** The todo table's columns on 1.18.33 (what readSessionState reports). */
const TODO_COLUMNS = ['session_id', 'content', 'status', 'priority', 'position', 'time_created', 'time_updated'];
const SHARE_COLUMNS = ['session_id', 'id', 'secret', 'url', 'time_created', 'time_updated'];

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
let counter = 0;
/** An opencode-shaped id: prefix, 12 hex (time-based), 14 base62. Increasing within a run. */
export function fakeId(prefix: 'ses' | 'msg' | 'prt'): string {
  const hex = (Date.now() * 4096 + (counter++ % 4096)).toString(16).padStart(12, '0').slice(-12);
  const tail = [...randomBytes(14)].map((byte) => BASE62[byte % 62]).join('');
  return `${prefix}_${hex}${tail}`;
}

const TEMPLATE_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'blobs', 'child.json');
let template: Promise<StoredSession> | undefined;
/** A real 1.18.33 export (test/fixtures/blobs/child.json): a user message and an assistant answer. */
function loadTemplate(): Promise<StoredSession> {
  template ??= readFile(TEMPLATE_FILE, 'utf8').then((text) => JSON.parse(text) as StoredSession);
  return template;
}

const clone = <T>(value: T): T => structuredClone(value);

export type FakeOperation = 'export' | 'import' | 'delete';

export interface FakeOpencodeOptions {
  /** What `version()` answers (default 1.18.33). */
  version?: string;
  /** The project id import gives a session (opencode: the repository's root commit). */
  projectId?: string;
  /** opencode's environment: XDG_DATA_HOME is where sessionFiles.ts looks for snapshot repositories. */
  env?: NodeJS.ProcessEnv;
}

export class FakeOpencode implements OpencodeAdapter {
  readonly sessions = new Map<string, StoredSession>();
  readonly todos = new Map<string, Todo[]>();
  readonly shares = new Map<string, ShareRow>();
  /** Every export, import and delete, in order: `export ses_…`. */
  readonly calls: string[] = [];
  readonly options: { bin: string; env: NodeJS.ProcessEnv };
  private readonly failures: { operation: FakeOperation; id: string | undefined; error: Error }[] = [];
  private readonly projectId: string;
  private readonly configuredVersion: string;

  constructor(options: FakeOpencodeOptions = {}) {
    this.configuredVersion = options.version ?? '1.18.33';
    this.projectId = options.projectId ?? 'fakeproject0000000000000000000000000000';
    this.options = { bin: 'fake-opencode', env: options.env ?? {} };
  }

  // ---- test helpers -------------------------------------------------------------------------

  /**
   * Makes a session as `opencode run` would (from the template export): `messages` messages
   * (user/assistant pairs, at least 1), in `directory`, optionally the child of `parentID`.
   * Returns its id.
   */
  async addSession(spec: { directory: string; title?: string; parentID?: string; messages?: number; todos?: Todo[]; updated?: number }): Promise<string> {
    const base = await loadTemplate();
    const id = fakeId('ses');
    const info = clone(base.info);
    info.id = id;
    info.directory = spec.directory;
    info.projectID = this.projectId;
    info.title = spec.title ?? `session ${id.slice(-6)}`;
    if (spec.parentID) info.parentID = spec.parentID;
    else delete info.parentID;
    const updated = spec.updated ?? Date.now();
    info.time = { created: updated - 1000, updated };
    const session: StoredSession = { info, messages: [] };
    this.sessions.set(id, session);
    for (let index = 0; index < (spec.messages ?? 2); index++) this.appendMessage(id, base.messages[index % base.messages.length]!, updated);
    if (spec.todos) this.todos.set(id, clone(spec.todos));
    return id;
  }

  /** The user goes on working in a session: one more message, and time.updated moves on. */
  async work(id: string, at = Date.now()): Promise<void> {
    const base = await loadTemplate();
    const session = this.get(id);
    this.appendMessage(id, base.messages[session.messages.length % base.messages.length]!, at);
    (session.info.time as Json).updated = Math.max(at, ((session.info.time as Json).updated as number) + 1);
  }

  /** The next `operation` (of `id`, or of any session) throws `error` (default: like opencode failing). */
  failNext(operation: FakeOperation, id?: string, error?: Error): void {
    this.failures.push({ operation, id, error: error ?? new SessmigError(operation === 'import' ? 'import-rejected' : 'opencode-failed', `fake opencode: ${operation} of ${id ?? 'a session'} failed`) });
  }

  messageCount(id: string): number | undefined {
    return this.sessions.get(id)?.messages.length;
  }

  /**
   * Everything this opencode holds, for comparing before and after (JSON text). `timeUpdated: false`
   * leaves out each session's time.updated (a re-import of a session opencode still has sets it to now).
   */
  snapshot(options: { timeUpdated?: boolean } = {}): string {
    const sorted = <T>(map: Map<string, T>) => [...map].sort(([a], [b]) => (a < b ? -1 : 1));
    const sessions = sorted(this.sessions).map(([id, session]) => {
      if (options.timeUpdated !== false) return [id, session];
      const { updated: _updated, ...time } = session.info.time as Json;
      return [id, { ...session, info: { ...session.info, time } }];
    });
    return JSON.stringify({ sessions, todos: sorted(this.todos), shares: sorted(this.shares) });
  }

  private appendMessage(id: string, model: StoredMessage, at: number): void {
    const session = this.get(id);
    const message = clone(model);
    const messageId = fakeId('msg');
    message.info.id = messageId;
    message.info.sessionID = id;
    message.info.time = { ...(message.info.time as Json), created: at };
    if ('completed' in (message.info.time as Json)) (message.info.time as Json).completed = at;
    delete message.info.parentID;
    const previous = session.messages.at(-1);
    if (message.info.role === 'assistant' && previous) message.info.parentID = previous.info.id;
    for (const part of message.parts) {
      delete part.snapshot; // no snapshot repositories here (see above)
      part.id = fakeId('prt');
      part.sessionID = id;
      part.messageID = messageId;
    }
    session.messages.push(message);
  }

  private get(id: string): StoredSession {
    const session = this.sessions.get(id);
    if (!session) throw new Error(`fake opencode: no session ${id}`);
    return session;
  }

  private failure(operation: FakeOperation, id: string): Error | undefined {
    const index = this.failures.findIndex((item) => item.operation === operation && (item.id === undefined || item.id === id));
    if (index < 0) return undefined;
    return this.failures.splice(index, 1)[0]!.error;
  }

  private row(session: StoredSession): SessionRow {
    const info = session.info;
    return {
      id: info.id as string,
      parent_id: (info.parentID as string | undefined) ?? null,
      directory: info.directory as string,
      title: (info.title as string | undefined) ?? '',
      time_updated: (info.time as Json).updated as number,
      project_id: (info.projectID as string | undefined) ?? null,
    };
  }

  // ---- OpencodeAdapter ----------------------------------------------------------------------

  uninterruptible(): OpencodeAdapter {
    return this;
  }

  async version(): Promise<string> {
    return this.configuredVersion;
  }

  async listSessions(): Promise<SessionRow[]> {
    return [...this.sessions.values()].map((session) => this.row(session));
  }

  async query(sql: string): Promise<unknown[]> {
    throw new Error(`the fake opencode runs no SQL (${sql.slice(0, 60)}…)`);
  }

  async busySessions(root: string): Promise<string[]> {
    return [...this.sessions.values()]
      .filter((session) => session.info.directory === root || String(session.info.directory).startsWith(`${root}/`))
      .filter((session) => session.messages.some((message) => message.info.role === 'assistant' && (message.info.time as Json | undefined)?.completed === undefined))
      .map((session) => String(session.info.id));
  }

  async partFields(partIds: string[]): Promise<Map<string, PartFields>> {
    const wanted = new Set(partIds);
    const fields = new Map<string, PartFields>();
    for (const part of [...this.sessions.values()].flatMap((session) => session.messages.flatMap((message) => message.parts))) {
      if (!wanted.has(String(part.id))) continue;
      const metadata = ((part.state as Json | undefined)?.metadata ?? {}) as Json;
      fields.set(String(part.id), { files: part.files === undefined ? null : JSON.stringify(part.files), filepath: metadata.filepath ?? null, outputPath: metadata.outputPath ?? null });
    }
    return fields;
  }

  async messageCounts(ids: string[]): Promise<Map<string, number>> {
    return new Map(ids.filter((id) => this.sessions.has(id)).map((id) => [id, this.sessions.get(id)!.messages.length]));
  }

  async exportSession(id: string): Promise<Readable> {
    this.calls.push(`export ${id}`);
    const failed = this.failure('export', id);
    if (failed) throw failed;
    const session = this.sessions.get(id);
    if (!session) throw new SessmigError('session-gone', `session ${id} no longer exists in opencode`, { data: { id } });
    return Readable.from([Buffer.from(`${JSON.stringify(session, null, 2)}\n`)]);
  }

  async importFile(file: string, cwd: string, expectedId: string): Promise<void> {
    this.calls.push(`import ${expectedId}`);
    const blob = JSON.parse(await readFile(file, 'utf8')) as StoredSession;
    if (blob.info?.id !== expectedId) throw new SessmigError('import-rejected', `fake opencode: the blob holds ${String(blob.info?.id)}, not ${expectedId}`);
    const failed = this.failure('import', expectedId);
    const existing = this.sessions.get(expectedId);
    if (existing) {
      Object.assign(existing.info, { directory: cwd, projectID: this.projectId, path: '' });
      (existing.info.time as Json).updated = Date.now();
      const have = new Set(existing.messages.map((message) => message.info.id));
      for (const message of blob.messages) if (!have.has(message.info.id)) existing.messages.push(clone(message));
    } else {
      const info = clone(blob.info);
      Object.assign(info, { directory: cwd, projectID: this.projectId, path: '' });
      // Not atomic (1.18.33): a failure half-way leaves the row and what came before the bad message.
      const messages = failed ? blob.messages.slice(0, 1) : blob.messages;
      this.sessions.set(expectedId, { info, messages: clone(messages) });
    }
    if (failed) throw failed;
  }

  async deleteSession(id: string, _cwd: string): Promise<void> {
    this.calls.push(`delete ${id}`);
    const failed = this.failure('delete', id);
    if (failed) throw failed;
    if (!this.sessions.has(id)) throw new SessmigError('opencode-failed', `delete of ${id} failed (exit 1): Session not found: ${id}`);
    const doomed = new Set([id]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const [other, session] of this.sessions) {
        if (!doomed.has(other) && doomed.has(session.info.parentID as string)) {
          doomed.add(other);
          grew = true;
        }
      }
    }
    for (const gone of doomed) {
      this.sessions.delete(gone);
      this.todos.delete(gone);
      this.shares.delete(gone);
    }
  }

  async serve(_cwd: string): Promise<OpencodeServer> {
    throw new SessmigError('opencode-failed', 'the fake opencode has no server');
  }

  async listSessionsWithTodos(): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]> }> {
    return { rows: await this.listSessions(), todos: clone(this.todos) };
  }

  async readTodos(ids: string[]): Promise<Map<string, Todo[]>> {
    return new Map(ids.filter((id) => this.todos.has(id)).map((id) => [id, clone(this.todos.get(id)!)]));
  }

  async readSessionState(ids: string[]): Promise<SessionState> {
    const state: SessionState = { rows: new Map(), todos: await this.readTodos(ids), todoColumns: [...TODO_COLUMNS] };
    for (const id of ids) {
      const session = this.sessions.get(id);
      if (!session) continue;
      const row = this.row(session);
      state.rows.set(id, { id, directory: row.directory, messages: session.messages.length, time_updated: row.time_updated });
    }
    return state;
  }

  async writeTodos(lists: Map<string, Todo[]>): Promise<void> {
    for (const [id, todos] of lists) {
      if (todos.length > 0) this.todos.set(id, clone(todos));
      else this.todos.delete(id);
    }
  }

  async readSessionExtras(ids: string[]): Promise<SessionExtras> {
    const shares = new Map(ids.filter((id) => this.shares.has(id)).map((id) => [id, clone(this.shares.get(id)!)]));
    return { shares, uncarried: new Map(), shareColumns: [...SHARE_COLUMNS] };
  }

  async writeShares(shares: Map<string, ShareRow>): Promise<void> {
    // Only sessions that exist (the real statement filters on the session table).
    for (const [id, share] of shares) if (this.sessions.has(id)) this.shares.set(id, clone(share));
  }

  async openExporter(_cwd: string, _count: number, _via: ExportVia): Promise<OpenedExporter> {
    return { exporter: this, kind: 'cli', close: async () => undefined };
  }

  /** No server in the fake: an early start that never yields one (exports go the CLI way). */
  startExportServer(): EarlyExportServer {
    return { server: Promise.resolve(undefined), error: () => undefined, stop: async () => undefined };
  }

  async openImporter(_cwd: string, _count: number, _mode: ReplayMode): Promise<SessionImporter> {
    return {
      kind: 'import',
      importSession: async (file, dir, id) => {
        await this.importFile(file, dir, id);
        return 'import';
      },
      close: async () => undefined,
    };
  }

  async alignRows(sessions: { id: string; file: string }[]): Promise<Map<string, RowsOutcome>> {
    return new Map(sessions.map((session) => [session.id, { restored: [], remaining: { differences: [], more: 0 } }]));
  }
}
