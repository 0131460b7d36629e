/**
 * The `opencode serve` adapter against the real opencode (node_modules/.bin/opencode) on a
 * simulated host, and against a fake `serve` for the failures real opencode will not produce on
 * demand (hangs, crashes, an unguarded server, a lost port race).
 */
import { execa } from 'execa';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { SessmigError } from '../../src/util/errors.js';
import { Opencode } from '../../src/opencode/opencode.js';
import { OpencodeServer, serverSupported, type OpencodeServerOptions } from '../../src/opencode/server.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, REPO_ROOT, type Host } from '../support/host.js';

const UNKNOWN_ID = 'ses_0123456789abNoSuchSessio00';

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Facts and key-order-sensitive normalized hash, as sessmig's push computes them. */
async function scan(text: Buffer) {
  const { hooks, facts } = blobHooks();
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  await pipeline([text], scanner, new Writable({ write: (_chunk, _encoding, callback) => callback() }));
  return { facts, hash: scanner.normalizedDigest() };
}

/** Paths where two equal JSON values list their keys in another order. */
function keyOrderDifferences(a: unknown, b: unknown, at = '$', out = new Set<string>()): Set<string> {
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    if (!Array.isArray(a) && Object.keys(a).join() !== Object.keys(b).join()) out.add(at);
    for (const key of Object.keys(a)) {
      keyOrderDifferences((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], Array.isArray(a) ? `${at}[]` : `${at}.${key}`, out);
    }
  }
  return out;
}

/** Running (a zombie, dead but not yet reaped by a busy init, counts as dead). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return !existsSync('/proc/self/stat');
  }
  return !/^\d+ \(.*\) Z/s.test(stat);
}

function portOpen(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The processes listening on a loopback TCP port (Linux: /proc/net/tcp, then whose fd is that
 * socket); undefined where /proc cannot tell. A closed port can be bound again at once by any
 * other process (the suite runs test files in parallel), so "port closed" is checked as "no
 * process of the server listens on it", not as "nothing answers".
 */
function listenersOn(port: number): number[] | undefined {
  let table: string;
  try {
    table = readFileSync('/proc/net/tcp', 'utf8');
  } catch {
    return undefined;
  }
  const inodes = new Set<string>();
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== '0A') continue; // LISTEN
    if (Number.parseInt(fields[1]!.split(':')[1]!, 16) === port) inodes.add(`socket:[${fields[9]}]`);
  }
  const pids: number[] = [];
  if (inodes.size === 0) return pids;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (inodes.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) {
          pids.push(Number(entry));
          break;
        }
      } catch {
        // closed meanwhile
      }
    }
  }
  return pids;
}

/** The process group of a pid, or undefined when it is gone. */
function groupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

/** The adapter's temp files left in `dir` (removal on stream close is asynchronous: give it a moment). */
async function leftovers(dir: string): Promise<string[]> {
  let names: string[] = [];
  for (let i = 0; i < 20; i++) {
    names = (await fs.readdir(dir)).filter((name) => name.startsWith('opencode-serve-'));
    if (names.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return names;
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

describe('serverSupported', () => {
  it('accepts the measured 1.x builds and refuses what was not measured', () => {
    for (const version of ['1.3.2', '1.14.41', '1.18.33', '1.99.0']) expect(serverSupported(version)).toBe(true);
    for (const version of ['1.2.27', '0.15.8', '2.0.0', '1.18.33-beta.1', '', 'garbage']) expect(serverSupported(version)).toBe(false);
  });
});

describe('OpencodeServer on real opencode', () => {
  let llm: FakeLlm;
  let host: Host;
  let repo: string;
  let tempDir: string;
  let sessions: { id: string; parent_id: string | null; directory: string }[];
  let options: OpencodeServerOptions;

  beforeAll(async () => {
    llm = await startFakeLlm();
    host = await createHost('serve', { llm });
    await host.writeOpencodeConfig(llm);
    repo = path.join(host.workDir, 'proj');
    await createRepo(repo);
    const elsewhere = path.join(host.workDir, 'elsewhere');
    await fs.mkdir(elsewhere, { recursive: true });
    const parent = await host.run(repo, 'write and delegate MARK-S1 [[write notes.txt hello\\nworld]] [[task look around MARK-CHILD]]');
    await host.run(repo, 'a long answer MARK-S2 [[big 400]]');
    await host.run(repo, 'todos MARK-S3 [[todo]] [[write other.txt x]]');
    // another project: GET /session/{id} is not scoped to the server's directory
    await host.run(elsewhere, 'another project MARK-S4');
    sessions = await host.sessions();
    expect(sessions.filter((row) => row.parent_id === parent.sessionID)).toHaveLength(1);
    tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-serve-test-'));
    options = { bin: host.opencodeBin, env: host.env, cwd: repo, timeoutMs: 60_000, tempDir };
  }, 240_000);

  afterAll(async () => {
    await host?.cleanup();
    await llm?.close();
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
  });

  it('exports every session (children included) as `opencode export` does', async () => {
    // One round: the figures printed below are for reading, `npm run bench` measures speed.
    const rounds = 1;
    const t0 = performance.now();
    const server = await OpencodeServer.start(options);
    const startMs = performance.now() - t0;
    const viaServer = new Map<string, Buffer>();
    let serverMs = 0;
    try {
      const t1 = performance.now();
      for (let round = 0; round < rounds; round++) {
        for (const { id } of sessions) viaServer.set(id, await drain(await server.exportSession(id)));
      }
      serverMs = performance.now() - t1;
      for (const { id } of sessions) expect(await server.children(id)).toEqual(await host.children(id));
    } finally {
      await server.stop();
    }

    const opencode = new Opencode({ bin: host.opencodeBin, env: host.env, timeoutMs: 60_000, tempDir });
    const viaCli = new Map<string, Buffer>();
    const t2 = performance.now();
    for (let round = 0; round < rounds; round++) {
      for (const { id } of sessions) viaCli.set(id, await drain(await opencode.exportSession(id)));
    }
    const cliMs = performance.now() - t2;

    const report: string[] = [];
    for (const { id, parent_id } of sessions) {
      const cli = JSON.parse(viaCli.get(id)!.toString('utf8')) as { info: { id: string }; messages: unknown[] };
      const served = JSON.parse(viaServer.get(id)!.toString('utf8')) as unknown;
      expect(served, `session ${id}`).toEqual(cli);
      expect(cli.info.id).toBe(id);
      const [cliScan, servedScan] = await Promise.all([scan(viaCli.get(id)!), scan(viaServer.get(id)!)]);
      expect(servedScan.facts).toEqual(cliScan.facts);
      const order = keyOrderDifferences(cli, served);
      report.push(
        `${id}${parent_id ? ' (child)' : ''}: ${cli.messages.length} messages, cli ${viaCli.get(id)!.length} B, serve ${viaServer.get(id)!.length} B, ` +
          `same bytes ${viaCli.get(id)!.equals(viaServer.get(id)!)}, same normalized hash ${cliScan.hash === servedScan.hash}, ` +
          `key order differs at ${order.size} paths (${[...order].slice(0, 3).join(', ')}…)`,
      );
    }
    const n = rounds * sessions.length;
    console.log(
      [
        `opencode serve: start ${Math.round(startMs)} ms; ${n} exports ${Math.round(serverMs)} ms (${Math.round(serverMs / n)} ms each); ` +
          `start + exports ${Math.round(startMs + serverMs)} ms`,
        `opencode export: ${n} processes ${Math.round(cliMs)} ms (${Math.round(cliMs / n)} ms each)`,
        ...report,
      ].join('\n'),
    );
    expect(await leftovers(tempDir)).toEqual([]);
  });

  it('rejects an unknown session with session-gone, and a malformed id before asking', async () => {
    const server = await OpencodeServer.start(options);
    try {
      const gone = await rejection(server.exportSession(UNKNOWN_ID));
      expect(gone.code).toBe('session-gone');
      expect(gone.data).toEqual({ id: UNKNOWN_ID });
      expect((await rejection(server.children(UNKNOWN_ID))).code).toBe('session-gone');
      expect((await rejection(server.exportSession('ses_../../etc'))).code).toBe('bad-session-id');
      // the server is still usable after a refusal
      expect(JSON.parse((await drain(await server.exportSession(sessions[0]!.id))).toString('utf8')).info.id).toBe(sessions[0]!.id);
    } finally {
      await server.stop();
    }
    expect(await leftovers(tempDir)).toEqual([]);
  });

  it('refuses requests without the password or with a wrong one', async () => {
    const server = await OpencodeServer.start(options);
    try {
      const id = sessions[0]!.id;
      const basic = (credentials: string) => ({ authorization: `Basic ${Buffer.from(credentials).toString('base64')}` });
      for (const route of [`/session/${id}`, `/session/${id}/message`, '/session', '/global/health', '/doc']) {
        expect((await fetch(new URL(route, server.url))).status, `${route} without credentials`).toBe(401);
        expect((await fetch(new URL(route, server.url), { headers: basic('opencode:wrong-password') })).status).toBe(401);
        expect((await fetch(new URL(route, server.url), { headers: basic('opencode:') })).status).toBe(401);
      }
      // the password is not in the server's command line
      const { stdout } = await execa('ps', ['-o', 'args=', '-p', String(server.pid)]);
      expect(stdout).toContain('serve');
      expect(stdout).not.toMatch(/password/i);
    } finally {
      await server.stop();
    }
  });

  it('is gone after stop(): process dead, port closed, stop() again is harmless', async () => {
    const server = await OpencodeServer.start(options);
    const pid = server.pid!;
    expect(isAlive(pid)).toBe(true);
    expect(await portOpen(server.url)).toBe(true);
    const port = Number(new URL(server.url).port);
    expect(listenersOn(port) ?? [pid]).toContain(pid);
    await server.stop();
    expect(isAlive(pid), 'the server process is alive after stop()').toBe(false);
    const listeners = listenersOn(port);
    if (listeners === undefined) expect(await portOpen(server.url)).toBe(false);
    else expect(listeners.filter((other) => other === pid || groupOf(other) === pid), 'a process of the server still listens').toEqual([]);
    await server.stop();
    expect((await rejection(server.exportSession(sessions[0]!.id))).code).toBe('opencode-failed');
    expect(await leftovers(tempDir)).toEqual([]);
  });
});

/** A stand-in for `opencode serve` (node), with the failure named by FAKE_SERVE_MODE. */
const FAKE_SERVE = `
import fs from 'node:fs';
import http from 'node:http';
const mode = process.env.FAKE_SERVE_MODE ?? 'ok';
const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
const expected = 'Basic ' + Buffer.from((process.env.OPENCODE_SERVER_USERNAME ?? 'opencode') + ':' + process.env.OPENCODE_SERVER_PASSWORD).toString('base64');
if (mode === 'exit') { console.error('Error: boom'); process.exit(3); }
if (mode === 'bind-once' && !fs.existsSync(process.env.FAKE_SERVE_FLAG)) {
  fs.writeFileSync(process.env.FAKE_SERVE_FLAG, 'x');
  console.error('Error: Unexpected error\\n\\nServeError');
  process.exit(1);
}
if (process.env.FAKE_SERVE_PIDFILE) fs.writeFileSync(process.env.FAKE_SERVE_PIDFILE, String(process.pid));
if (mode === 'stubborn') process.on('SIGTERM', () => {});
if (mode === 'silent') setInterval(() => {}, 1000);
else http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (mode !== 'open' && req.headers.authorization !== expected) { res.writeHead(401); res.end(); return; }
  const match = /^\\/session\\/(ses_\\w+)(\\/message)?$/.exec(url.pathname);
  if (!match || match[1].includes('probe')) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name: 'NotFoundError', data: { message: 'Session not found: ' + match?.[1] } }));
    return;
  }
  if (!match[2]) { res.end(JSON.stringify({ id: match[1], directory: url.searchParams.get('directory') })); return; }
  if (mode === 'hang') return;
  if (mode === 'crash') { res.writeHead(200, { 'content-length': '1000' }); res.write('[{"info":'); setTimeout(() => process.exit(7), 50); return; }
  if (mode === 'paged') res.setHeader('x-next-cursor', 'abc');
  if (mode === 'object') { res.end('{"not":"an array"}'); return; }
  res.end('[]');
}).listen(port, '127.0.0.1', () => console.log('opencode server listening on http://127.0.0.1:' + port));
`;

describe('OpencodeServer failures (fake serve)', () => {
  let dir: string;
  let bin: string;
  /** Like the `bin/opencode` of 1.3.2 and 1.14.41: runs the server as its child, passes no signal on. */
  let launcher: string;
  const pidFile = () => path.join(dir, 'server.pid');
  const optionsFor = (mode: string, extra: Partial<OpencodeServerOptions> = {}): OpencodeServerOptions => ({
    bin,
    env: { PATH: process.env.PATH ?? '', FAKE_SERVE_MODE: mode, FAKE_SERVE_FLAG: path.join(dir, `flag-${mode}`), FAKE_SERVE_PIDFILE: pidFile() },
    cwd: dir,
    timeoutMs: 5_000,
    tempDir: dir,
    ...extra,
  });
  const ID = 'ses_0123456789abFakeSession000';

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-fake-serve-'));
    bin = path.join(dir, 'opencode');
    await fs.writeFile(bin, `#!${process.execPath}\n${FAKE_SERVE}`, { mode: 0o755 });
    launcher = path.join(dir, 'opencode-launcher');
    await fs.writeFile(launcher, `#!/bin/sh\n"${bin}" "$@"\necho "launcher: server exited"\n`, { mode: 0o755 });
  });

  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('composes {"info":…,"messages":[…]} and sends the directory', async () => {
    const server = await OpencodeServer.start(optionsFor('ok'));
    try {
      const text = (await drain(await server.exportSession(ID))).toString('utf8');
      expect(JSON.parse(text)).toEqual({ info: { id: ID, directory: dir }, messages: [] });
    } finally {
      await server.stop();
    }
  });

  it('maps a hung request to opencode-timeout, a crash to opencode-failed', async () => {
    const hung = await OpencodeServer.start(optionsFor('hang', { timeoutMs: 1_000 }));
    try {
      expect((await rejection(hung.exportSession(ID))).code).toBe('opencode-timeout');
    } finally {
      await hung.stop();
    }
    const crashing = await OpencodeServer.start(optionsFor('crash'));
    try {
      const error = await rejection(crashing.exportSession(ID));
      expect(error.code).toBe('opencode-failed');
    } finally {
      await crashing.stop();
    }
    expect(await leftovers(dir)).toEqual([]);
  });

  it('refuses paged or malformed answers', async () => {
    for (const [mode, code] of [
      ['paged', 'opencode-failed'],
      ['object', 'export-malformed'],
    ] as const) {
      const server = await OpencodeServer.start(optionsFor(mode));
      try {
        expect((await rejection(server.exportSession(ID))).code, mode).toBe(code);
      } finally {
        await server.stop();
      }
    }
  });

  it('fails to start when serve exits, never gets ready, or serves without the password', async () => {
    expect((await rejection(OpencodeServer.start(optionsFor('exit')))).code).toBe('opencode-failed');
    expect((await rejection(OpencodeServer.start(optionsFor('silent', { timeoutMs: 800 })))).code).toBe('opencode-timeout');
    const open = await rejection(OpencodeServer.start(optionsFor('open')));
    expect(open.code).toBe('opencode-failed');
    expect(open.message).toMatch(/without its password/);
    const missing = await rejection(OpencodeServer.start({ ...optionsFor('ok'), bin: path.join(dir, 'no-such-opencode') }));
    expect(missing.code).toBe('opencode-missing');
  });

  it('retries on another port when serve loses the port race', async () => {
    const server = await OpencodeServer.start(optionsFor('bind-once'));
    await server.stop();
    expect(existsSync(path.join(dir, 'flag-bind-once'))).toBe(true);
  });

  it('stops the server behind a launcher (the whole process group)', async () => {
    const server = await OpencodeServer.start({ ...optionsFor('ok'), bin: launcher });
    const serverPid = Number(await fs.readFile(pidFile(), 'utf8'));
    expect(serverPid).not.toBe(server.pid);
    expect(JSON.parse((await drain(await server.exportSession(ID))).toString('utf8')).info.id).toBe(ID);
    await server.stop();
    expect(isAlive(serverPid)).toBe(false);
    expect(isAlive(server.pid!)).toBe(false);
  });

  it('kills a server that ignores SIGTERM after 2 s', async () => {
    const server = await OpencodeServer.start(optionsFor('stubborn'));
    const pid = server.pid!;
    const t0 = performance.now();
    await server.stop();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1_900);
    expect(isAlive(pid)).toBe(false);
  });

  it('stops the server when the signal aborts', async () => {
    const controller = new AbortController();
    const server = await OpencodeServer.start(optionsFor('hang', { signal: controller.signal, timeoutMs: 30_000 }));
    const pid = server.pid!;
    setTimeout(() => controller.abort(), 200);
    expect((await rejection(server.exportSession(ID))).code).toBe('interrupted');
    await server.stop();
    expect(isAlive(pid)).toBe(false);
    expect((await rejection(OpencodeServer.start(optionsFor('ok', { signal: controller.signal })))).code).toBe('interrupted');
  });

  const built = path.join(REPO_ROOT, 'dist', 'opencode', 'server.js');
  it.skipIf(!existsSync(built))('kills the server when sessmig exits without stop() (uses dist/: build first)', async () => {
    const script = `
      const { OpencodeServer } = await import(${JSON.stringify(built)});
      const server = await OpencodeServer.start(${JSON.stringify({ ...optionsFor('ok'), bin: launcher })});
      process.exit(0);
    `;
    await execa(process.execPath, ['--input-type=module', '-e', script]);
    const pid = Number(await fs.readFile(pidFile(), 'utf8'));
    expect(pid).toBeGreaterThan(0);
    for (let i = 0; i < 20 && isAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(isAlive(pid)).toBe(false);
  });
});
