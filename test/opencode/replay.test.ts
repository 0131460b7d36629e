/**
 * Replaying sessions into the real opencode (node_modules/.bin/opencode, 1.18.33) through one
 * `opencode serve`, against `opencode import` of the same blobs on another host.
 *
 * Host A makes the sessions (fake LLM), exports them; each blob is rebased to host B's repo as
 * sessmig's pull does (JsonScanner + blobHooks). Host B replays them all through one server; host C
 * imports them with one `opencode import` per session, from the same worktree path (C has its own
 * data dirs), so both must end with the same `opencode export`.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { SessmigError } from '../../src/util/errors.js';
import { Opencode } from '../../src/opencode/opencode.js';
import { firstDifference, readBlob, replayAvailable, replaySession, replaySupported } from '../../src/opencode/replay.js';
import { OpencodeServer, type OpencodeServerOptions } from '../../src/opencode/server.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { cloneRepo, createHost, createRepo, sqlId, type Host } from '../support/host.js';

interface Blob {
  id: string;
  parentID: string | null;
  /** rebased to B's repo, as the pull writes it */
  file: string;
  json: any;
}

/** Slow under load: a generous limit for the CLI processes of the comparisons. */
const SLOW_MS = 180_000;

async function exportOf(host: Host, id: string): Promise<any> {
  return JSON.parse((await host.opencode(['export', id], { timeoutMs: SLOW_MS })).stdout);
}

async function rejection(promise: Promise<unknown>): Promise<SessmigError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SessmigError);
    return error as SessmigError;
  }
  throw new Error('expected a rejection');
}

describe('replayAvailable / replaySupported / readBlob', () => {
  it('knows which versions replay strictly', () => {
    for (const version of ['1.17.19', '1.17.20', '1.18.33', '1.19.0']) expect(replaySupported(version), version).toBe(true);
    for (const version of ['1.17.18', '1.15.13', '1.14.41', '1.3.2', '2.0.0', '1.18.33-beta.1', 'x']) expect(replaySupported(version), version).toBe(false);
  });

  it('splits a blob into info and messages, whatever the chunk boundaries', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-replay-unit-'));
    try {
      const blob = {
        info: { id: 'ses_x', title: 'braces { [ "quoted" ] } and \\ backslash', emoji: 'é ☃ 🎉' },
        extra: [1, { messages: [] }],
        messages: [
          { info: { id: 'msg_1', text: '}]"\\"' }, parts: [{ id: 'prt_1', text: '🎉'.repeat(10) }] },
          { info: { id: 'msg_2' }, parts: [] },
        ],
      };
      const file = path.join(dir, 'blob.json');
      await fs.writeFile(file, JSON.stringify(blob, null, 2));
      for (const chunkBytes of [1, 2, 3, 7, 64 * 1024]) {
        const pieces = [];
        for await (const piece of readBlob(file, { chunkBytes })) pieces.push(piece);
        expect(pieces, `chunks of ${chunkBytes}`).toEqual([
          { kind: 'info', value: blob.info },
          { kind: 'message', index: 0, value: blob.messages[0] },
          { kind: 'message', index: 1, value: blob.messages[1] },
        ]);
      }
      for (const [text, why] of [
        ['{"messages":[],"info":{}}', /messages come before info/],
        ['{"info":{},"messages":[1]}', /messages\[0\] is not an object/],
        ['{"info":{},"messages":[{}', /ends early/],
        ['{"info":{}}', /no messages/],
      ] as const) {
        await fs.writeFile(file, text);
        await expect(
          (async () => {
            for await (const _ of readBlob(file));
          })(),
        ).rejects.toThrow(why);
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('names the first difference between two JSON values, ignoring key order', () => {
    expect(firstDifference({ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, '$')).toBeUndefined();
    expect(firstDifference({ a: 1, b: [1, { c: 2 }] }, { a: 1, b: [1, { c: 3 }] }, '$')).toBe('$.b[1].c');
    expect(firstDifference({ a: 1 }, { a: 1, extra: null }, '$')).toBe('$.extra');
    expect(firstDifference([1, 2], [1], '$')).toBe('$.length');
  });
});

/** A stand-in for `opencode serve` that tells FAKE_VERSION and serves FAKE_DOC as its /doc. */
const FAKE_SERVE = `
import http from 'node:http';
const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
const expected = 'Basic ' + Buffer.from('opencode:' + process.env.OPENCODE_SERVER_PASSWORD).toString('base64');
http.createServer((req, res) => {
  if (req.headers.authorization !== expected) { res.writeHead(401); res.end(); return; }
  const url = new URL(req.url, 'http://localhost');
  res.setHeader('content-type', 'application/json');
  if (url.pathname === '/global/health') { res.end(JSON.stringify({ healthy: true, version: process.env.FAKE_VERSION })); return; }
  if (url.pathname === '/doc') { res.end(process.env.FAKE_DOC); return; }
  if (req.method !== 'GET') { res.writeHead(500); res.end('{"unexpected":"' + req.method + ' ' + url.pathname + '"}'); return; }
  res.writeHead(404);
  res.end(JSON.stringify({ name: 'NotFoundError', data: { message: 'Session not found: x' } }));
}).listen(port, '127.0.0.1', () => console.log('opencode server listening on http://127.0.0.1:' + port));
`;

describe('replayAvailable on servers that cannot replay (fake serve)', () => {
  const event = { id: {}, aggregateID: {}, seq: {}, type: {}, data: {} };
  const doc = (replayEvent: Record<string, unknown> | undefined) => ({
    paths: {
      ...(replayEvent
        ? { '/sync/replay': { post: { requestBody: { content: { 'application/json': { schema: { properties: { events: { items: { properties: replayEvent } } } } } } } } } }
        : {}),
      '/project/current': { get: {} },
      '/session/{sessionID}': { get: {}, delete: {} },
    },
  });

  it('decides from the version and the routes of /doc, and replaySession then touches nothing', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-replay-fake-'));
    try {
      const bin = path.join(dir, 'opencode');
      await fs.writeFile(bin, `#!${process.execPath}\n${FAKE_SERVE}`, { mode: 0o755 });
      const blob = path.join(dir, 'blob.json');
      await fs.writeFile(blob, JSON.stringify({ info: { id: 'ses_0123456789abFakeSession000', directory: dir }, messages: [] }));
      const cases: [string, unknown, boolean, RegExp?][] = [
        ['1.18.33', doc(event), true],
        ['1.15.13', doc(event), false, /no strict event replay/],
        ['1.18.33', doc(undefined), false, /no POST \/sync\/replay/],
        ['1.18.33', doc({ ...event, aggregateID: undefined, aggregate_id: {} }), false, /no "aggregateID"/],
      ];
      for (const [version, description, available, why] of cases) {
        const env = { PATH: process.env.PATH ?? '', FAKE_VERSION: version, FAKE_DOC: JSON.stringify(description) };
        const server = await OpencodeServer.start({ bin, env, cwd: dir, timeoutMs: 5_000, tempDir: dir });
        try {
          expect(await replayAvailable(server), `${version} ${JSON.stringify(description).slice(0, 80)}`).toBe(available);
          if (!available) {
            const error = await rejection(replaySession(server, blob, { tempDir: dir }));
            expect(error.code).toBe('replay-failed');
            expect(error.message).toMatch(why!);
          }
        } finally {
          await server.stop();
        }
      }
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('replaySession against the real opencode', () => {
  let llm: FakeLlm;
  let a: Host;
  let b: Host;
  let c: Host;
  let repoA: string;
  let repoB: string;
  let tempDir: string;
  let blobs: Blob[];
  /** a session of A kept out of the bulk replay, for the failure cases */
  let spare: Blob;
  let opencodeB: Opencode;
  let opencodeC: Opencode;
  let serverOptions: OpencodeServerOptions;

  /** Exports `id` from A and rebases it to B's repo through sessmig's own scanner. */
  async function exportRebased(id: string, parentID: string | null): Promise<Blob> {
    const original = path.join(tempDir, `${id}.orig.json`);
    await fs.writeFile(original, (await a.opencode(['export', id], { timeoutMs: SLOW_MS })).stdout);
    const file = path.join(tempDir, `${id}.json`);
    await pipeline(createReadStream(original), new JsonScanner(blobHooks(repoB).hooks), createWriteStream(file));
    const json = JSON.parse(await fs.readFile(file, 'utf8'));
    expect(json.info.directory).toBe(repoB);
    expect(json.info.projectID).toBe('');
    return { id, parentID, file, json };
  }

  async function tempLeftovers(): Promise<string[]> {
    return (await fs.readdir(tempDir)).filter((name) => !name.endsWith('.json') || name.startsWith('sessmig-replay-'));
  }

  beforeAll(async () => {
    llm = await startFakeLlm();
    [a, b, c] = await Promise.all([createHost('a', { llm }), createHost('b', { llm }), createHost('c')]);
    repoA = path.join(a.workDir, 'proj');
    await createRepo(repoA);
    repoB = path.join(b.workDir, 'proj');
    await cloneRepo(repoA, repoB);
    tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-replay-test-'));

    const plain = await a.run(repoA, 'plain hello MARK-1', { timeoutMs: SLOW_MS });
    await a.run(repoA, 'second turn MARK-1b', { session: plain.sessionID, timeoutMs: SLOW_MS });
    await a.run(repoA, 'write MARK-2 [[write notes.txt hello\\nworld]]', { timeoutMs: SLOW_MS });
    await a.run(repoA, 'delegate MARK-3 [[task look around MARK-CHILD]]', { timeoutMs: SLOW_MS });
    await a.run(repoA, 'todos MARK-4 [[todo]]', { timeoutMs: SLOW_MS });
    const spareRun = await a.run(repoA, 'spare MARK-F [[write spare.txt x]]', { timeoutMs: SLOW_MS });
    const rows = await a.sessions();
    expect(rows.filter((row) => row.parent_id)).toHaveLength(1);
    // parents first, as the pull orders them
    const ordered = [...rows.filter((row) => !row.parent_id), ...rows.filter((row) => row.parent_id)];
    const all: Blob[] = [];
    for (const row of ordered) all.push(await exportRebased(row.id, row.parent_id));
    spare = all.find((blob) => blob.id === spareRun.sessionID)!;
    blobs = all.filter((blob) => blob !== spare);

    opencodeB = new Opencode({ bin: b.opencodeBin, env: b.env, timeoutMs: SLOW_MS, tempDir });
    opencodeC = new Opencode({ bin: c.opencodeBin, env: c.env, timeoutMs: SLOW_MS, tempDir });
    serverOptions = { bin: b.opencodeBin, env: b.env, cwd: repoB, timeoutMs: SLOW_MS, tempDir };
  }, 300_000);

  afterAll(async () => {
    await Promise.all([a?.cleanup(), b?.cleanup(), c?.cleanup()]);
    await llm?.close();
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
  });

  it('replays every session through one server: each equals its blob, with an event log', async () => {
    // (test/opencode/replayEquivalence.test.ts compares replay with `opencode import` through pull,
    // on every build with the strict replay; `npm run bench` times them.)
    const server = await OpencodeServer.start(serverOptions);
    try {
      expect(await replayAvailable(server)).toBe(true);
      for (const blob of blobs) await replaySession(server, blob.file, { tempDir, opencode: opencodeB });
    } finally {
      await server.stop();
    }
    expect(await tempLeftovers()).toEqual([]);

    const rows = await b.sessions();
    const events = new Map(
      (await b.db<{ id: string; n: number }>('SELECT aggregate_id AS id, count(*) AS n FROM event GROUP BY aggregate_id')).map((row) => [row.id, Number(row.n)]),
    );
    for (const blob of blobs) {
      const viaReplay = await exportOf(b, blob.id);
      // messages and parts exactly as in the blob; the session as the blob says, bound to B's repo
      expect(firstDifference(viaReplay.messages, blob.json.messages, `${blob.id}.messages`)).toBeUndefined();
      expect(viaReplay.messages).toEqual(blob.json.messages);
      const { time: _replayTime, projectID, ...info } = viaReplay.info;
      const { time: _blobTime, projectID: _cleared, ...blobInfo } = blob.json.info;
      expect(info).toEqual(blobInfo);
      expect(viaReplay.info.time.created).toBe(blob.json.info.time.created);
      expect(projectID).toBe(rows.find((row) => row.id === blob.id)!.project_id);
      // a replayed session has an event log (an imported one has none)
      expect(events.get(blob.id)).toBeGreaterThan(blob.json.messages.length);
    }
    const child = blobs.find((blob) => blob.parentID)!;
    expect(await b.children(child.parentID!)).toEqual([child.id]);
  });

  it('leaves a replayed session that `opencode run --session` continues, counters summed on', async () => {
    const blob = blobs.find((item) => item.json.messages.some((message: any) => JSON.stringify(message.parts).includes('MARK-1b')))!;
    const before = await exportOf(b, blob.id);
    const seq = async () => Number((await b.db<{ seq: number }>(`SELECT seq FROM event_sequence WHERE aggregate_id = ${sqlId(blob.id)}`))[0]!.seq);
    const replayedSeq = await seq();
    await b.run(repoB, 'continue MARK-5', { session: blob.id, timeoutMs: SLOW_MS });
    const after = await exportOf(b, blob.id);
    expect(after.messages.slice(0, before.messages.length)).toEqual(before.messages);
    const added = after.messages.slice(before.messages.length);
    expect(added.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(added)).toContain('ACK: continue MARK-5');
    const addedInput = added.reduce((sum: number, message: any) => sum + (message.info.tokens?.input ?? 0), 0);
    expect(addedInput).toBeGreaterThan(0);
    expect(after.info.tokens.input).toBe(before.info.tokens.input + addedInput);
    // its event log went on from the replayed events
    expect(await seq()).toBeGreaterThan(replayedSeq);
  });

  it('refuses a session that already exists, and leaves it as it was', async () => {
    const blob = blobs[0]!;
    const before = await exportOf(b, blob.id);
    const server = await OpencodeServer.start(serverOptions);
    try {
      const error = await rejection(replaySession(server, blob.file, { tempDir, opencode: opencodeB }));
      expect(error.code).toBe('replay-failed');
      expect(error.message).toMatch(/already exists/);
    } finally {
      await server.stop();
    }
    expect(await exportOf(b, blob.id)).toEqual(before);
  });

  async function assertNothingLeft(id: string): Promise<void> {
    expect((await b.sessions()).map((row) => row.id)).not.toContain(id);
    const [counts] = await b.db<{ messages: number; parts: number; events: number; sequences: number }>(
      `SELECT (SELECT count(*) FROM message WHERE session_id = ${sqlId(id)}) AS messages,
              (SELECT count(*) FROM part WHERE session_id = ${sqlId(id)}) AS parts,
              (SELECT count(*) FROM event WHERE aggregate_id = ${sqlId(id)}) AS events,
              (SELECT count(*) FROM event_sequence WHERE aggregate_id = ${sqlId(id)}) AS sequences`,
    );
    expect(counts).toEqual({ messages: 0, parts: 0, events: 0, sequences: 0 });
  }

  it('deletes what a replay refused half-way (a corrupt part), and can replay the good blob after', async () => {
    const corrupt = path.join(tempDir, `${spare.id}.corrupt.json`);
    const json = structuredClone(spare.json);
    const last = json.messages.length - 1;
    json.messages[last].parts[1].type = 'no-such-part-type';
    await fs.writeFile(corrupt, JSON.stringify(json, null, 2));

    const server = await OpencodeServer.start(serverOptions);
    try {
      const batches: number[] = [];
      // small POSTs: the events before the bad part are committed when it is refused
      const error = await rejection(replaySession(server, corrupt, { tempDir, opencode: opencodeB, batchBytes: 1, onBatch: (n) => void batches.push(n) }));
      expect(error.code).toBe('replay-failed');
      expect(error.message).toMatch(/opencode refused event \d+ of ses_\w+ \(500\)/);
      expect(error.data).toEqual({ id: spare.id, cleaned: true });
      expect(batches.length).toBeGreaterThan(2);
      await assertNothingLeft(spare.id);

      // a blob whose message claims another session is refused before it is sent any further
      const foreign = path.join(tempDir, `${spare.id}.foreign.json`);
      const other = structuredClone(spare.json);
      other.messages[last].info.sessionID = blobs[0]!.id;
      await fs.writeFile(foreign, JSON.stringify(other));
      const refused = await rejection(replaySession(server, foreign, { tempDir, opencode: opencodeB }));
      expect(refused.message).toMatch(/belongs to another session/);
      await assertNothingLeft(spare.id);
    } finally {
      await server.stop();
    }
    expect(await tempLeftovers()).toEqual([]);
  });

  it('deletes what a replay left when the server dies half-way (through `opencode session delete`)', async () => {
    const server = await OpencodeServer.start(serverOptions);
    try {
      const error = await rejection(
        replaySession(server, spare.file, {
          tempDir,
          opencode: opencodeB,
          batchBytes: 1,
          onBatch: (n) => {
            if (n === 3) process.kill(-server.pid!, 'SIGKILL');
          },
        }),
      );
      expect(error.code).toBe('replay-failed');
      expect(error.message).toMatch(/POST \/sync\/replay on opencode serve failed/);
      expect(error.data).toEqual({ id: spare.id, cleaned: true });
    } finally {
      await server.stop();
    }
    await assertNothingLeft(spare.id);

    // and the same blob replays whole afterwards, equal to its import on C
    const again = await OpencodeServer.start(serverOptions);
    try {
      await replaySession(again, spare.file, { tempDir, opencode: opencodeB });
    } finally {
      await again.stop();
    }
    await opencodeC.importFile(spare.file, repoB, spare.id);
    expect(await exportOf(b, spare.id)).toEqual(await exportOf(c, spare.id));
    expect(await tempLeftovers()).toEqual([]);
  });

  it('streams a large session: memory stays well below the blob size', async () => {
    // 128 turns whose answers are 256 KiB each (32 MiB), built from a real session's first turn
    const source = blobs[0]!.json;
    const id = `ses_${'f'.repeat(12)}${'Big'.padEnd(14, '0')}`;
    const text = 'x'.repeat(256 * 1024);
    let stamp = 0x214e00000000;
    const next = (prefix: string) => `${prefix}_${(stamp++).toString(16)}${'0'.repeat(13)}${prefix[0]}`;
    const [user, assistant] = source.messages as any[];
    const turns = 128;
    const tokens = { ...source.info.tokens, input: turns * assistant.info.tokens.input, output: turns * assistant.info.tokens.output };
    const file = path.join(tempDir, `${id}.json`);
    const out = await fs.open(file, 'w');
    await out.write(`{"info":${JSON.stringify({ ...source.info, id, title: 'big session', tokens })},"messages":[`);
    for (let turn = 0; turn < turns; turn++) {
      const userID = next('msg');
      const assistantID = next('msg');
      // opencode lists messages by creation time: each turn later than the one before
      const created = user.info.time.created + turn * 10_000;
      const u = { info: { ...user.info, id: userID, sessionID: id, time: { created } }, parts: user.parts.map((part: any) => ({ ...part, id: next('prt'), sessionID: id, messageID: userID })) };
      const a2 = {
        info: { ...assistant.info, id: assistantID, sessionID: id, parentID: userID, time: { created: created + 1_000, completed: created + 2_000 } },
        parts: assistant.parts.map((part: any) => ({ ...part, id: next('prt'), sessionID: id, messageID: assistantID, ...(part.type === 'text' ? { text } : {}) })),
      };
      await out.write(`${turn ? ',' : ''}${JSON.stringify(u)},${JSON.stringify(a2)}`);
    }
    await out.write(']}\n');
    await out.close();
    const size = (await fs.stat(file)).size;

    // live memory, measured after a full garbage collection at each POST (the batch just sent and
    // the message being replayed are still referenced then); without collections the process
    // would also count the garbage of every message replayed so far
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const used = () => {
      const memory = process.memoryUsage();
      return memory.heapUsed + memory.external; // external includes arrayBuffers
    };
    const server = await OpencodeServer.start(serverOptions);
    const samples: number[] = [];
    let replayMs = 0;
    try {
      await replayAvailable(server);
      gc();
      samples.push(used());
      const t0 = performance.now();
      await replaySession(server, file, {
        tempDir,
        opencode: opencodeB,
        onBatch: () => {
          gc();
          samples.push(used());
        },
      });
      replayMs = performance.now() - t0;
    } finally {
      await server.stop();
    }
    const batches = samples.length - 1;
    // the spread of live memory over the replay (V8 also frees memory of its own meanwhile, so the
    // lowest sample, not the first, is the floor)
    const peak = Math.max(...samples) - Math.min(...samples);
    const t1 = performance.now();
    await opencodeC.importFile(file, repoB, id);
    const importMs = performance.now() - t1;
    const replayed = await exportOf(b, id);
    expect(replayed.messages).toHaveLength(2 * turns);
    expect(replayed.info.tokens).toEqual(tokens);
    expect(replayed).toEqual(await exportOf(c, id));
    console.log(
      `large session: ${(size / 2 ** 20).toFixed(1)} MiB blob, ${2 * turns} messages; replay with verification ${Math.round(replayMs)} ms, ` +
        `${batches} POSTs, live memory (heap + external, after GC) within ${(peak / 2 ** 20).toFixed(1)} MiB; ` +
        `opencode import of it ${Math.round(importMs)} ms`,
    );
    expect(batches).toBeGreaterThan(8);
    // parsing the whole blob would hold more than its size; streaming holds a batch (2 MiB) and a
    // message (measured alone: ≈6 MiB over a node process's start, flat from the first POST to the last)
    expect(peak).toBeLessThan(size / 2);
  });
});
