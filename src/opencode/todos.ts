import { z } from 'zod';
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
  listSessionsWithTodos(): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]> }>;
  /** Todos of these sessions, by session id (sessions without todos are absent). */
  readTodos(ids: string[]): Promise<Map<string, Todo[]>>;
  /** What a pull checks at its end: rows with message counts, todo lists, the todo table's columns. */
  readSessionState(ids: string[]): Promise<SessionState>;
  /** Replaces the todo lists of these sessions (`emptyNow`: none of them has one now). */
  writeTodos(lists: Map<string, Todo[]>, options?: { emptyNow?: boolean }): Promise<void>;
}

// The core's entry points: each asks the adapter it is given (so the core's call sites name the
// operation, and a fake adapter answers them without SQL).
export const listSessionsWithTodos = (opencode: TodoStore) => opencode.listSessionsWithTodos();
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
 * Every session of the local database and, in the same `opencode db` (one process less per push:
 * about two seconds of CPU here), their todo lists.
 */
export async function selectSessionsWithTodos(opencode: Opencode): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]> }> {
  const raw = await opencode.query(
    `SELECT s.id AS id, s.parent_id AS parent_id, s.directory AS directory, s.title AS title, s.time_updated AS time_updated, s.project_id AS project_id, ${TODOS_OF_S} AS todos FROM session s`,
  );
  const rows = parseSessionRows(raw);
  const todos = new Map<string, Todo[]>();
  for (const item of raw as { id?: unknown; todos?: unknown }[]) {
    if (typeof item.id !== 'string' || typeof item.todos !== 'string') continue;
    const list = parseTodoList(item.todos);
    if (list.length > 0) todos.set(item.id, list);
  }
  return { rows, todos };
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
