import semver from 'semver';
import { createReadStream } from 'node:fs';
import { access, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { SessmigError } from '../util/errors.js';
import { assertSessionId, SESSION_ID } from '../format/ids.js';
import { redact } from '../util/redact.js';
import { locateSessionInOutput, type SessionInOutput } from './exportOutput.js';
import { runToFiles, type FileRunResult } from './runToFiles.js';
import { resolveBinary, type VersionCache } from './versionCache.js';
import { OpencodeServer } from './server.js';
import {
  DIRECT_DATABASE_FACT,
  directDatabaseOf,
  fingerprintOf,
  fingerprintSql,
  MIGRATION_TABLES_SQL,
  opencodeDataDir,
  parseDirectDatabase,
  parseDirectRead,
  parseMigrationTables,
  READ_ONLY_SQL,
  sqliteReadArgs,
  type DirectDatabase,
} from './directRead.js';

/**
 * The one place sessmig runs opencode. Every argument that comes from data is a validated session
 * id or a path sessmig made; nothing from a blob reaches a command line.
 */
export interface OpencodeOptions {
  bin: string;
  env: NodeJS.ProcessEnv;
  /** Kill an opencode process that runs longer than this (a hung export or import). */
  timeoutMs: number;
  /** Aborting it (SIGINT) kills the running opencode processes. */
  signal?: AbortSignal;
  /** Where opencode's output files go (see runToFiles.ts for why files). */
  tempDir: string;
  /** Remembers `--version` per binary file across commands (versionCache.ts). */
  versionCache?: VersionCache;
  /**
   * The folder opencode runs in where a call names none (export, db, --version): the user's
   * folder, as when sessmig runs as its own process (default: this process's). opencode loads the
   * project plugins and config of the folder it starts in.
   */
  cwd?: string;
  /**
   * SQLite's CLI for read-only statements (directRead.ts): a name looked up on PATH or a path;
   * undefined sends every statement through `opencode db`.
   */
  sqlite3?: string;
}

/** One row of opencode's session table, as sessmig reads it. */
export const SessionRow = z.object({
  id: z.string(),
  parent_id: z.string().nullable(),
  directory: z.string(),
  title: z
    .string()
    .nullable()
    .transform((value) => value ?? ''),
  time_updated: z.number(),
  /** opencode's project of the session (the repository's root commit; checkouts of one repository share it). */
  project_id: z.string().nullable().optional(),
});
export type SessionRow = z.infer<typeof SessionRow>;

/** Session rows as `opencode db` printed them, checked (extra columns are dropped). */
export function parseSessionRows(rows: unknown[]): SessionRow[] {
  const parsed = z.array(SessionRow).safeParse(rows);
  if (!parsed.success) {
    throw new SessmigError('opencode-failed', 'opencode db returned session rows of an unexpected shape', {
      hint: 'this opencode version may not be supported; see the README for the supported versions',
    });
  }
  return parsed.data.filter((row) => SESSION_ID.test(row.id));
}

async function* sessionBytes(file: string, start: number, end: number): AsyncGenerator<Buffer> {
  if (end > start) yield* createReadStream(file, { start, end: end - 1 }) as AsyncIterable<Buffer>;
  yield Buffer.from('\n');
}

const SESSION_QUERY = 'SELECT id, parent_id, directory, title, time_updated, project_id FROM session';
const IMPORTED = /^Imported session: (\S+)\s*$/m;

/** opencode's database file for this environment (`name`: its file name, `opencode.db` on release builds; directRead.ts). */
export function databaseFile(env: NodeJS.ProcessEnv, name = 'opencode.db'): string {
  return path.join(opencodeDataDir(env), name);
}

/** Failures of an `opencode db` that ran while another opencode process was migrating the same new database. */
const MIGRATION_RACE = /no such table|already exists/i;

export class Opencode {
  private cachedVersion: string | undefined;
  private migrated: Promise<void> | undefined;
  /** What direct reads need to know of this binary (directRead.ts), remembered or learnt. */
  private direct: Promise<DirectDatabase | undefined> | undefined;
  private learning: Promise<void> | undefined;
  private directBroken = false;
  private binary: Promise<string | undefined> | undefined;

  constructor(readonly options: OpencodeOptions) {}

  /** The same opencode, deaf to the abort signal: for rolling back after an interrupt. (A subclass's copy is of the subclass.) */
  uninterruptible(): this {
    const copy = new (this.constructor as new (options: OpencodeOptions) => this)({ ...this.options, signal: undefined });
    copy.cachedVersion = this.cachedVersion;
    copy.binary = this.binary;
    copy.direct = this.direct;
    copy.directBroken = this.directBroken;
    return copy;
  }

  /** The real path of the binary the version cache keys its entries by (undefined without a cache or a binary). */
  private cachedBinary(): Promise<string | undefined> {
    this.binary ??= this.options.versionCache ? resolveBinary(this.options.bin, this.options.env) : Promise.resolve(undefined);
    return this.binary;
  }

  /** A fact the version cache remembers of this binary (versionCache.ts `getFact`), if any. */
  async rememberedFact(name: string): Promise<string | undefined> {
    const binary = await this.cachedBinary();
    return binary ? this.options.versionCache!.getFact(binary, name) : undefined;
  }

  /** Remembers a fact of this binary beside its version (versionCache.ts `setFact`; never fails). */
  async rememberFact(name: string, value: string): Promise<void> {
    const binary = await this.cachedBinary();
    if (binary) await this.options.versionCache!.setFact(binary, name, value);
  }

  async version(): Promise<string> {
    if (this.cachedVersion) return this.cachedVersion;
    const cache = this.options.versionCache;
    const binary = await this.cachedBinary();
    const remembered = binary ? await cache!.get(binary) : undefined;
    if (remembered) {
      this.cachedVersion = remembered;
      return remembered;
    }
    const { stdout } = await this.run(['--version'], { what: 'opencode --version' });
    const version = stdout.trim().split(/\s+/).pop() ?? '';
    if (semver.valid(version) === null) {
      throw new SessmigError('opencode-unrecognised', `\`${this.options.bin} --version\` printed ${JSON.stringify(stdout.slice(0, 100))}, not a version`, {
        hint: 'point --opencode (or SESSMIG_OPENCODE) at the opencode binary',
      });
    }
    this.cachedVersion = version;
    if (binary) await cache!.set(binary, version);
    return version;
  }

  /** Every session in the local database (one process, no project boot). */
  async listSessions(): Promise<SessionRow[]> {
    return parseSessionRows(await this.query(SESSION_QUERY));
  }

  /**
   * Resolves once this host's opencode database exists. Two opencode processes that start together
   * on a host without one both migrate it, and one of them fails ("no such table: session", or a
   * CREATE TABLE that "already exists"; measured on 1.18.33 with `opencode serve` beside
   * `opencode db`, 1 run in 6). So when the file is missing, one `opencode db` makes it first, alone;
   * every later process of this command (db, serve) runs after it.
   */
  databaseReady(): Promise<void> {
    this.migrated ??= this.directDatabase().then(async (known) => access(databaseFile(this.options.env, known?.name))).then(
      () => undefined,
      async () => {
        await this.runBusyTolerant(['db', 'SELECT 1', '--format', 'json'], false);
      },
    );
    const ready = this.migrated;
    ready.catch(() => {
      if (this.migrated === ready) this.migrated = undefined; // asked again next time
    });
    return ready;
  }

  /** One `opencode serve` in `cwd` (server.ts), once the database exists (databaseReady). */
  async startServer(cwd: string): Promise<OpencodeServer> {
    await this.databaseReady();
    return OpencodeServer.start({ ...this.options, cwd });
  }

  /**
   * Runs one SQL statement: a read through `sqlite3` where that is known to answer as `opencode db`
   * would (directRead.ts), else through `opencode db` (opencode's own binary and schema).
   */
  async query(sql: string): Promise<unknown[]> {
    await this.databaseReady();
    const direct = this.directReads();
    if (direct && READ_ONLY_SQL.test(sql)) {
      const known = await this.directDatabase();
      const rows = known ? await this.readDirect(known, sql) : undefined;
      if (rows) return rows;
    }
    const viaOpencode = this.runBusyTolerant(['db', sql, '--format', 'json']);
    if (direct && !(await this.directDatabase())) this.learning ??= this.learnDirect(viaOpencode);
    const [{ stdout }] = await Promise.all([viaOpencode, this.learning]);
    const text = stdout.trim();
    if (text === '') return [];
    try {
      const value = JSON.parse(text) as unknown;
      if (!Array.isArray(value)) throw new Error('not an array');
      return value;
    } catch (error) {
      throw new SessmigError('opencode-failed', `opencode db printed something that is not a JSON array (${(error as Error).message})`, {
        hint: 'run `opencode db "SELECT 1" --format json` by hand to see what is wrong',
      });
    }
  }

  private directReads(): boolean {
    return this.options.sqlite3 !== undefined && !this.directBroken && !this.options.env.OPENCODE_DB;
  }

  /** The DirectDatabase remembered of this binary (versionCache), or learnt by this command. */
  private directDatabase(): Promise<DirectDatabase | undefined> {
    this.direct ??= this.rememberedFact(DIRECT_DATABASE_FACT).then(parseDirectDatabase, () => undefined);
    return this.direct;
  }

  /**
   * Learns the DirectDatabase beside the first `opencode db` of a binary: `opencode db path` while
   * it runs; the migration tables and the fingerprint once it (and so its migration) is done.
   * Never fails the command.
   */
  private async learnDirect(first: Promise<unknown>): Promise<void> {
    try {
      const [{ stdout: printed }] = await Promise.all([this.run(['db', 'path'], { what: 'opencode db path' }), first]);
      const file = databaseFile(this.options.env, path.basename(printed.trim().split('\n').pop()?.trim() ?? ''));
      const listed = await this.sqlite3(sqliteReadArgs(file, MIGRATION_TABLES_SQL));
      const tables = listed === undefined ? undefined : parseMigrationTables(listed);
      if (!tables) return;
      const row = await this.sqlite3(sqliteReadArgs(file, fingerprintSql(tables)));
      const learnt = directDatabaseOf(printed, tables, row === undefined ? undefined : fingerprintOf(row), this.options.env);
      if (!learnt) return;
      this.direct = Promise.resolve(learnt);
      await this.rememberFact(DIRECT_DATABASE_FACT, JSON.stringify(learnt));
    } catch {
      // direct reads only save time: this command and the next ask opencode
    }
  }

  /** One direct read; undefined means "ask opencode db" (and, on another schema, learn again). */
  private async readDirect(known: DirectDatabase, sql: string): Promise<unknown[] | undefined> {
    const text = await this.sqlite3(sqliteReadArgs(databaseFile(this.options.env, known.name), sql, fingerprintSql(known.tables)));
    const rows = text === undefined ? undefined : parseDirectRead(text, known.fingerprint);
    if (text !== undefined && rows === undefined) {
      this.direct = Promise.resolve(undefined); // another schema than learnt: the opencode db about to run migrates it
      this.learning = undefined;
    }
    return rows;
  }

  /** What sqlite3 printed, or undefined when it could not run or failed (then it is not asked again by this command if missing). */
  private async sqlite3(args: string[]): Promise<string | undefined> {
    let result: FileRunResult;
    try {
      result = await runToFiles(this.options.sqlite3!, args, { env: this.options.env, timeoutMs: this.options.timeoutMs, tempDir: this.options.tempDir, ...(this.options.signal ? { signal: this.options.signal } : {}) });
    } catch {
      this.directBroken = true; // not installed (ENOENT) or not runnable
      return undefined;
    }
    try {
      if (result.canceled || this.options.signal?.aborted) throw new SessmigError('interrupted', 'a read of opencode\'s database was interrupted', {});
      return result.exitCode === 0 ? await readFile(result.stdoutFile, 'utf8') : undefined;
    } finally {
      await rm(result.stdoutFile, { force: true });
    }
  }

  /**
   * `opencode db` waits at most opencode's busy timeout (about 5 s) for another writer of the same
   * database — an `opencode serve` starting, the user's own opencode — and then fails with
   * "database is locked" (measured on 1.18.33 under load). Every statement sessmig sends is one
   * statement, which SQLite applies whole or not at all, so a locked one is simply sent again. So is
   * one that failed because another opencode (the user's own, just upgraded) was migrating the
   * database at the same moment: opencode runs the statement only after its migration.
   */
  private async runBusyTolerant(args: string[], raceTolerant = true): Promise<{ stdout: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.run(args, { what: 'opencode db' });
      } catch (error) {
        const locked = error instanceof SessmigError && (error.code === 'opencode-busy' || (raceTolerant && attempt < 2 && error.code === 'opencode-failed' && error.data?.migrationRace === true));
        if (!locked || attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
        this.options.signal?.throwIfAborted();
      }
    }
  }

  /**
   * `opencode export <id>` into a temp file; returns a stream of the session's JSON in it (what a
   * plugin printed around it left out: exportOutput.ts) that removes the file when closed. Rejects
   * with code 'session-gone' when opencode no longer has the session, 'export-unclear' when the
   * session cannot be told from what else was printed.
   */
  async exportSession(id: string): Promise<Readable> {
    assertSessionId(id);
    const result = await this.exec(['export', id], `export of ${id}`);
    if (result.exitCode !== 0) {
      await rm(result.stdoutFile, { force: true });
      throw this.failure(result, `export of ${id}`, id);
    }
    let located: SessionInOutput;
    try {
      located = await locateSessionInOutput(result.stdoutFile, id);
    } catch (error) {
      await rm(result.stdoutFile, { force: true });
      throw error;
    }
    // Clean output is stored byte for byte; around a plugin's output, only the session's JSON
    // and the newline opencode ends it with.
    const stream = located.clean
      ? createReadStream(result.stdoutFile)
      : Readable.from(sessionBytes(result.stdoutFile, located.start, located.end), { objectMode: false });
    stream.on('close', () => void rm(result.stdoutFile, { force: true }));
    return stream;
  }

  /** `opencode import <file>` from `cwd`; succeeds only on its "Imported session: <id>" line. */
  async importFile(file: string, cwd: string, expectedId: string): Promise<void> {
    assertSessionId(expectedId);
    const { stdout, stderr } = await this.run(['import', file], { cwd, what: `import of ${expectedId}` });
    const match = IMPORTED.exec(stdout);
    if (!match || match[1] !== expectedId) {
      const said = `${stdout}\n${stderr}`.trim().split('\n').slice(-3).join(' | ');
      throw new SessmigError('import-rejected', `opencode import of ${expectedId} did not succeed: ${redact(said).slice(0, 500)}`, {
        hint: 'the blob may not suit this opencode version; nothing of it was kept',
      });
    }
  }

  async deleteSession(id: string, cwd: string): Promise<void> {
    assertSessionId(id);
    await this.run(['session', 'delete', id], { cwd, what: `delete of ${id}` });
  }

  private async exec(args: string[], what: string, cwd?: string): Promise<FileRunResult> {
    const dir = cwd ?? this.options.cwd;
    try {
      return await runToFiles(this.options.bin, args, {
        ...(dir ? { cwd: dir } : {}),
        env: this.options.env,
        timeoutMs: this.options.timeoutMs,
        tempDir: this.options.tempDir,
        ...(this.options.signal ? { signal: this.options.signal } : {}),
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES') {
        throw new SessmigError('opencode-missing', `opencode not found or not executable: ${this.options.bin}`, {
          hint: 'install opencode (npm i -g opencode-ai), or point --opencode PATH / SESSMIG_OPENCODE at it',
        });
      }
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new SessmigError('opencode-failed', `${what}: cannot start opencode in ${dir}: ${(error as Error).message}`);
      }
      throw new SessmigError('opencode-failed', `${what}: ${(error as Error).message}`, {
        hint: `check that TMPDIR (${this.options.tempDir}) is writable and has free space`,
      });
    }
  }

  private async run(args: string[], options: { cwd?: string; what: string }): Promise<{ stdout: string; stderr: string }> {
    const result = await this.exec(args, options.what, options.cwd);
    try {
      if (result.exitCode !== 0) throw this.failure(result, options.what);
      return { stdout: await readFile(result.stdoutFile, 'utf8'), stderr: result.stderr };
    } finally {
      await rm(result.stdoutFile, { force: true });
    }
  }

  private failure(result: FileRunResult, what: string, sessionId?: string): SessmigError {
    if (result.canceled || this.options.signal?.aborted) {
      return new SessmigError('interrupted', `${what} was interrupted`, {});
    }
    if (result.timedOut) {
      return new SessmigError('opencode-timeout', `${what} did not finish within ${Math.round(this.options.timeoutMs / 1000)} s; sessmig killed it`, {
        hint: 'raise --opencode-timeout if the sessions are very large, or check that opencode is not stuck',
      });
    }
    if (sessionId && /Session not found/i.test(result.stderr)) {
      return new SessmigError('session-gone', `session ${sessionId} no longer exists in opencode`, { data: { id: sessionId } });
    }
    // SQLite's busy error can sit above a long query dump (drizzle prints "Failed query … params:"
    // last): look at the whole stderr, and name it.
    if (/database is locked|SQLITE_BUSY/i.test(result.stderr)) {
      return new SessmigError('opencode-busy', `${what} failed: opencode's database is locked by another opencode process (exit ${result.exitCode ?? result.signal ?? '?'})`, {
        hint: 'another opencode (a TUI, a server) was writing the same database for longer than opencode waits; re-run the command',
      });
    }
    // A migration that another opencode ran at the same moment shows above a long SQL dump.
    const migrationRace = MIGRATION_RACE.test(result.stderr);
    const last = result.stderr.trim().split('\n').filter((line) => line.trim() !== '' && !/^\s*\|?\s*params:\s*$/.test(line)).slice(-2).join(' | ');
    return new SessmigError('opencode-failed', `${what} failed (exit ${result.exitCode ?? result.signal ?? '?'})${last ? `: ${redact(last).slice(0, 500)}` : ''}`, {
      hint: 'run the same opencode command by hand to see its full output',
      ...(migrationRace ? { data: { migrationRace: true } } : {}),
    });
  }
}
