/**
 * A host whose opencode has no database yet: two opencode processes started together both migrate
 * it and one fails ("no such table: session", or a CREATE TABLE that "already exists"; 1 run in 6
 * with `opencode serve` beside `opencode db` on 1.18.33 — a CI failure of `pull` into a fresh host).
 * The race itself cannot be provoked on demand, so these tests wrap the REAL opencode in a script
 * that records when each process starts and ends (the order is what is asserted), or that fails
 * one `opencode db` the way the race does (what cannot be made to happen here, said so).
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { databaseFile } from '../../src/opencode/opencode.js';
import { OpencodeCli } from '../../src/opencode/opencodeCli.js';
import { createHost, createRepo, type Host } from '../support/host.js';

let host: Host | undefined;
afterEach(async () => {
  await host?.cleanup();
  host = undefined;
});

/** A wrapper of the real opencode: logs "start <cmd> <ms>" / "end <cmd> <ms>"; fails the first `db` when FAIL_FIRST_DB is set. */
async function recordingOpencode(dir: string, real: string): Promise<{ bin: string; log: string }> {
  const bin = path.join(dir, 'opencode-recording');
  const log = path.join(dir, 'opencode.log');
  await fs.writeFile(
    bin,
    `#!/bin/bash
echo "start $1 $(date +%s%N)" >> ${JSON.stringify(log)}
if [ "$1" = "db" ] && [ -n "$FAIL_FIRST_DB" ] && [ ! -e ${JSON.stringify(`${log}.failed`)} ]; then
  touch ${JSON.stringify(`${log}.failed`)}
  printf 'Error: Failed query: CREATE TABLE \\x60workspace\\x60 (\\n  CONSTRAINT fk FOREIGN KEY (project_id)\\n);\\nSQLiteError: table \\x60workspace\\x60 already exists\\n      CONSTRAINT \\x60fk_workspace_project_id_project_id_fk\\x60 FOREIGN KEY\\n        );\\n' >&2
  exit 1
fi
if [ "$1" = "serve" ]; then exec "${real}" "$@"; fi
"${real}" "$@"; rc=$?
echo "end $1 $(date +%s%N)" >> ${JSON.stringify(log)}
exit $rc
`,
    { mode: 0o755 },
  );
  return { bin, log };
}

async function events(log: string): Promise<{ kind: string; cmd: string; at: number }[]> {
  const text = await fs.readFile(log, 'utf8');
  return text
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .map(([kind, cmd, at]) => ({ kind: kind!, cmd: cmd!, at: Number(at) / 1e6 }));
}

it('on a host without a database, one opencode db makes it before opencode serve starts beside the listing', async () => {
  host = await createHost('first-start');
  const repo = path.join(host.workDir, 'repo');
  await createRepo(repo);
  const { bin, log } = await recordingOpencode(host.root, host.opencodeBin);
  expect(existsSync(databaseFile(host.env))).toBe(false);
  const cli = new OpencodeCli({ bin, env: host.env, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  const [server, rows] = await Promise.all([cli.startServer(repo), cli.listSessions()]);
  try {
    expect(rows).toEqual([]);
    const seen = await events(log);
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
  await fs.rm(log);
  const again = new OpencodeCli({ bin, env: host.env, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  await again.listSessions();
  expect((await events(log)).filter((event) => event.cmd === 'db' && event.kind === 'start')).toHaveLength(1);
});

it('an opencode db that failed because another opencode was migrating at that moment is sent again', async () => {
  host = await createHost('migration-race');
  const repo = path.join(host.workDir, 'repo');
  await createRepo(repo);
  await host.opencode(['db', 'SELECT 1', '--format', 'json']);
  const { bin, log } = await recordingOpencode(host.root, host.opencodeBin);
  const cli = new OpencodeCli({ bin, env: { ...host.env, FAIL_FIRST_DB: '1' }, timeoutMs: 60_000, tempDir: host.root, cwd: repo });
  expect(await cli.listSessions()).toEqual([]);
  expect((await events(log)).filter((event) => event.cmd === 'db' && event.kind === 'start')).toHaveLength(2);
});

it('databaseFile follows XDG_DATA_HOME, else HOME/.local/share', () => {
  expect(databaseFile({ XDG_DATA_HOME: '/x/data', HOME: '/h' })).toBe('/x/data/opencode/opencode.db');
  expect(databaseFile({ HOME: '/h' })).toBe('/h/.local/share/opencode/opencode.db');
  expect(databaseFile({ XDG_DATA_HOME: 'relative', HOME: '/h' })).toBe('/h/.local/share/opencode/opencode.db');
});
