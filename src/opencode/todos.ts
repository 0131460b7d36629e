import { z } from 'zod';
import { SessmigError } from '../util/errors.js';
import { assertSessionId } from '../format/ids.js';
import { parseSessionRows, type Opencode, type SessionRow } from './opencode.js';

import { Todo } from '../format/todo.js';
export { Todo };

const COLUMNS = ['session_id', 'content', 'status', 'priority', 'position', 'time_created', 'time_updated'];
const Row = z.object({
  session_id: z.string(),
  content: z.string(),
  status: z.string(),
  priority: z.string(),
  position: z.number(),
  time_created: z.number(),
  time_updated: z.number(),
});

/**
 * What the core asks of opencode about sessions' todo lists (part of OpencodeAdapter). The real
 * adapter (opencodeCli.ts) answers with the `opencode db` statements below; the fake of the unit
 * tests (test/support/fakeOpencode.ts) from memory.
 */
export interface TodoStore {
  /** Every session of the local database and their todo lists (sessions without todos are absent). */
  listSessionsWithTodos(sizes?: RowSizeScope): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]>; rowSizes?: ListedRowSizes }>;
  /** Todos of these sessions, by session id (sessions without todos are absent). */
  readTodos(ids: string[]): Promise<Map<string, Todo[]>>;
  /** What a pull checks at its end: rows with message counts, todo lists, the todo table's columns. */
  readSessionState(ids: string[]): Promise<SessionState>;
  /** Replaces the todo lists of these sessions (`emptyNow`: none of them has one now). */
  writeTodos(lists: Map<string, Todo[]>, options?: { emptyNow?: boolean }): Promise<void>;
}

// The core's entry points: each asks the adapter it is given (so the core's call sites name the
// operation, and a fake adapter answers them without SQL).
export const listSessionsWithTodos = (opencode: TodoStore, sizes?: RowSizeScope) => opencode.listSessionsWithTodos(sizes);
export const readTodos = (opencode: TodoStore, ids: string[]) => opencode.readTodos(ids);
export const readSessionState = (opencode: TodoStore, ids: string[]) => opencode.readSessionState(ids);
export const writeTodos = (opencode: TodoStore, lists: Map<string, Todo[]>, options: { emptyNow?: boolean } = {}) => opencode.writeTodos(lists, options);

function idList(ids: string[]): string {
  return ids.map((id) => `'${assertSessionId(id)}'`).join(',');
}

/** An SQL string literal: quotes doubled; NUL refused (SQLite would end the string there). */
export function sqlString(value: string): string {
  if (value.includes('\u0000')) throw new Error('a todo contains a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

function sqlInt(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
  return String(value);
}

/** Todos of these sessions, by session id (sessions without todos are absent). */
export async function selectTodos(opencode: Opencode, ids: string[]): Promise<Map<string, Todo[]>> {
  const out = new Map<string, Todo[]>();
  if (ids.length === 0) return out;
  const rows = z
    .array(Row)
    .parse(await opencode.query(`SELECT ${COLUMNS.join(', ')} FROM todo WHERE session_id IN (${idList(ids)}) ORDER BY session_id, position`));
  for (const row of rows) {
    const list = out.get(row.session_id) ?? [];
    list.push(toTodo(row));
    out.set(row.session_id, list);
  }
  return out;
}

/** One session's todo list as a JSON text, for a query whose session table is aliased `s`. */
const TODOS_OF_S = `(SELECT json_group_array(json_object(${COLUMNS.map((column) => `'${column}', t.${column}`).join(', ')})) FROM (SELECT * FROM todo WHERE session_id = s.id ORDER BY position) t)`;

/** The todo list TODOS_OF_S gave, checked. */
function parseTodoList(text: string | null): Todo[] {
  return z.array(Row).parse(JSON.parse(text ?? '[]')).map(toTodo);
}

/**
 * Which sessions' row sizes the listing also reads (for the served export's check, servedExport.ts),
 * so that a push needs no second `opencode db` before its first export: the sessions whose
 * directory is `root` or below it (by string: a session the prefix misses is simply not sized
 * here, and gets its own query later), and their direct children, except those `unchanged` lists
 * with the `time_updated` they still have (a push does not export those).
 */
export interface RowSizeScope {
  root: string;
  unchanged: { id: string; timeUpdated: number }[];
}

/** Row sizes read with the listing: every message and part row of `sessions`, by row id (bytes of its JSON). */
export interface ListedRowSizes {
  sessions: Set<string>;
  rows: Map<string, number>;
  /** The sum of those sizes per session (bytes), for each of `sessions`. */
  sessionBytes?: Map<string, number>;
}

/** Above this many unchanged sessions the scope's SQL would outgrow one argument: no sizes then. */
const MAX_UNCHANGED_IN_SQL = 1500;

/**
 * Every session of the local database and, in the same `opencode db` (one process less per push:
 * about two seconds of CPU here), their todo lists — and with `sizes`, the row sizes of the
 * sessions in that scope (one more process less on the way to the first export).
 */
export async function selectSessionsWithTodos(
  opencode: Opencode,
  sizes?: RowSizeScope,
): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]>; rowSizes?: ListedRowSizes }> {
  const listing = `SELECT s.id AS id, s.parent_id AS parent_id, s.directory AS directory, s.title AS title, s.time_updated AS time_updated, s.project_id AS project_id, ${TODOS_OF_S} AS todos FROM session s`;
  const scope = sizes && sizes.unchanged.length <= MAX_UNCHANGED_IN_SQL && !sizes.root.includes('\u0000') ? sizes : undefined;
  let raw: unknown[];
  if (scope) {
    try {
      raw = await opencode.query(withRowSizes(listing, scope));
    } catch (error) {
      // The sizes are an optimization: a database they cannot be read from is listed plainly
      // (the served export then asks for them itself, or exports through the CLI).
      if (error instanceof SessmigError && error.code === 'interrupted') throw error;
      return selectSessionsWithTodos(opencode);
    }
  } else raw = await opencode.query(listing);
  const sessionItems = scope ? (raw as { kind?: unknown }[]).filter((item) => item.kind === 'session') : raw;
  const rows = parseSessionRows(sessionItems);
  const todos = new Map<string, Todo[]>();
  for (const item of sessionItems as { id?: unknown; todos?: unknown }[]) {
    if (typeof item.id !== 'string' || typeof item.todos !== 'string') continue;
    const list = parseTodoList(item.todos);
    if (list.length > 0) todos.set(item.id, list);
  }
  if (!scope) return { rows, todos };
  const rowSizes: ListedRowSizes = { sessions: new Set(), rows: new Map(), sessionBytes: new Map() };
  for (const item of raw as { kind?: unknown; id?: unknown; parent_id?: unknown; bytes?: unknown; sized?: unknown }[]) {
    if (item.kind === 'session' && item.sized === 1 && typeof item.id === 'string') rowSizes.sessions.add(item.id);
    else if (item.kind === 'row' && typeof item.id === 'string' && typeof item.bytes === 'number') {
      rowSizes.rows.set(item.id, item.bytes);
      // a row's session comes in the parent_id column (see withRowSizes)
      if (typeof item.parent_id === 'string') rowSizes.sessionBytes!.set(item.parent_id, (rowSizes.sessionBytes!.get(item.parent_id) ?? 0) + item.bytes);
    }
  }
  return { rows, todos, rowSizes };
}

/**
 * The listing, and in the same statement the message and part rows of the scope's sessions
 * (`kind` tells the two apart; `sized` marks the sessions whose rows are all there; a row's
 * `parent_id` column holds its session).
 */
function withRowSizes(listing: string, scope: RowSizeScope): string {
  const root = sqlString(scope.root.replace(/\/+$/, '') || '/');
  const below = (column: string) => `(${column} = ${root} OR substr(${column}, 1, length(${root}) + 1) = ${root} || '/')`;
  const unchanged = scope.unchanged.length
    ? `VALUES ${scope.unchanged.map((item) => `(${sqlString(assertSessionId(item.id))}, ${sqlInt(item.timeUpdated)})`).join(', ')}`
    : 'SELECT NULL, NULL WHERE 0';
  const inScope = (alias: string) =>
    `(${below(`${alias}.directory`)} OR EXISTS (SELECT 1 FROM session p WHERE p.id = ${alias}.parent_id AND ${below('p.directory')})) ` +
    `AND NOT EXISTS (SELECT 1 FROM unchanged u WHERE u.id = ${alias}.id AND u.t = ${alias}.time_updated)`;
  return (
    `WITH unchanged(id, t) AS (${unchanged}), sized AS (SELECT s.id AS id FROM session s WHERE ${inScope('s')}) ` +
    `SELECT 'session' AS kind, l.*, (l.id IN (SELECT id FROM sized)) AS sized, NULL AS bytes FROM (${listing}) l ` +
    `UNION ALL SELECT 'row', m.id, m.session_id, NULL, NULL, NULL, NULL, NULL, 0, length(CAST(m.data AS BLOB)) FROM message m WHERE m.session_id IN (SELECT id FROM sized) ` +
    `UNION ALL SELECT 'row', t.id, t.session_id, NULL, NULL, NULL, NULL, NULL, 0, length(CAST(t.data AS BLOB)) FROM part t WHERE t.session_id IN (SELECT id FROM sized)`
  );
}

function toTodo(row: z.infer<typeof Row>): Todo {
  return { content: row.content, status: row.status, priority: row.priority, position: row.position, timeCreated: row.time_created, timeUpdated: row.time_updated };
}

/** Has a todo table with exactly the columns sessmig writes (`names`: the table's columns, any order)? */
export function todoColumnsKnown(names: string[]): boolean {
  return JSON.stringify([...names].sort()) === JSON.stringify([...COLUMNS].sort());
}

/** What `opencode db` says of some sessions after a pull: the rows verify reads, and their todo lists. */
export interface SessionState {
  rows: Map<string, { id: string; directory: string; messages: number; time_updated: number }>;
  todos: Map<string, Todo[]>;
  /** The columns of the local todo table. */
  todoColumns: string[];
}

const StateRow = z.object({
  id: z.string(),
  directory: z.string(),
  time_updated: z.number(),
  messages: z.number(),
  todos: z.string().nullable(),
  todo_columns: z.string().nullable(),
});

/**
 * One `opencode db` for everything a pull checks at its end (each process costs about two seconds
 * of CPU here): the session rows with their message counts, their todo lists, and the columns of
 * the todo table (SQLite's pragma_table_info). Sessions that opencode does not have are absent.
 */
export async function selectSessionState(opencode: Opencode, ids: string[]): Promise<SessionState> {
  const state: SessionState = { rows: new Map(), todos: new Map(), todoColumns: [] };
  if (ids.length === 0) return state;
  const rows = z.array(StateRow).parse(
    await opencode.query(
      `SELECT s.id AS id, s.directory AS directory, s.time_updated AS time_updated, ` +
        `(SELECT count(*) FROM message m WHERE m.session_id = s.id) AS messages, ` +
        `${TODOS_OF_S} AS todos, ` +
        `(SELECT json_group_array(name) FROM pragma_table_info('todo')) AS todo_columns ` +
        `FROM session s WHERE s.id IN (${idList(ids)})`,
    ),
  );
  for (const row of rows) {
    state.rows.set(row.id, { id: row.id, directory: row.directory, messages: row.messages, time_updated: row.time_updated });
    state.todoColumns = z.array(z.string()).parse(JSON.parse(row.todo_columns ?? '[]'));
    const list = parseTodoList(row.todos);
    if (list.length > 0) state.todos.set(row.id, list);
  }
  return state;
}

export function sameTodos(a: Todo[] | undefined, b: Todo[] | undefined): boolean {
  const key = (list: Todo[] | undefined) => JSON.stringify((list ?? []).map((t) => [t.position, t.content, t.status, t.priority]));
  return key(a) === key(b);
}

/**
 * Replaces the todo lists of these sessions (two statements: opencode db runs one per call).
 * `emptyNow`: the caller has just read that none of them has a todo, so the DELETE is skipped.
 */
export async function replaceTodos(opencode: Opencode, lists: Map<string, Todo[]>, options: { emptyNow?: boolean } = {}): Promise<void> {
  const ids = [...lists.keys()];
  if (ids.length === 0) return;
  if (!options.emptyNow) await opencode.query(`DELETE FROM todo WHERE session_id IN (${idList(ids)})`);
  const values: string[] = [];
  for (const [id, todos] of lists) {
    for (const todo of todos) {
      values.push(
        `(${sqlString(assertSessionId(id))}, ${sqlString(todo.content)}, ${sqlString(todo.status)}, ${sqlString(todo.priority)}, ${sqlInt(todo.position)}, ${sqlInt(todo.timeCreated)}, ${sqlInt(todo.timeUpdated)})`,
      );
    }
  }
  // One argument stays well under Linux's 128 KiB limit per argv string.
  let batch: string[] = [];
  let size = 0;
  const flush = async () => {
    if (batch.length > 0) await opencode.query(`INSERT INTO todo (${COLUMNS.join(', ')}) VALUES ${batch.join(', ')}`);
    batch = [];
    size = 0;
  };
  for (const value of values) {
    if (size + value.length > 100_000) await flush();
    batch.push(value);
    size += value.length + 2;
  }
  await flush();
}
