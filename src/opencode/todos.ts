import { z } from 'zod';
import { assertSessionId } from '../format/ids.js';
import type { Opencode } from './opencode.js';

/**
 * A session's todo list. `opencode export` leaves it out (it lives in the `todo` table), so sessmig
 * carries it in the manifest and writes it back through `opencode db` — opencode's own binary and
 * schema — after checking that the destination's table has the columns it knows.
 */
export const Todo = z.looseObject({
  content: z.string().max(65_536),
  status: z.string().max(64),
  priority: z.string().max(64),
  position: z.number().int().nonnegative().max(100_000),
  timeCreated: z.number().int().nonnegative(),
  timeUpdated: z.number().int().nonnegative(),
});
export type Todo = z.infer<typeof Todo>;

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
export async function readTodos(opencode: Opencode, ids: string[]): Promise<Map<string, Todo[]>> {
  const out = new Map<string, Todo[]>();
  if (ids.length === 0) return out;
  const rows = z
    .array(Row)
    .parse(await opencode.query(`SELECT ${COLUMNS.join(', ')} FROM todo WHERE session_id IN (${idList(ids)}) ORDER BY session_id, position`));
  for (const row of rows) {
    const list = out.get(row.session_id) ?? [];
    list.push({ content: row.content, status: row.status, priority: row.priority, position: row.position, timeCreated: row.time_created, timeUpdated: row.time_updated });
    out.set(row.session_id, list);
  }
  return out;
}

/** Does the destination's todo table have exactly the columns sessmig writes? */
export async function todoTableCompatible(opencode: Opencode): Promise<boolean> {
  const rows = (await opencode.query('PRAGMA table_info(todo)')) as { name?: string }[];
  const names = rows.map((row) => row.name).sort();
  return JSON.stringify(names) === JSON.stringify([...COLUMNS].sort());
}

export function sameTodos(a: Todo[] | undefined, b: Todo[] | undefined): boolean {
  const key = (list: Todo[] | undefined) => JSON.stringify((list ?? []).map((t) => [t.position, t.content, t.status, t.priority]));
  return key(a) === key(b);
}

/** Replaces the todo lists of these sessions (two statements: opencode db runs one per call). */
export async function writeTodos(opencode: Opencode, lists: Map<string, Todo[]>): Promise<void> {
  const ids = [...lists.keys()];
  if (ids.length === 0) return;
  await opencode.query(`DELETE FROM todo WHERE session_id IN (${idList(ids)})`);
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
