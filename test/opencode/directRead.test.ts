/**
 * Reads of opencode's database through SQLite's own CLI (src/opencode/directRead.ts): the same
 * answers as `opencode db`, on a host with real sessions made by the real opencode (a child, todos),
 * and `opencode db` again whenever sqlite3 could answer otherwise (a schema it did not learn, no
 * sqlite3, OPENCODE_DB). Processes are counted with a recording wrapper around the real opencode.
 * Needs `sqlite3` on PATH (.ci/run installs it); the decision logic is tested without processes below.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  directDatabaseOf,
  fingerprintOf,
  fingerprintSql,
  parseDirectDatabase,
  parseDirectRead,
  parseMigrationTables,
  READ_ONLY_SQL,
} from '../../src/opencode/directRead.js';
import { OpencodeCli } from '../../src/opencode/opencodeCli.js';
import { VersionCache } from '../../src/opencode/versionCache.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { recordingOpencode } from '../support/recordingOpencode.js';

const SQLITE3 = ['/usr/bin/sqlite3', '/usr/local/bin/sqlite3', '/opt/homebrew/bin/sqlite3'].find((file) => existsSync(file));

describe('direct reads against opencode db on a real host', () => {
  let llm: FakeLlm;
  let host: Host;
  let repo: string;
  let ids: string[];
  let partIds: string[];
  let recorder: Awaited<ReturnType<typeof recordingOpencode>>;

  beforeAll(async () => {
    llm = await startFakeLlm();
    host = await createHost('direct-read', { llm });
    repo = path.join(host.workDir, 'repo');
    await createRepo(repo);
    const parent = (await host.run(repo, 'plan and delegate [[todo]] [[task look around MARK-CHILD]]')).sessionID;
    const other = (await host.run(repo, 'another session with "quotes", é and a\ttab')).sessionID;
    const sessions = await host.sessions();
    ids = [parent, other, ...sessions.filter((row) => row.parent_id === parent).map((row) => row.id)];
    expect(ids.length).toBe(3);
    partIds = (await host.db<{ id: string }>(`SELECT id FROM part WHERE session_id IN ('${ids.join("','")}')`)).map((row) => row.id);
    recorder = await recordingOpencode(host.root, host.opencodeBin);
  }, 180_000);
  afterAll(async () => {
    await host?.cleanup();
    await llm?.close();
  });

  /** A command's adapter; it knows its version first, as every command does (facts are kept beside it). */
  const cli = async (options: { sqlite3?: string; env?: Record<string, string> } = {}) => {
    const adapter = new OpencodeCli({
      bin: recorder.bin,
      env: { ...host.env, ...options.env },
      timeoutMs: 60_000,
      tempDir: host.root,
      cwd: repo,
      versionCache: new VersionCache(path.join(host.cacheDir, 'sessmig', 'opencode-versions.json')),
      ...(options.sqlite3 ? { sqlite3: options.sqlite3 } : {}),
    });
    await adapter.version();
    return adapter;
  };

  async function everyRead(adapter: OpencodeCli) {
    return {
      list: (await adapter.listSessions()).sort((a, b) => a.id.localeCompare(b.id)),
      withTodos: await adapter.listSessionsWithTodos({ root: repo, unchanged: [] }),
      todos: await adapter.readTodos(ids),
      state: await adapter.readSessionState(ids),
      extras: await adapter.readSessionExtras(ids),
      busy: await adapter.busySessions(repo),
      counts: await adapter.messageCounts(ids),
      parts: await adapter.partFields(partIds),
    };
  }
  const dbReads = async () => (await recorder.events()).filter((event) => event.kind === 'start' && event.cmd === 'db' && event.arg !== 'path');

  it.skipIf(!SQLITE3)('answers every read as opencode db does, and starts no opencode db once it has learnt the database', async () => {
    await (await cli()).version(); // remembered from here on
    await recorder.clear();
    const viaOpencode = await everyRead(await cli());
    const reads = (await dbReads()).length;
    expect(reads).toBeGreaterThanOrEqual(5);
    expect(viaOpencode.todos.get(ids[0]!)?.length).toBe(3);
    expect(viaOpencode.busy).toEqual([]); // every turn finished
    expect(viaOpencode.counts.get(ids[0]!)).toBeGreaterThanOrEqual(2);
    expect(viaOpencode.parts.size).toBe(partIds.length);

    await recorder.clear();
    const first = await everyRead(await cli({ sqlite3: SQLITE3! })); // learns beside its first opencode db
    expect(first).toEqual(viaOpencode);
    expect(await dbReads()).toHaveLength(1);
    expect((await recorder.events()).filter((event) => event.kind === 'start' && event.arg === 'path')).toHaveLength(1);

    await recorder.clear();
    const next = await everyRead(await cli({ sqlite3: SQLITE3! })); // another command: remembered
    expect(next).toEqual(viaOpencode);
    expect(await recorder.events()).toEqual([]);
  });

  it.skipIf(!SQLITE3)('a database whose schema changed since (a migration sqlite3 did not learn) is read through opencode db, then learnt again', async () => {
    await everyRead(await cli({ sqlite3: SQLITE3! })); // learnt
    await execa(SQLITE3!, [host.dbPath, 'CREATE TABLE sessmig_test_pending_migration (a)']);
    try {
      await recorder.clear();
      const rows = await (await cli({ sqlite3: SQLITE3! })).listSessions();
      expect(rows.map((row) => row.id).sort()).toEqual([...ids].sort());
      expect(await dbReads()).toHaveLength(1);
      await recorder.clear();
      await (await cli({ sqlite3: SQLITE3! })).listSessions();
      expect(await dbReads()).toHaveLength(0);
    } finally {
      await execa(SQLITE3!, [host.dbPath, 'DROP TABLE sessmig_test_pending_migration']);
    }
  });

  it('without sqlite3, or with OPENCODE_DB set, every read goes through opencode db', async () => {
    await recorder.clear();
    const missing = await (await cli({ sqlite3: path.join(host.root, 'no-such-sqlite3') })).listSessions();
    expect(missing.map((row) => row.id).sort()).toEqual([...ids].sort());
    expect(await dbReads()).toHaveLength(1);

    await recorder.clear();
    const relocated = await (await cli({ sqlite3: SQLITE3 ?? 'sqlite3', env: { OPENCODE_DB: host.dbPath } })).listSessions();
    expect(relocated.map((row) => row.id).sort()).toEqual([...ids].sort());
    expect(await dbReads()).toHaveLength(1);
  });
});

describe('direct-read decisions', () => {
  const env = { XDG_DATA_HOME: '/d', HOME: '/h' };
  const known = { name: 'opencode.db', tables: ['data_migration', 'migration'], fingerprint: fingerprintOf('[{"schema":"x","migration":3}]') };

  it.each([
    ['rows after the fingerprint', '[{"schema":"x","migration":3}]\n[{"id":1},\n{"id":2}]\n', [{ id: 1 }, { id: 2 }]],
    ['no rows (sqlite3 prints nothing)', '[{"schema":"x","migration":3}]\n', []],
    ['a pending migration', '[{"schema":"x","migration":4}]\n[{"id":1}]\n', undefined],
    ['another schema', '[{"schema":"y","migration":3}]\n[{"id":1}]\n', undefined],
    ['no fingerprint line (the -cmd failed)', '[{"id":1}]\n', undefined],
    ['rows that are not JSON', '[{"schema":"x","migration":3}]\n[{"id":\n', undefined],
    ['empty output', '', undefined],
  ])('parseDirectRead: %s', (_name, text, want) => {
    expect(parseDirectRead(text, known.fingerprint)).toEqual(want);
  });

  it.each([
    ['the data folder of this environment', '/d/opencode/opencode.db\n', 'fp', { name: 'opencode.db', tables: ['migration'], fingerprint: 'fp' }],
    ['a channel build', 'plugin says hi\n/d/opencode/opencode-dev.db\n', 'fp', { name: 'opencode-dev.db', tables: ['migration'], fingerprint: 'fp' }],
    ['another folder (OPENCODE_DB)', '/elsewhere/opencode.db\n', 'fp', undefined],
    ['a relative path', 'opencode.db\n', 'fp', undefined],
    ['no fingerprint', '/d/opencode/opencode.db\n', undefined, undefined],
  ])('directDatabaseOf: %s', (_name, printed, fingerprint, want) => {
    expect(directDatabaseOf(printed, ['migration'], fingerprint, env)).toEqual(want);
  });

  it.each([
    ['a remembered fact', JSON.stringify(known), known],
    ['nothing', undefined, undefined],
    ['not JSON', '{', undefined],
    ['a file name with a slash', JSON.stringify({ ...known, name: '../x.db' }), undefined],
    ['a table name with a quote', JSON.stringify({ ...known, tables: ['a"b'] }), undefined],
    ['no fingerprint', JSON.stringify({ name: 'opencode.db', tables: [] }), undefined],
  ])('parseDirectDatabase: %s', (_name, value, want) => {
    expect(parseDirectDatabase(value)).toEqual(want);
  });

  it('reads only statements that only read, and counts only named migration tables', () => {
    expect(['SELECT 1', '  with x AS (SELECT 1) SELECT * FROM x', '\nSELECT id FROM session'].every((sql) => READ_ONLY_SQL.test(sql))).toBe(true);
    expect(['UPDATE session SET title = 1', 'DELETE FROM todo', 'INSERT INTO todo VALUES (1)', 'PRAGMA x'].some((sql) => READ_ONLY_SQL.test(sql))).toBe(false);
    expect(fingerprintSql(['migration', 'bad"name'])).toContain('(SELECT count(*) FROM "migration") AS "migration"');
    expect(fingerprintSql(['migration', 'bad"name'])).not.toContain('bad');
    expect(parseMigrationTables('[{"name":"__drizzle_migrations"}]\n')).toEqual(['__drizzle_migrations']);
    expect(parseMigrationTables('')).toEqual([]);
    expect(parseMigrationTables('[{"name":"x y"}]')).toBeUndefined();
  });
});
