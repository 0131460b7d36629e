/**
 * A host whose opencode has no database yet: two opencode processes started together both migrate
 * it and one fails ("no such table: session", or a CREATE TABLE that "already exists"; 1 run in 6
 * with `opencode serve` beside `opencode db` on 1.18.33 — a CI failure of `pull` into a fresh host).
 * The race itself cannot be provoked on demand, so these tests wrap the REAL opencode in a script
 * that records when each process starts and ends (the order is what is asserted), or that fails
 * one `opencode db` the way the race does (what cannot be made to happen here, said so).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { databaseFile } from '../../src/opencode/opencode.js';
import { OpencodeCli } from '../../src/opencode/opencodeCli.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { recordingOpencode } from '../support/recordingOpencode.js';

let host: Host | undefined;
afterEach(async () => {
  await host?.cleanup();
  host = undefined;
});

it('on a host without a database, one opencode db makes it before opencode serve starts beside the listing', async () => {
  host = await createHost('first-start');
  const repo = path.join(host.workDir, 'repo');
  await createRepo(repo);
  const { bin, events, clear } = await recordingOpencode(host.root, host.opencodeBin);
  expect(existsSync(databaseFile(host.env))).toBe(false);
  const cli = new OpencodeCli({ bin, env: host.env, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  const [server, rows] = await Promise.all([cli.startServer(repo), cli.listSessions()]);
  try {
    expect(rows).toEqual([]);
    const seen = await events();
    const serveStart = seen.find((event) => event.kind === 'start' && event.cmd === 'serve');
    const firstDbEnd = seen.find((event) => event.kind === 'end' && event.cmd === 'db');
    expect(serveStart, JSON.stringify(seen)).toBeDefined();
    expect(firstDbEnd, JSON.stringify(seen)).toBeDefined();
    // Nothing started while the first process made the database.
    expect(seen.filter((event) => event.kind === 'start' && event.at < firstDbEnd!.at), JSON.stringify(seen)).toHaveLength(1);
    expect(firstDbEnd!.at).toBeLessThan(serveStart!.at);
    expect(existsSync(databaseFile(host.env))).toBe(true);
  } finally {
    await server.stop();
  }
  // The database exists now: a second command's processes start together.
  await clear();
  const again = new OpencodeCli({ bin, env: host.env, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  await again.listSessions();
  expect((await events()).filter((event) => event.cmd === 'db' && event.kind === 'start')).toHaveLength(1);
});

it('an opencode db that failed because another opencode was migrating at that moment is sent again', async () => {
  host = await createHost('migration-race');
  const repo = path.join(host.workDir, 'repo');
  await createRepo(repo);
  await host.opencode(['db', 'SELECT 1', '--format', 'json']);
  const { bin, events } = await recordingOpencode(host.root, host.opencodeBin);
  const cli = new OpencodeCli({ bin, env: { ...host.env, FAIL_FIRST_DB: '1' }, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  expect(await cli.listSessions()).toEqual([]);
  expect((await events()).filter((event) => event.cmd === 'db' && event.kind === 'start')).toHaveLength(2);
});

it('databaseFile follows XDG_DATA_HOME, else HOME/.local/share', () => {
  expect(databaseFile({ XDG_DATA_HOME: '/x/data', HOME: '/h' })).toBe('/x/data/opencode/opencode.db');
  expect(databaseFile({ HOME: '/h' })).toBe('/h/.local/share/opencode/opencode.db');
  expect(databaseFile({ XDG_DATA_HOME: 'relative', HOME: '/h' })).toBe('/h/.local/share/opencode/opencode.db');
});
