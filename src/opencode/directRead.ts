import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

/**
 * Read-only statements through SQLite's own CLI (`sqlite3`) instead of an `opencode db` process.
 *
 * Why: every `opencode db` starts opencode's whole binary — 0.7 s wall and 0.85 s of CPU for
 * `SELECT 1` (measured here on 1.18.33) — and a pull sent four to six of them. `sqlite3` answers
 * the same statement on the same file in milliseconds. Writes still go through `opencode db`.
 *
 * Why it is safe: the read is the same SQL on the same file opencode uses, opened read-only
 * (`-readonly`; a WAL database is read as SQLite always reads it, beside a running opencode). Two
 * things could make it differ from what `opencode db` would answer, and both are checked before
 * a row is believed:
 *  - *Which file.* opencode picks it per build channel and `OPENCODE_DB` (opencode's
 *    storage/db.ts: `opencode.db` for latest/beta/prod, else `opencode-<channel>.db`). sessmig asks
 *    the binary once (`opencode db path`) and remembers the file name beside its version
 *    (versionCache.ts); with `OPENCODE_DB` set it never reads directly.
 *  - *Which schema.* `opencode db` migrates the database to its binary's schema before it runs
 *    a statement. Once it has, sessmig remembers the database's *fingerprint*: every table, index
 *    and trigger opencode's schema holds (`sqlite_master`) and the row count of each migration
 *    table (`__drizzle_migrations` up to 1.14, `migration` and `data_migration` in 1.18: a data-only
 *    migration shows there). Every direct read asks for the fingerprint in the same `sqlite3`
 *    process: when it differs (a pending migration, another opencode's schema), the answer is
 *    dropped and `opencode db` runs the statement.
 * Any failure of `sqlite3` (missing, too old for `-json`, the file locked past its timeout) also
 * means `opencode db`. `SESSMIG_SQLITE3=off` turns direct reads off; a path names the binary.
 */
export interface DirectDatabase {
  /** The database file's name in opencode's data folder (`opencode.db` on release builds). */
  name: string;
  /** The migration tables the fingerprint counts (names of `sqlite_master` tables with "migration" in them). */
  tables: string[];
  /** sha256 (hex) of the fingerprint row's JSON as sqlite3 prints it, once this binary has migrated the database. */
  fingerprint: string;
}

/** The versionCache fact a DirectDatabase is remembered under (JSON). */
export const DIRECT_DATABASE_FACT = 'directDatabase';

/** Statements that only read: the only ones sent to `sqlite3` (which opens the file read-only besides). */
export const READ_ONLY_SQL = /^\s*(SELECT|WITH)\b/i;

/** The migration tables of a database (learnt once per binary; then counted by every fingerprint). */
export const MIGRATION_TABLES_SQL = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%migration%' ORDER BY name";

const TABLE_NAME = /^[A-Za-z0-9_]+$/;

/** The one-row statement whose JSON is a database's fingerprint (schema, then each migration table's row count). */
export function fingerprintSql(tables: string[]): string {
  const counts = tables.filter((table) => TABLE_NAME.test(table)).map((table) => `, (SELECT count(*) FROM "${table}") AS "${table}"`);
  return `SELECT (SELECT group_concat(type || ' ' || name || ' ' || ifnull(sql, ''), ';') FROM (SELECT * FROM sqlite_master ORDER BY type, name)) AS schema${counts.join('')}`;
}

export function fingerprintOf(printedRow: string): string {
  return createHash('sha256').update(printedRow.trim()).digest('hex');
}

/** opencode's data folder: `$XDG_DATA_HOME/opencode`, else `~/.local/share/opencode` (opencode's global.ts via xdg-basedir; 1.x). */
export function opencodeDataDir(env: NodeJS.ProcessEnv): string {
  const data = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(env.HOME ?? os.homedir(), '.local', 'share');
  return path.join(data, 'opencode');
}

/**
 * The DirectDatabase that `opencode db path` printed (`printed`) implies for this environment with
 * the migration `tables` and `fingerprint` sqlite3 then read, or undefined when the file is not in
 * opencode's data folder as sessmig computes it (direct reads would risk another file: not used).
 */
export function directDatabaseOf(printed: string, tables: string[], fingerprint: string | undefined, env: NodeJS.ProcessEnv): DirectDatabase | undefined {
  const file = printed.trim().split('\n').pop()?.trim() ?? '';
  if (!fingerprint || !path.isAbsolute(file) || path.dirname(file) !== opencodeDataDir(env)) return undefined;
  return { name: path.basename(file), tables, fingerprint };
}

export function parseDirectDatabase(value: string | undefined): DirectDatabase | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<DirectDatabase>;
    const { name, tables, fingerprint } = parsed;
    if (typeof name !== 'string' || !/^[A-Za-z0-9._-]+\.db$/.test(name) || typeof fingerprint !== 'string') return undefined;
    if (!Array.isArray(tables) || !tables.every((table) => typeof table === 'string' && TABLE_NAME.test(table))) return undefined;
    return { name, tables, fingerprint };
  } catch {
    return undefined;
  }
}

/**
 * `sqlite3` arguments for one read-only statement on `file`, its rows as JSON; with `first`, that
 * statement's rows are printed before them (a direct read asks for the fingerprint row this way).
 */
export function sqliteReadArgs(file: string, sql: string, first?: string): string[] {
  return ['-readonly', '-json', '-cmd', '.timeout 10000', ...(first ? ['-cmd', first] : []), file, sql];
}

/**
 * What `sqlite3` printed for sqliteReadArgs with the fingerprint statement first: the rows (`[]` for none: sqlite3 prints nothing for an
 * empty result), or undefined when the database's fingerprint is not `fingerprint` or the output
 * is not the two JSON texts expected (then `opencode db` answers instead).
 */
export function parseDirectRead(text: string, fingerprint: string): unknown[] | undefined {
  const newline = text.indexOf('\n');
  const head = newline < 0 ? text : text.slice(0, newline);
  if (fingerprintOf(head) !== fingerprint) return undefined;
  try {
    const rest = newline < 0 ? '' : text.slice(newline + 1).trim();
    if (rest === '') return [];
    const rows = JSON.parse(rest) as unknown;
    return Array.isArray(rows) ? rows : undefined;
  } catch {
    return undefined;
  }
}

/** The table names in sqlite3's JSON output of MIGRATION_TABLES_SQL (undefined if it is not that). */
export function parseMigrationTables(text: string): string[] | undefined {
  try {
    const rows = JSON.parse(text.trim() || '[]') as unknown;
    if (!Array.isArray(rows)) return undefined;
    const names = rows.map((row) => (row as { name?: unknown }).name);
    return names.every((name): name is string => typeof name === 'string' && TABLE_NAME.test(name)) ? names : undefined;
  } catch {
    return undefined;
  }
}
