import semver from 'semver';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { SessmigError } from '../util/errors.js';
import { assertSessionId, SESSION_ID } from '../format/ids.js';
import { redact } from '../util/redact.js';

/**
 * One `opencode serve` process for many exports: starting opencode costs about a second, so
 * exporting N sessions through one server costs one start instead of N.
 *
 *   const server = await OpencodeServer.start({ bin, env, cwd: worktree, timeoutMs, signal, tempDir });
 *   try {
 *     const blob = await server.exportSession(id);   // same JSON value as `opencode export <id>`
 *   } finally {
 *     await server.stop();
 *   }
 *
 * What it relies on (measured on opencode 1.3.2, 1.14.41 and 1.18.33):
 *  - `serve --hostname H --port P` prints `opencode server listening on http://H:P` on stdout when
 *    ready. `--port 0` is not used: it binds 4096 first when free, a port the user's own server may want.
 *  - OPENCODE_SERVER_PASSWORD turns on HTTP basic auth (user OPENCODE_SERVER_USERNAME, default
 *    `opencode`) for every route, /global/health and /doc included. Without it the server is open to
 *    every local user, so start() proves the guard: a request without credentials must get 401.
 *  - GET /session/{id} and GET /session/{id}/message are the `info` and `messages` of
 *    `opencode export <id>`: the same JSON value, keys in another order (so not the same bytes, and not
 *    the same key-order-sensitive hash). /message without `limit` returns every message; with a limit
 *    it pages backwards (newest first) through `X-Next-Cursor`, which this adapter never asks for.
 *  - An unknown id is a 404 `{"name":"NotFoundError","data":{"message":"Session not found: <id>"}}`.
 *  - GET /session/{id} finds a session whatever the server's directory. Listing routes are scoped to
 *    the project of the request's directory (`?directory=` or `x-opencode-directory`, else the
 *    server's cwd), and on 1.3.2 so is /session/{id}/children: every request here carries
 *    `?directory=<cwd>`.
 * Output goes to files, never pipes (see runToFiles.ts); response bodies go to a temp file.
 */
export interface OpencodeServerOptions {
  bin: string;
  /** The environment of opencode; OPENCODE_SERVER_PASSWORD/USERNAME are set over it. */
  env: NodeJS.ProcessEnv;
  /** The worktree whose sessions are exported: the server's cwd and every request's `directory`. */
  cwd: string;
  /** Limit for the server to become ready (per attempt), and for each export or request. */
  timeoutMs: number;
  /** Aborting it (SIGINT) stops the server; running requests fail with 'interrupted'. */
  signal?: AbortSignal;
  /** Where the server's output and the exported files go. */
  tempDir: string;
}

/** Versions whose server is known to give the export shape (1.3.2, 1.14.41, 1.18.33 measured). */
export function serverSupported(version: string): boolean {
  // Releases only; 2.x ("opencode2") reworked serve and its auth; not measured.
  return semver.valid(version.trim()) !== null && semver.satisfies(version.trim(), '>=1.3.0 <2.0.0');
}

const READY = /opencode server listening on (http:\/\/[^\s]+)/;
/** What `serve` prints when its port is taken (1.18.33: exit 1, "Unexpected error … ServeError"). */
const BIND_FAILURE = /ServeError|EADDRINUSE|address already in use|failed to start server/i;
const SESSION_NOT_FOUND = /Session not found/i;
const START_ATTEMPTS = 3;
const POLL_MS = 50;
const KILL_GRACE_MS = 2000;
/** How long stop() waits for the server it SIGKILLed to be reaped. */
const REAP_LIMIT_MS = 30_000;
const HEAD_BYTES = 64 * 1024;
const MAX_SMALL_BODY = 16 * 1024 * 1024;
const USERNAME = 'opencode';
/** A well-formed id no session has: probes the guard and the 404 of an unknown session. */
const PROBE_ID = 'ses_000000000000sessmigprobe00';

/**
 * Process groups of the servers still running, killed if sessmig exits without stopping them.
 * Groups, not processes: older npm builds (1.3.2, 1.14.41) start through a launcher (`bin/opencode`)
 * that runs the real binary (`bin/.opencode`) as its child and does not pass SIGTERM on; killing the
 * launcher alone leaves the server running (measured).
 */
const running = new Set<number>();
let exitHookInstalled = false;

function killOnExit(group: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const server of running) signalGroup(server, 'SIGKILL');
    });
  }
  running.add(group);
}

/**
 * Whether a process of the group still runs. On Linux, zombies (dead, not yet reaped by init, which
 * can be slow in containers) do not count; elsewhere any process that can be signalled does.
 */
function groupAlive(group: number): boolean {
  if (!signalGroup(group, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === group && fields[0] !== 'Z') return true;
  }
  return false;
}

/** Sends `signal` to every process of the group; false when none is left. */
function signalGroup(group: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-group, signal);
    return true;
  } catch {
    return false;
  }
}

class BindFailure extends Error {}

export class OpencodeServer {
  /** Base URL, e.g. http://127.0.0.1:41234 (no credentials). */
  readonly url: string;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly authorization: string;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private spawnError: Error | undefined;
  private readonly exited: Promise<void>;
  private stopping: Promise<void> | undefined;
  private readonly onAbort = () => void this.stop();

  private constructor(
    private readonly options: OpencodeServerOptions,
    private readonly child: ChildProcess,
    private readonly outFile: string,
    private readonly errFile: string,
    password: string,
    port: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.authorization = `Basic ${Buffer.from(`${USERNAME}:${password}`).toString('base64')}`;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve();
      });
      child.once('error', (error) => {
        this.spawnError = error;
        if (child.pid === undefined) {
          this.exitStatus = { code: null, signal: null };
          resolve();
        }
      });
    });
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Starts `opencode serve` on a free loopback port, waits until it answers, proves its password guard. */
  static async start(options: OpencodeServerOptions): Promise<OpencodeServer> {
    const password = randomBytes(24).toString('base64url');
    for (let attempt = 1; ; attempt++) {
      if (options.signal?.aborted) throw interrupted('starting opencode serve');
      const server = await OpencodeServer.spawn(options, password, await freePort());
      try {
        await server.waitReady();
        await server.checkGuard();
        return server;
      } catch (error) {
        await server.stop();
        if (error instanceof BindFailure && attempt < START_ATTEMPTS) continue;
        if (error instanceof BindFailure) {
          throw new SessmigError('opencode-failed', `opencode serve could not bind a loopback port (${START_ATTEMPTS} tries): ${error.message}`);
        }
        throw error;
      }
    }
  }

  private static async spawn(options: OpencodeServerOptions, password: string, port: number): Promise<OpencodeServer> {
    const id = randomBytes(6).toString('hex');
    const outFile = path.join(options.tempDir, `opencode-serve-${id}.out`);
    const errFile = path.join(options.tempDir, `opencode-serve-${id}.err`);
    let out;
    let err;
    try {
      out = await open(outFile, 'w', 0o600);
      err = await open(errFile, 'w', 0o600);
    } catch (error) {
      await out?.close();
      await rm(outFile, { force: true });
      throw new SessmigError('opencode-failed', `cannot create opencode serve's output files in ${options.tempDir}: ${(error as Error).message}`, {
        hint: `check that TMPDIR (${options.tempDir}) is writable and has free space`,
      });
    }
    try {
      const child = spawn(options.bin, ['serve', '--hostname', '127.0.0.1', '--port', String(port), '--mdns=false'], {
        cwd: options.cwd,
        env: { ...options.env, OPENCODE_SERVER_USERNAME: USERNAME, OPENCODE_SERVER_PASSWORD: password },
        stdio: ['ignore', out.fd, err.fd],
        // its own process group, so that stop() reaches a launcher's child too (see `running`);
        // SIGINT on the terminal reaches sessmig, whose abort signal stops the server.
        detached: true,
      });
      if (child.pid !== undefined) killOnExit(child.pid);
      return new OpencodeServer(options, child, outFile, errFile, password, port);
    } finally {
      // The child holds its own copies of the descriptors.
      await out.close().catch(() => undefined);
      await err.close().catch(() => undefined);
    }
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    for (;;) {
      if (this.options.signal?.aborted) throw interrupted('starting opencode serve');
      const said = `${await readHead(this.outFile)}\n${await readHead(this.errFile)}`;
      const ready = READY.exec(said);
      if (ready) {
        const url = new URL(ready[1]!);
        if (url.hostname !== '127.0.0.1' || url.port !== new URL(this.url).port) {
          throw new SessmigError('opencode-failed', `opencode serve listens on ${url.host}, not on the loopback port sessmig asked for (${new URL(this.url).host})`, {
            hint: 'check the "server" section of your opencode config',
          });
        }
        return;
      }
      if (this.exitStatus) {
        if (this.spawnError) throw spawnFailure(this.spawnError, this.options);
        if (BIND_FAILURE.test(said)) throw new BindFailure(lastLines(said));
        throw new SessmigError('opencode-failed', `opencode serve exited (${describeExit(this.exitStatus)}) before it was ready${tail(said)}`, {
          hint: `run \`${this.options.bin} serve --hostname 127.0.0.1\` by hand to see its full output`,
        });
      }
      if (Date.now() >= deadline) {
        throw new SessmigError('opencode-timeout', `opencode serve was not ready within ${seconds(this.options.timeoutMs)} s; sessmig stopped it`, {
          hint: 'raise --opencode-timeout, or check that opencode is not stuck',
        });
      }
      await Promise.race([this.exited, delay(POLL_MS)]);
    }
  }

  /** A request without credentials must be refused, and one with them must reach the session routes. */
  private async checkGuard(): Promise<void> {
    const what = 'the password check of opencode serve';
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = this.requestSignal(timeout);
    try {
      const anonymous = await this.get(`/session/${PROBE_ID}`, signal, false);
      anonymous.resume();
      if (anonymous.statusCode !== 401) {
        throw new SessmigError('opencode-failed', `opencode serve answered ${anonymous.statusCode} to a request without its password; it would serve every local user`, {
          hint: 'this opencode version ignores OPENCODE_SERVER_PASSWORD; sessmig exports through one opencode process per session instead',
        });
      }
      const probe = await this.get(`/session/${PROBE_ID}`, signal, true);
      const body = await readSmall(probe);
      if (probe.statusCode !== 404 || !SESSION_NOT_FOUND.test(body)) {
        throw new SessmigError('opencode-failed', `opencode serve answered ${probe.statusCode} to a request for an unknown session: ${redact(body).slice(0, 200)}`, {
          hint: 'this opencode version does not serve sessions as sessmig expects; sessmig exports through one opencode process per session instead',
        });
      }
    } catch (error) {
      throw this.explain(error, what, timeout);
    }
  }

  /**
   * The session as `opencode export <id>` prints it — `{"info": …, "messages": […]}`, compact and
   * with opencode's server key order — streamed from the two responses into a temp file, never held
   * in memory here (opencode itself builds each response whole). The stream removes the file when
   * closed. Rejects with 'session-gone' when opencode has no such session.
   */
  async exportSession(id: string): Promise<Readable> {
    assertSessionId(id);
    const file = path.join(this.options.tempDir, `opencode-serve-${randomBytes(6).toString('hex')}.json`);
    await this.exportToFile(id, file);
    const stream = createReadStream(file);
    stream.on('close', () => void rm(file, { force: true }));
    return stream;
  }

  /** Writes the export of `id` to `file` (0600); removes the file on failure. */
  async exportToFile(id: string, file: string): Promise<void> {
    assertSessionId(id);
    const what = `export of ${id}`;
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = this.requestSignal(timeout);
    const body = (pathname: string, first: number) => this.body(pathname, first, signal, id);
    async function* document(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"info":');
      yield* body(`/session/${id}`, OPEN_BRACE);
      yield Buffer.from(',"messages":');
      yield* body(`/session/${id}/message`, OPEN_BRACKET);
      yield Buffer.from('}\n');
    }
    try {
      await pipeline(Readable.from(document(), { objectMode: false }), createWriteStream(file, { mode: 0o600 }));
    } catch (error) {
      await rm(file, { force: true });
      throw this.explain(error, what, timeout, file);
    }
  }

  /** The ids of the direct children (subagent sessions) of `id`. */
  async children(id: string): Promise<string[]> {
    assertSessionId(id);
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = this.requestSignal(timeout);
    try {
      const response = await this.get(`/session/${id}/children`, signal, true);
      const text = await readSmall(response);
      this.checkStatus(response, text, id);
      const value = JSON.parse(text) as unknown;
      if (!Array.isArray(value)) throw new SessmigError('opencode-failed', `opencode serve listed the children of ${id} as something other than an array`);
      return value
        .map((child) => (child && typeof child === 'object' ? (child as { id?: unknown }).id : undefined))
        .filter((child): child is string => typeof child === 'string' && SESSION_ID.test(child));
    } catch (error) {
      throw this.explain(error, `listing the children of ${id}`, timeout);
    }
  }

  /**
   * One authenticated request to any route, for those this class has no method for (the event sync
   * routes, /project/current, /doc): `body` is sent as JSON, the answer (at most 16 MiB) comes back
   * whole with its status, whatever the status. `directory` picks the project the request runs in
   * (default: the server's cwd). Rejects only when the request itself fails (timeout, server gone,
   * interrupted).
   */
  async request(method: RequestMethod, pathname: string, options: { body?: string | Buffer; directory?: string } = {}): Promise<{ status: number; body: string }> {
    const what = `${method} ${new URL(pathname, this.url).pathname} on opencode serve`;
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const signal = this.requestSignal(timeout);
    try {
      const response = await this.send(method, pathname, signal, true, options.body, options.directory);
      return { status: response.statusCode ?? 0, body: await readSmall(response) };
    } catch (error) {
      throw this.explain(error, what, timeout);
    }
  }

  /** Deletes a session and its children (messages, parts, event log); false when there was no such session. */
  async deleteSession(id: string): Promise<boolean> {
    assertSessionId(id);
    const { status, body } = await this.request('DELETE', `/session/${id}`);
    if (status === 404 && SESSION_NOT_FOUND.test(body)) return false;
    if (status !== 200) {
      throw new SessmigError('opencode-failed', `opencode serve answered ${status} to the delete of ${id}: ${redact(body).slice(0, 300)}`, {
        hint: `delete it by hand: opencode session delete ${id}`,
      });
    }
    return true;
  }

  /** Stops the server: SIGTERM, then SIGKILL after 2 s, and waits until it is gone. Idempotent; safe to call in `finally`. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /** The server's process id (undefined if it could not be spawned). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  private async shutdown(): Promise<void> {
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.agent.destroy();
    const group = this.child.pid;
    if (group !== undefined) {
      if (signalGroup(group, 'SIGTERM') && !(await this.groupGone(group, KILL_GRACE_MS))) {
        signalGroup(group, 'SIGKILL');
        // SIGKILL cannot be caught, but on a loaded machine a 350 MB process can take longer than
        // the grace to die (it was seen alive, port open, after stop() returned). Our own child is
        // reaped by us, so wait for its exit (bounded, should it hang in the kernel); only a
        // grandchild that a busy init has not reaped yet gets the short grace.
        const reaped = delay(REAP_LIMIT_MS);
        await Promise.race([this.exited, reaped]);
        reaped.cancel();
        await this.groupGone(group, KILL_GRACE_MS);
      }
      running.delete(group);
    }
    await rm(this.outFile, { force: true });
    await rm(this.errFile, { force: true });
  }

  /**
   * Waits until our child has exited and no process is left in its group, up to `ms`. (A
   * grandchild that died but that a busy init has not reaped yet still counts: hence the limit.)
   */
  private async groupGone(group: number, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.exitStatus && !groupAlive(group)) return true;
      if (Date.now() >= deadline) return false;
      const timer = delay(POLL_MS);
      await (this.exitStatus ? timer : Promise.race([this.exited, timer]));
      timer.cancel();
    }
  }

  private requestSignal(timeout: AbortSignal): AbortSignal {
    return this.options.signal ? AbortSignal.any([timeout, this.options.signal]) : timeout;
  }

  private get(pathname: string, signal: AbortSignal, authorize: boolean): Promise<IncomingMessage> {
    return this.send('GET', pathname, signal, authorize);
  }

  /** Sends one request; `directory` is the request's project directory (default: the server's cwd). */
  private send(
    method: RequestMethod,
    pathname: string,
    signal: AbortSignal,
    authorize: boolean,
    body?: string | Buffer,
    directory: string = this.options.cwd,
  ): Promise<IncomingMessage> {
    const url = new URL(pathname, this.url);
    url.searchParams.set('directory', directory);
    return new Promise((resolve, reject) => {
      if (this.stopping) {
        reject(new SessmigError('opencode-failed', 'opencode serve was stopped'));
        return;
      }
      const request = http.request(url, {
        method,
        agent: this.agent,
        signal,
        headers: {
          accept: 'application/json',
          'accept-encoding': 'identity',
          ...(authorize ? { authorization: this.authorization } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }),
        },
      });
      request.once('response', resolve);
      request.once('error', reject);
      request.end(body);
    });
  }

  /** Yields a 200 response's body (decoded), checking that it starts with `first` and is complete. */
  private async *body(pathname: string, first: number, signal: AbortSignal, id: string): AsyncGenerator<Buffer> {
    const response = await this.get(pathname, signal, true);
    if (response.statusCode !== 200) this.checkStatus(response, await readSmall(response), id);
    if (response.headers['x-next-cursor'] !== undefined) {
      response.destroy();
      throw new SessmigError('opencode-failed', `opencode serve returned only one page of ${pathname}`, {
        hint: 'this opencode version pages messages by default; sessmig exports through one opencode process per session instead',
      });
    }
    const encoded = response.headers['content-encoding'] !== undefined && response.headers['content-encoding'] !== 'identity';
    const declared = encoded ? undefined : response.headers['content-length'];
    let size = 0;
    let seen = false;
    for await (const chunk of decode(response) as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (!seen) {
        const at = chunk.findIndex((byte) => !isSpace(byte));
        if (at >= 0) {
          if (chunk[at] !== first) {
            throw new SessmigError('export-malformed', `opencode serve answered ${pathname} with something other than a JSON ${first === OPEN_BRACE ? 'object' : 'array'}`);
          }
          seen = true;
        }
      }
      yield chunk;
    }
    if (!seen) throw new SessmigError('export-malformed', `opencode serve answered ${pathname} with an empty body`);
    if (declared !== undefined && Number(declared) !== size) {
      throw new SessmigError('export-malformed', `opencode serve sent ${size} of the ${declared} bytes of ${pathname}`);
    }
  }

  /** Throws for a response that is not 200: 'session-gone' for opencode's "Session not found". */
  private checkStatus(response: IncomingMessage, body: string, id: string): void {
    const status = response.statusCode ?? 0;
    if (status === 200) return;
    if (status === 404 && SESSION_NOT_FOUND.test(body)) {
      throw new SessmigError('session-gone', `session ${id} no longer exists in opencode`, { data: { id } });
    }
    throw new SessmigError('opencode-failed', `opencode serve answered ${status}${status === 401 ? ' (refused the password)' : ''}: ${redact(body).slice(0, 300)}`, {
      hint: 'run `opencode export <id>` by hand to compare',
    });
  }

  private explain(error: unknown, what: string, timeout: AbortSignal, file?: string): SessmigError {
    if (this.options.signal?.aborted) return interrupted(what);
    if (error instanceof SessmigError) return error;
    if (timeout.aborted) {
      return new SessmigError('opencode-timeout', `${what} did not finish within ${seconds(this.options.timeoutMs)} s; sessmig gave up on it`, {
        hint: 'raise --opencode-timeout if the sessions are very large, or check that opencode is not stuck',
      });
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (file && (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EDQUOT')) {
      return new SessmigError('local-io', `cannot write the ${what} to ${file}: ${(error as Error).message}`, {
        hint: code === 'ENOSPC' ? 'free disk space (or point TMPDIR elsewhere) and re-run' : 'check that TMPDIR is writable and re-run',
        cause: error,
      });
    }
    const gone = this.exitStatus ? `opencode serve exited (${describeExit(this.exitStatus)})` : this.stopping ? 'opencode serve was stopped' : undefined;
    return new SessmigError('opencode-failed', `${what} failed: ${gone ?? (error as Error).message}`, {
      hint: gone ? 'run `opencode export <id>` by hand to see whether opencode itself fails' : 'check that opencode serve is not stuck, and re-run',
      cause: error,
    });
  }
}

export type RequestMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function decode(response: IncomingMessage): Readable {
  const encoding = String(response.headers['content-encoding'] ?? 'identity').toLowerCase();
  const decoder =
    encoding === 'gzip' ? zlib.createGunzip() : encoding === 'deflate' ? zlib.createInflate() : encoding === 'br' ? zlib.createBrotliDecompress() : undefined;
  if (encoding !== 'identity' && !decoder) {
    response.destroy();
    throw new SessmigError('export-malformed', `opencode serve sent a body in an unknown encoding (${encoding})`);
  }
  if (!decoder) return response;
  response.on('error', (error) => decoder.destroy(error));
  return response.pipe(decoder);
}

/** A small body (error or listing), read whole; larger ones are cut. */
async function readSmall(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of decode(response) as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SMALL_BODY) {
      response.destroy();
      throw new SessmigError('opencode-failed', `opencode serve sent more than ${MAX_SMALL_BODY} bytes where a short answer was expected`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A loopback port nobody listens on right now (opencode may still lose a race for it: then retry). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function readHead(file: string): Promise<string> {
  const handle = await open(file, 'r').catch(() => undefined);
  if (!handle) return '';
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

function delay(ms: number): Promise<void> & { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  }) as Promise<void> & { cancel(): void };
  promise.cancel = () => clearTimeout(timer);
  return promise;
}

function interrupted(what: string): SessmigError {
  return new SessmigError('interrupted', `${what} was interrupted`, {});
}

function spawnFailure(error: Error, options: OpencodeServerOptions): SessmigError {
  const code = (error as NodeJS.ErrnoException).code;
  if (!existsSync(options.cwd)) {
    return new SessmigError('opencode-failed', `cannot start opencode serve in ${options.cwd}: the directory does not exist`);
  }
  if (code === 'ENOENT' || code === 'EACCES') {
    return new SessmigError('opencode-missing', `opencode not found or not executable: ${options.bin}`, {
      hint: 'install opencode (npm i -g opencode-ai), or point --opencode PATH / SESSMIG_OPENCODE at it',
    });
  }
  return new SessmigError('opencode-failed', `cannot start opencode serve in ${options.cwd}: ${error.message}`);
}

function describeExit(status: { code: number | null; signal: NodeJS.Signals | null }): string {
  return status.signal ? `signal ${status.signal}` : `exit ${status.code ?? '?'}`;
}

function seconds(ms: number): number {
  return Math.round(ms / 1000);
}

function lastLines(text: string): string {
  return redact(text.trim().split('\n').filter(Boolean).slice(-2).join(' | ')).slice(0, 500);
}

function tail(text: string): string {
  const last = lastLines(text);
  return last ? `: ${last}` : '';
}
