/**
 * Issue 11's equivalence suite: the replay path of `sessmig pull` (one `opencode serve`, POST
 * /sync/replay) leaves the destination exactly as the import path (one `opencode import` per
 * session) does, in opencode's own view, on every pinned build that has the strict replay.
 *
 * Per opencode build: host A (that build, fake LLM) makes sessions with tool calls, a child (task),
 * todos, a large answer ([[big N]]), and one that was itself imported (export, delete, `opencode
 * import`: it has no event log); `sessmig push --migrate` publishes them. Two fresh hosts pull the
 * same checkpoint into the same worktree path (each host has its own opencode database):
 * R with SESSMIG_REPLAY=always, I with SESSMIG_REPLAY=never. Then, per session, `opencode export`
 * on R equals `opencode export` on I, and the rows of `opencode db` (session, message, part, todo)
 * are equal on R, I and A (counters included), except the columns listed in ROW_TIMES (the time a
 * row was written there) and, on A, the session's directory. Last, a
 * replayed session is continued on R with `opencode run --session` and pushed back to A.
 *
 * sessmig runs in this process (src/cli/main.ts through vitest, no dist/ needed); opencode is the
 * real binary of each build (test/support/opencodeVersions.ts).
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { firstDifference } from '../../src/opencode/replay.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, sqlId, type Host } from '../support/host.js';
import { installedOpencode } from '../support/opencodeVersions.js';

/**
 * The destinations: the default build, and the first 1.17 build with the strict replay (1.17.20
 * does not run here: see opencodeVersions.ts). SESSMIG_TEST_REPLAY_BUILDS=1.18.33 picks some.
 */
const BUILDS = (process.env.SESSMIG_TEST_REPLAY_BUILDS ?? '1.18.33,1.17.19').split(',').map(installedOpencode);

/** Slow under load: a generous limit for every opencode process. */
const SLOW_MS = 180_000;

/**
 * Columns of opencode's tables that hold when this host wrote the row, not what the session holds:
 * both paths set them to the clock at write time (measured on 1.18.33: message.time_updated,
 * part.time_created and part.time_updated of one row were 33 s apart, the time between the two
 * pulls), so they differ between any two pulls whatever the path, two imports included. The test
 * checks that each lies inside its own host's pull; every other column must be equal. The
 * session's own times (session.time_*, message.time_created, and in the export info.time, message
 * time.created/completed, part times) are compared in full.
 */
const ROW_TIMES: Record<string, readonly string[]> = {
  session: [],
  message: ['time_updated'],
  part: ['time_created', 'time_updated'],
  todo: [],
};

interface Cli {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
  ms: number;
}

/** sessmig's CLI, in this process, as `host` in `cwd`. */
async function sessmig(host: Host, cwd: string, args: string[], env: Record<string, string> = {}): Promise<Cli> {
  let stdout = '';
  let stderr = '';
  const t0 = performance.now();
  const code = await main(['node', 'sessmig', ...args], {
    cwd,
    env: { ...host.env, SESSMIG_OPENCODE: host.opencodeBin, ...env },
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    stderrIsTTY: false,
  });
  const ms = performance.now() - t0;
  let json: any;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json, ms };
}

const explain = (run: Cli) => `exit ${run.code}\n--- stdout\n${run.stdout.slice(-3000)}\n--- stderr\n${run.stderr.slice(-3000)}`;

async function exportOf(host: Host, id: string): Promise<any> {
  return JSON.parse((await host.opencode(['export', id], { timeoutMs: SLOW_MS })).stdout);
}

/** Runs `fn` over `items`, two at a time (2 cores). */
async function twoAtATime<T, R>(items: T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const at = next++;
      out[at] = await fn(items[at]!);
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

const TABLES = ['session', 'message', 'part', 'todo'] as const;
type Table = (typeof TABLES)[number];
type Rows = Record<Table, Record<string, unknown>[]> & { events: Record<string, number> };

/** The columns of TABLES on this opencode build, from its own schema (one `opencode db`). */
async function columnsOf(host: Host): Promise<Record<Table, string[]>> {
  const found = await host.db<{ t: Table; c: string }>(
    `SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name IN (${TABLES.map((t) => `'${t}'`).join(', ')}) ORDER BY m.name, p.cid`,
  );
  const columns = Object.fromEntries(TABLES.map((table) => [table, found.filter((row) => row.t === table).map((row) => row.c)])) as Record<Table, string[]>;
  for (const table of TABLES) expect(columns[table].length, table).toBeGreaterThan(2);
  return columns;
}

/**
 * Every row of TABLES for these sessions, each column as opencode stores it, and the number of
 * events per session: one `opencode db` process per host (each costs ~1 s and ~335 MB).
 */
async function rowsOf(host: Host, columns: Record<Table, string[]>, ids: string[]): Promise<Rows> {
  const list = ids.map(sqlId).join(', ');
  const selects = TABLES.map((table) => {
    const object = columns[table].map((column) => `'${column}', "${column}"`).join(', ');
    return `SELECT '${table}' AS t, json_object(${object}) AS row FROM "${table}" WHERE ${table === 'session' ? 'id' : 'session_id'} IN (${list})`;
  });
  selects.push(`SELECT 'events' AS t, json_object('id', aggregate_id, 'n', count(*)) AS row FROM event WHERE aggregate_id IN (${list}) GROUP BY aggregate_id`);
  const found = await host.db<{ t: Table | 'events'; row: string }>(selects.join(' UNION ALL '));
  const out = { session: [], message: [], part: [], todo: [], events: {} } as Rows;
  for (const { t, row } of found) {
    const value = JSON.parse(row) as Record<string, unknown>;
    // a JSON column (message.data, part.data) is compared as the value it holds: the order of its
    // keys follows who wrote it (opencode run, replay, import), not what the session holds
    for (const [column, text] of Object.entries(value)) {
      if (typeof text === 'string' && /^[[{]/.test(text)) {
        try {
          value[column] = JSON.parse(text);
        } catch {
          // text, not JSON: compared as it is
        }
      }
    }
    if (t === 'events') out.events[String(value.id)] = Number(value.n);
    else out[t].push(value);
  }
  for (const table of TABLES) out[table].sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
  return out;
}

/** The columns whose values differ between two lists of the same rows, each with an example. */
function differingColumns(table: Table, have: Record<string, unknown>[], want: Record<string, unknown>[], names: [string, string]): Map<string, string> {
  expect(have.map(key), table).toEqual(want.map(key));
  const columns = new Map<string, string>();
  have.forEach((row, at) => {
    const other = want[at]!;
    for (const column of new Set([...Object.keys(row), ...Object.keys(other)])) {
      if (columns.has(column) || firstDifference(row[column], other[column], column) === undefined) continue;
      const show = (value: unknown) => JSON.stringify(value)?.slice(0, 80);
      columns.set(column, `${table}.${column} (${key(row)}: ${names[0]} ${show(row[column])}, ${names[1]} ${show(other[column])})`);
    }
  });
  return columns;
}

/**
 * A source part row as the pull rebases it (src/blob/sessionRefs.ts, docs/FORMAT-snapshots.md):
 * `state.metadata.filepath` and `files[]` under the source worktree name the destination's.
 */
function rebasedPart(row: Record<string, unknown>, from: string, to: string): Record<string, unknown> {
  const data = row.data as { state?: { metadata?: { filepath?: unknown } }; files?: unknown } | undefined;
  if (!data || typeof data !== 'object') return row;
  const move = (value: unknown) => (typeof value === 'string' && (value === from || value.startsWith(`${from}/`)) ? `${to}${value.slice(from.length)}` : value);
  const copy = structuredClone(data);
  if (copy.state?.metadata && 'filepath' in copy.state.metadata) copy.state.metadata.filepath = move(copy.state.metadata.filepath);
  if (Array.isArray(copy.files)) copy.files = copy.files.map(move);
  return { ...row, data: copy };
}

/** A row's identity, for messages: what the assertion names. */
function key(row: Record<string, unknown>): string {
  return row.id !== undefined ? String(row.id) : `${String(row.session_id)}#${String(row.position)}`;
}

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(async () => {
  await llm?.close();
});

for (const build of BUILDS) {
  describe.skipIf(!build.bin)(`replay ≡ import on opencode ${build.version}${build.bin ? '' : ` (skipped: ${build.skip})`}`, () => {
    let a: Host;
    let r: Host;
    let i: Host;
    let repoA: string;
    /** the one worktree path both destinations pull into (each host has its own database) */
    let dest: string;
    let remoteDir: string;
    let url: string;
    let ids: string[];
    const named: Record<'tools' | 'parent' | 'child' | 'big' | 'imported', string> = {} as any;
    const timings: string[] = [];
    let pulledR: Cli;
    let pulledI: Cli;
    /** when each pull ran (ms since the epoch) */
    const windowR: [number, number] = [0, 0];
    const windowI: [number, number] = [0, 0];

    const time = async <T>(label: string, fn: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      try {
        return await fn();
      } finally {
        timings.push(`${label} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    };

    beforeAll(async () => {
      const bin = build.bin!;
      [a, r, i] = await Promise.all([
        createHost(`eq-src-${build.version}`, { llm, opencodeBin: bin }),
        createHost(`eq-replay-${build.version}`, { llm, opencodeBin: bin }),
        createHost(`eq-import-${build.version}`, { opencodeBin: bin }),
      ]);
      repoA = path.join(a.workDir, 'app');
      await createRepo(repoA);
      const shared = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-eq-dest-'));
      dest = path.join(shared, 'app');
      await createRepo(dest);
      remoteDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-eq-remote-'));
      url = pathToFileURL(remoteDir).href;

      await time('sessions on A', async () => {
        const run = (prompt: string, session?: string) => a.run(repoA, prompt, { timeoutMs: SLOW_MS, ...(session ? { session } : {}) });
        named.tools = (await run('tools MARK-T1 [[write notes.txt hello\\nworld]]')).sessionID;
        await run('second turn MARK-T2', named.tools);
        named.parent = (await run('delegate MARK-P [[task look around MARK-CHILD]] [[todo]]')).sessionID;
        named.big = (await run('large MARK-B [[big 2048]]')).sessionID;
        // a session that was itself imported: no event log on A
        const imported = (await run('imported MARK-I [[write imp.txt y]]')).sessionID;
        const file = path.join(a.root, 'imported.json');
        await fs.writeFile(file, (await a.opencode(['export', imported], { timeoutMs: SLOW_MS })).stdout);
        await a.opencode(['session', 'delete', imported], { cwd: repoA, timeoutMs: SLOW_MS });
        const out = await a.opencode(['import', file], { cwd: repoA, timeoutMs: SLOW_MS });
        expect(out.stdout).toContain(`Imported session: ${imported}`);
        named.imported = imported;
      });
      const [events] = await a.db<{ n: number }>(`SELECT count(*) AS n FROM event WHERE aggregate_id = ${sqlId(named.imported)}`);
      expect(Number(events!.n)).toBe(0);
      const children = await a.children(named.parent);
      expect(children).toHaveLength(1);
      named.child = children[0]!;
      expect((await a.todos(named.parent)).length).toBe(3);
      ids = (await a.sessions()).map((row) => row.id);
      expect(new Set(ids)).toEqual(new Set(Object.values(named)));

      const pushed = await time('push --migrate (A)', () => sessmig(a, repoA, ['push', '--remote', url, '--migrate', '--json']));
      expect(pushed.code, explain(pushed)).toBe(0);
      windowR[0] = Date.now();
      pulledR = await time('pull, replay (R)', () => sessmig(r, dest, ['pull', '--remote', url, '--migrate', '--json', '--timing'], { SESSMIG_REPLAY: 'always' }));
      expect(pulledR.code, explain(pulledR)).toBe(0);
      windowR[1] = Date.now();
      windowI[0] = Date.now();
      pulledI = await time('pull, import (I)', () => sessmig(i, dest, ['pull', '--remote', url, '--json', '--timing'], { SESSMIG_REPLAY: 'never' }));
      expect(pulledI.code, explain(pulledI)).toBe(0);
      windowI[1] = Date.now();
    }, 900_000);

    afterAll(async () => {
      console.log(`opencode ${build.version}: ${timings.join(', ')}`);
      await Promise.all([a?.cleanup(), r?.cleanup(), i?.cleanup()]);
      if (dest) await fs.rm(path.dirname(dest), { recursive: true, force: true });
      if (remoteDir) await fs.rm(remoteDir, { recursive: true, force: true });
    });

    it('each pull took the path it was told to, for every session', () => {
      for (const [pulled, via] of [
        [pulledR, 'replay'],
        [pulledI, 'import'],
      ] as const) {
        const sessions = pulled.json.sessions as { id: string; action: string; via?: string }[];
        expect(sessions.map((s) => s.id).sort()).toEqual([...ids].sort());
        for (const session of sessions) expect({ id: session.id, action: session.action, via: session.via }).toEqual({ id: session.id, action: 'new', via });
        // a fallback would have warned (and taken the import path)
        expect(pulled.stderr).not.toMatch(/importing it instead|replay is not available/);
      }
    });

    it('the replay path and the import path leave the same sessions, in opencode export', async () => {
      const exports = await time('exports R, I', () => twoAtATime(ids.flatMap((id) => [[r, id] as const, [i, id] as const]), ([host, id]) => exportOf(host, id)));
      for (const [at, id] of ids.entries()) {
        const viaReplay = exports[2 * at];
        const viaImport = exports[2 * at + 1];
        expect(firstDifference(viaReplay, viaImport, id), id).toBeUndefined();
        expect(viaReplay).toEqual(viaImport);
        expect(viaReplay.info.directory).toBe(dest);
        expect(viaReplay.messages.length).toBeGreaterThan(0);
      }
      const big = exports[2 * ids.indexOf(named.big)];
      expect(JSON.stringify(big).length).toBeGreaterThan(2_000_000);
    });

    it('the same rows in opencode db: session (counters, directory, parent), messages, parts, todos', async () => {
      const columns = await columnsOf(r);
      const [viaReplay, viaImport, source] = await time('db rows R, I, A', () => Promise.all([rowsOf(r, columns, ids), rowsOf(i, columns, ids), rowsOf(a, columns, ids)]));
      const differing: string[] = [];
      for (const table of TABLES) {
        expect(viaReplay[table].length, table).toBeGreaterThan(0);
        for (const [column, example] of differingColumns(table, viaReplay[table], viaImport[table], ['replay', 'import'])) {
          if (!ROW_TIMES[table]!.includes(column)) differing.push(example);
        }
        // the row times each hold when that host wrote the row: inside its pull
        for (const column of ROW_TIMES[table]!) {
          for (const [list, [from, to]] of [[viaReplay[table], windowR], [viaImport[table], windowI]] as const) {
            for (const row of list) expect(Number(row[column]), `${table}.${column} of ${key(row)}`).toSatisfy((t: number) => t >= from && t <= to);
          }
        }
        // and as the source has them (counters, todos, messages), but for the worktree's directory
        // and the paths opencode's revert acts on, which the pull moves to it (#18)
        const sourceRows = table === 'part' ? source[table].map((row) => rebasedPart(row, repoA, dest)) : source[table];
        for (const [column, example] of differingColumns(table, viaReplay[table], sourceRows, ['replay', 'source'])) {
          if (!ROW_TIMES[table]!.includes(column) && !(table === 'session' && column === 'directory')) differing.push(example);
        }
      }
      expect(differing).toEqual([]);
      expect(viaReplay.session.find((row) => row.id === named.child)?.parent_id).toBe(named.parent);
      for (const row of viaReplay.session) expect(row.directory, String(row.id)).toBe(dest);
      expect(viaReplay.todo.filter((row) => row.session_id === named.parent)).toHaveLength(3);
      // the one intended difference: a replayed session has an event log, an imported one has none
      for (const id of ids) expect(viaReplay.events[id] ?? 0, id).toBeGreaterThan(1);
      expect(viaImport.events).toEqual({});
      expect(source.events[named.imported]).toBeUndefined();
    });

    it('a replayed session continues with `opencode run --session` and is pushed back', async () => {
      const id = named.tools;
      const before = await exportOf(r, id);
      await time('continue on R', () => r.run(dest, 'continue on R MARK-R [[write after.txt z]]', { session: id, timeoutMs: SLOW_MS }));
      const after = await exportOf(r, id);
      expect(after.messages.slice(0, before.messages.length)).toEqual(before.messages);
      const added = after.messages.slice(before.messages.length);
      expect(JSON.stringify(added)).toContain('MARK-R');
      const addedInput = added.reduce((sum: number, message: any) => sum + (message.info.tokens?.input ?? 0), 0);
      expect(addedInput).toBeGreaterThan(0);
      expect(after.info.tokens.input).toBe(before.info.tokens.input + addedInput);

      // R owns the worktree since its pull --migrate: it pushes, and A takes the session back
      const pushed = await time('push (R)', () => sessmig(r, dest, ['push', '--remote', url, '--json']));
      expect(pushed.code, explain(pushed)).toBe(0);
      const pulled = await time('pull back (A)', () => sessmig(a, repoA, ['pull', '--remote', url, '--json']));
      expect(pulled.code, explain(pulled)).toBe(0);
      const back = (pulled.json.sessions as { id: string; action: string }[]).filter((s) => s.action !== 'unchanged');
      expect(back.map((s) => [s.id, s.action])).toEqual([[id, 'replace']]);
      const onA = await exportOf(a, id);
      expect(onA.info.directory).toBe(repoA);
      // as R had them, with the paths revert acts on moved back to A's worktree (#18)
      const movedBack = after.messages.map((message: { info: unknown; parts: Record<string, unknown>[] }) => ({
        ...message,
        parts: message.parts.map((part) => rebasedPart({ data: part }, dest, repoA).data),
      }));
      expect(onA.messages).toEqual(movedBack);
      expect({ tokens: onA.info.tokens, cost: onA.info.cost }).toEqual({ tokens: after.info.tokens, cost: after.info.cost });
    });
  });
}
