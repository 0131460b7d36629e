import { Option, type Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { makeReporter } from './reporter.js';
import { usageError } from '../util/errors.js';
import { Timing } from '../util/timing.js';
import { findWorktree } from '../core/worktree.js';
import { resolveEncryption, worktreeOpener } from '../crypto/encryption.js';
import { loadHostIdentity } from '../host/identity.js';
import { hostPaths } from '../host/paths.js';
import { loadSettings, type Settings } from '../host/settings.js';
import { OpencodeCli } from '../opencode/opencodeCli.js';
import { VersionCache } from '../opencode/versionCache.js';
import { assertKnownOpencode } from '../opencode/versions.js';
import { openRemote } from '../remote/openRemote.js';
import type { Remote } from '../remote/remote.js';
import { redact } from '../util/redact.js';

/** The options every command takes. */
export interface CommonOptions {
  remote?: string;
  worktree?: string;
  json?: boolean;
  opencode?: string;
  jobs?: string;
  s3PathStyle?: boolean;
  opencodeTimeout?: string;
  quiet?: boolean;
  timing?: boolean;
  /** push only: seal everything written (or SESSMIG_ENCRYPT=1). */
  encrypt?: boolean;
}

/**
 * The flags every command takes; `opencode: false` for the commands that never start opencode
 * (check, prune, ls), which then do not offer --opencode, --opencode-timeout or --timing.
 */
export function addCommonOptions(command: Command, options: { opencode?: boolean } = {}): Command {
  command
    .option('--remote <url>', 'remote: file:///abs/path or s3://bucket/prefix (default: $SESSMIG_REMOTE, else git config sessmig.remote, else $XDG_DATA_HOME/sessmig/remote)')
    .option('--worktree <key>', 'worktree key in the remote (default: $SESSMIG_WORKTREE, else git config sessmig.worktree, else the opencode project id of this repository)')
    .option('--json', 'print one JSON document on stdout; progress and warnings stay on stderr')
    .option('-j, --jobs <n>', 'parallel exports, imports and transfers (default: the number of CPUs, at most 4)')
    .option('--s3-path-style', 'path-style S3 URLs, for MinIO-style endpoints (or SESSMIG_S3_FORCE_PATH_STYLE=1)')
    .option('-q, --quiet', 'no progress on stderr (warnings and errors still print)');
  if (options.opencode === false) return command;
  return command
    .option('--opencode <path>', 'the opencode binary (default: $SESSMIG_OPENCODE, else git config sessmig.opencode, else opencode on PATH)')
    .addOption(new Option('--opencode-timeout <seconds>', 'kill an opencode export or import that runs longer than this').default('600'))
    .option('--timing', 'print a per-phase time breakdown on stderr when done (also on failure)');
}

export interface Io {
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** stderr is a terminal: progress is drawn (never with --json). */
  stderrIsTTY: boolean;
  signal: AbortSignal;
  /** Standard input, for `--from-url -` / `--to-url -` (default: process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

/**
 * The temp folder the given environment names, as os.tmpdir() picks it (TMPDIR, TMP, TEMP, else
 * /tmp; no trailing slash): os.tmpdir() reads process.env, which is not io.env when sessmig runs
 * as a library (main() with an injected env).
 */
export function tempRoot(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'win32') return os.tmpdir();
  const dir = env.TMPDIR || env.TMP || env.TEMP || '/tmp';
  return dir.length > 1 && dir.endsWith('/') ? dir.slice(0, -1) : dir;
}

export function parsePositiveInt(value: string | undefined, flag: string, fallback: number, max = 1_000_000): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw usageError('bad-flag', `${flag} ${JSON.stringify(value.slice(0, 40))} is not a whole number from 1 to ${max}`, `for example ${flag} ${fallback}`);
  }
  return Number(value);
}

/** Flag > environment > git config (`sessmig.*`, as seen from the current folder) > default. */
export function settingsFrom(options: CommonOptions, io: Io): Promise<Settings> {
  return loadSettings({ remote: options.remote, worktree: options.worktree, encrypt: options.encrypt, opencode: options.opencode }, io.env, io.cwd, hostPaths(io.env).data);
}

export async function remoteFrom(options: CommonOptions, io: Io, settings?: Settings): Promise<Remote> {
  const paths = hostPaths(io.env);
  const url = (settings ?? (await settingsFrom(options, io))).remote.value;
  return openRemote({ url, defaultFolder: path.join(paths.data, 'remote'), s3PathStyle: options.s3PathStyle === true, env: io.env });
}

export function opencodeFrom(options: CommonOptions, io: Io, tempDir: string, settings: Settings): OpencodeCli {
  const bin = settings.opencode.value;
  const timeoutMs = parsePositiveInt(options.opencodeTimeout, '--opencode-timeout', 600, 86_400) * 1000;
  const versionCache = new VersionCache(path.join(hostPaths(io.env).cache, 'opencode-versions.json'));
  // opencode loads plugins in every process sessmig starts (export, serve, db, import): the push-on-idle
  // plugin stays inert there, so sessmig's own opencode never triggers an automatic push.
  const env = { ...io.env, SESSMIG_NO_AUTO_PUSH: '1' };
  // Reads of opencode's database go to SQLite's CLI where it answers as `opencode db` would
  // (opencode/directRead.ts); SESSMIG_SQLITE3=off sends them all through opencode.
  const sqliteSetting = io.env.SESSMIG_SQLITE3?.trim();
  const sqlite3 = sqliteSetting === 'off' || sqliteSetting === '0' ? undefined : sqliteSetting || 'sqlite3';
  return new OpencodeCli({ bin, env, timeoutMs, signal: io.signal, tempDir, versionCache, cwd: io.cwd, ...(sqlite3 ? { sqlite3 } : {}) });
}

/** Builds a Context for a command that works on this worktree, runs fn, and cleans up. */
export async function withContext<T>(
  options: CommonOptions,
  io: Io,
  fn: (ctx: Context) => Promise<T>,
  how: {
    /** Commands that do not touch the remote (undo) or go through a ticket instead skip its encryption marker. */
    remote: boolean;
    /**
     * The commands that run opencode refuse one sessmig does not know before anything is read or
     * written (`opencode-unsupported`, exit 2); `false` for commands that never run it (share).
     */
    opencode?: boolean;
    /**
     * push: `--encrypt` / SESSMIG_ENCRYPT=1 may start sealing a plaintext worktree. Every other
     * command reads a worktree as it is: the variable decides what push writes, nothing else.
     */
    mayEncrypt?: boolean;
    /** pull with the code leg: an empty folder is a destination (the checkout is made there). */
    emptyFolder?: boolean;
    /** pull --from-url: an empty folder's worktree key comes from the ticket. */
    keyFromTicket?: boolean;
  } = { remote: true },
): Promise<T> {
  const paths = hostPaths(io.env);
  const settings = await settingsFrom(options, io);
  const remote = await remoteFrom(options, io, settings);
  const jobs = parsePositiveInt(options.jobs, '--jobs', Math.max(1, Math.min(4, os.availableParallelism())), 64);
  const worktree = await findWorktree(io.cwd, settings.worktree.value ?? undefined, io.env, { emptyFolder: how.emptyFolder === true, keyFromTicket: how.keyFromTicket === true });
  const report = makeReporter((line) => io.stderr(`${redact(line)}\n`), {
    quiet: options.quiet === true,
    tty: io.stderrIsTTY && options.json !== true,
    raw: (text) => io.stderr(text),
  });
  let tempDir: string;
  try {
    tempDir = await mkdtemp(path.join(tempRoot(io.env), 'sessmig-'));
  } catch (error) {
    throw usageError('temp-unwritable', `cannot create a temp folder in ${tempRoot(io.env)}: ${(error as Error).message}`, 'point TMPDIR at a writable folder with free space');
  }
  const opencode = opencodeFrom(options, io, tempDir, settings);
  const timing = new Timing();
  try {
    if (how.opencode !== false) assertKnownOpencode(await opencode.version(), opencode.options.bin);
    const host = await loadHostIdentity(paths.config);
    const sealed = how.remote
      ? await resolveEncryption(remote, worktree.key, { configDir: paths.config, env: io.env, encrypt: how.mayEncrypt === true && settings.encrypt.value === true, tempDir, hostId: host.hostId })
      : remote;
    // After the marker read: an encrypted worktree sends only sealed objects, so it stays silent.
    if (how.remote && sealed === remote) warnIfCleartext(remote, io);
    return await fn({ cwd: io.cwd, env: io.env, paths, host, remote: sealed, worktree, opencode, report, jobs, signal: io.signal, tempDir, timing, settings });
  } finally {
    await rm(tempDir, { recursive: true, force: true });
    if (options.timing) io.stderr(timing.format());
  }
}

/** The settings for output: the worktree's default filled in with the key found. */
export function settingsView(ctx: Context): Settings {
  const settings = ctx.settings!;
  return { ...settings, worktree: { ...settings.worktree, value: settings.worktree.value ?? ctx.worktree.key } };
}

export function printJson(io: Io, value: unknown): void {
  io.stdout(`${redact(JSON.stringify(value, null, 2))}\n`);
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * For commands on a raw remote (check, prune): opens each worktree, sealed where it is encrypted.
 * The first worktree that is not encrypted warns about a plain-HTTP endpoint.
 */
export async function openerFor(remote: Remote, io: Io): Promise<(worktree: string) => Promise<Remote>> {
  const paths = hostPaths(io.env);
  const host = await loadHostIdentity(paths.config);
  // Reading never seals a blob, so no private temp folder is needed.
  const open = worktreeOpener(remote, { configDir: paths.config, env: io.env, tempDir: tempRoot(io.env), hostId: host.hostId });
  let warned = false;
  return async (worktree) => {
    const opened = await open(worktree);
    if (opened === remote && !warned) {
      warned = true;
      warnIfCleartext(remote, io);
    }
    return opened;
  };
}

/**
 * One line on stderr (also with --json and --quiet: stdout stays the document) when the remote
 * sends objects of a worktree that is not encrypted over plain HTTP to another machine.
 */
export function warnIfCleartext(remote: Remote, io: Io): void {
  const origin = remote.cleartextEndpoint?.();
  if (origin === undefined) return;
  io.stderr(
    `sessmig: warning: the S3 endpoint ${origin} is plain HTTP to another machine: these sessions cross the network unencrypted, readable and changeable on the way; use an https:// endpoint, or encrypt the worktree (sessmig push --encrypt)\n`,
  );
}
