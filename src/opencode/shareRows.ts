import { z } from 'zod';
import { assertSessionId } from '../format/ids.js';
import type { Opencode } from './opencode.js';
import { sqlString } from './todos.js';

/**
 * A session's share: opencode's `session_share` row (share id, secret, url), written by `/share`.
 * `opencode export` leaves it out (the info keeps only `share.url`), and deleting the session
 * deletes it (ON DELETE CASCADE) — so a session that sessmig deletes and imports again (pull
 * `replace`, `sessmig undo`, a rolled-back pull) would stay "shared" with no way to unshare it:
 * unsharing needs the secret. sessmig reads the row before it deletes and writes it back after
 * the import, through `opencode db`, when the destination's table has the columns it knows.
 *
 * It is a secret, so it stays on this host: it is kept in the pull's backup index (0600, under
 * $XDG_STATE_HOME/sessmig/backups) and never goes into a manifest. A session shared from another
 * host can be unshared from that host.
 *
 * Other per-session tables that a delete empties (measured on 1.18.33: session_input,
 * session_message, session_context_epoch — the newer session engine; empty for sessions made by
 * `opencode run`) are not carried: `otherSessionRows` counts them so that the caller can say so.
 */
export const ShareRow = z.looseObject({
  id: z.string().max(1024),
  secret: z.string().max(4096),
  url: z.string().max(4096),
  timeCreated: z.number().int().nonnegative(),
  timeUpdated: z.number().int().nonnegative(),
});
export type ShareRow = z.infer<typeof ShareRow>;

const COLUMNS = ['session_id', 'id', 'secret', 'url', 'time_created', 'time_updated'];
/** Tables that opencode empties with a session and that sessmig does not carry (see above). */
const OTHER_TABLES = ['session_input', 'session_message', 'session_context_epoch'];

const Row = z.object({ session_id: z.string(), id: z.string(), secret: z.string(), url: z.string(), time_created: z.number(), time_updated: z.number() });

/**
 * What the core asks of opencode about what a delete takes along (part of OpencodeAdapter): the
 * real adapter (opencodeCli.ts) runs the `opencode db` statements below; the fake of the unit tests
 * keeps shares in memory.
 */
export interface ShareStore {
  readSessionExtras(ids: string[]): Promise<SessionExtras>;
  writeShares(shares: Map<string, ShareRow>): Promise<void>;
}

// The core's entry points: each asks the adapter it is given.
export const readSessionExtras = (opencode: ShareStore, ids: string[]) => opencode.readSessionExtras(ids);
export const writeShares = (opencode: ShareStore, shares: Map<string, ShareRow>) => opencode.writeShares(shares);

function idList(ids: string[]): string {
  return ids.map((id) => sqlString(assertSessionId(id))).join(', ');
}

function sqlInt(value: number): string {
  if (!Number.isSafeInteger(value)) throw new Error(`not an integer: ${value}`);
  return String(value);
}

/** What a delete of these sessions would take with it, beyond what export carries. */
export interface SessionExtras {
  /** The share of each shared session. */
  shares: Map<string, ShareRow>;
  /** Rows of other per-session tables that sessmig does not carry, per session: `table: count`. */
  uncarried: Map<string, Record<string, number>>;
  /** The columns of this opencode's session_share table (empty: no such table). */
  shareColumns: string[];
}

/**
 * The shares of these sessions and a count of their uncarried rows, in one `opencode db`. A table
 * this opencode does not have counts as empty.
 */
export async function selectSessionExtras(opencode: Opencode, ids: string[]): Promise<SessionExtras> {
  const extras: SessionExtras = { shares: new Map(), uncarried: new Map(), shareColumns: [] };
  if (ids.length === 0) return extras;
  const tables = z
    .array(z.object({ name: z.string(), columns: z.string() }))
    .parse(
      await opencode.query(
        `SELECT m.name AS name, (SELECT json_group_array(p.name) FROM pragma_table_info(m.name) p) AS columns FROM sqlite_master m WHERE m.type = 'table' AND m.name IN (${['session_share', ...OTHER_TABLES].map((t) => `'${t}'`).join(', ')})`,
      ),
    );
  const present = new Map(tables.map((table) => [table.name, z.array(z.string()).parse(JSON.parse(table.columns))]));
  extras.shareColumns = present.get('session_share') ?? [];
  const selects: string[] = [];
  if (shareColumnsKnown(extras.shareColumns)) {
    selects.push(`SELECT 'session_share' AS tbl, session_id, json_object(${COLUMNS.map((c) => `'${c}', ${c}`).join(', ')}) AS row FROM session_share WHERE session_id IN (${idList(ids)})`);
  }
  for (const table of OTHER_TABLES) {
    if (present.get(table)?.includes('session_id')) selects.push(`SELECT '${table}' AS tbl, session_id, count(*) AS row FROM ${table} WHERE session_id IN (${idList(ids)}) GROUP BY session_id`);
  }
  if (selects.length === 0) return extras;
  const rows = z.array(z.object({ tbl: z.string(), session_id: z.string(), row: z.union([z.string(), z.number()]) })).parse(await opencode.query(selects.join(' UNION ALL ')));
  for (const row of rows) {
    if (row.tbl === 'session_share' && typeof row.row === 'string') {
      const share = Row.parse(JSON.parse(row.row));
      extras.shares.set(row.session_id, { id: share.id, secret: share.secret, url: share.url, timeCreated: share.time_created, timeUpdated: share.time_updated });
    } else if (typeof row.row === 'number' && row.row > 0) {
      extras.uncarried.set(row.session_id, { ...extras.uncarried.get(row.session_id), [row.tbl]: row.row });
    }
  }
  return extras;
}

/** Has a session_share table with exactly the columns sessmig reads and writes (any order)? */
export function shareColumnsKnown(names: string[]): boolean {
  return JSON.stringify([...names].sort()) === JSON.stringify([...COLUMNS].sort());
}

/**
 * Writes these shares back (replacing a row the session may have), in one `opencode db`, after
 * checking in the same statement's table that the columns are those sessmig knows: a table of
 * another shape makes the statement fail, and nothing is written.
 */
export async function replaceShares(opencode: Opencode, shares: Map<string, ShareRow>): Promise<void> {
  if (shares.size === 0) return;
  const values = [...shares].map(
    ([id, share]) =>
      `(${sqlString(assertSessionId(id))}, ${sqlString(share.id)}, ${sqlString(share.secret)}, ${sqlString(share.url)}, ${sqlInt(share.timeCreated)}, ${sqlInt(share.timeUpdated)})`,
  );
  // Only sessions that exist: a share row of a missing session would fail its foreign key.
  await opencode.query(
    `INSERT OR REPLACE INTO session_share (${COLUMNS.join(', ')}) SELECT * FROM (VALUES ${values.join(', ')}) v WHERE v.column1 IN (SELECT id FROM session)`,
  );
}

/** "2 session_input row(s), 1 session_message row(s)" */
export function describeUncarried(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([table, count]) => `${count} ${table} row(s)`)
    .join(', ');
}
