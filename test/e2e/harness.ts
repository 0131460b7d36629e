/**
 * Runs the real sessmig CLI (built from src/ into dist/) on a simulated host: the host's HOME/XDG
 * dirs and opencode, plus whatever remote env a test adds.
 *
 * By default in this process: dist/cli/main.js's `main(argv, io)` with the run's environment,
 * folder, stdin and output injected (sessmig reads no process.env, process.cwd() or process.stdin
 * when given an io). Starting node and loading sessmig costs ~0.7 s of CPU a run, and the suite
 * makes hundreds; every opencode, git and S3 request is as real either way. A run is a child
 * process (bin/sessmig.js) where the process boundary is what a test checks (pass `process: true`:
 * signals, umask, /proc cmdline, the installed entry point), where the AWS SDK's credential chain
 * would read this process's environment instead of the run's (a non-empty AWS_PROFILE, an
 * AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE, or AWS settings without static keys), and for
 * every run with SESSMIG_TEST_PROCESS=1.
 */
import { execa } from 'execa';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT, type Host } from '../support/host.js';

export const SESSMIG_BIN = path.join(REPO_ROOT, 'bin', 'sessmig.js');

/** SESSMIG_TEST_PROCESS=1: every run a child process, as before in-process runs existed. */
export const ALL_PROCESSES = process.env.SESSMIG_TEST_PROCESS === '1';

/** SESSMIG_TEST_RUN_LOG=FILE: one line per run (how, ms, worker, command), to count and time them. */
const RUN_LOG = process.env.SESSMIG_TEST_RUN_LOG;

export interface SessmigRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** Every output sessmig printed in this test process, for the secrets grep. */
export const allOutput: string[] = [];

export interface SessmigOptions {
  cwd: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  input?: string;
  /** run bin/sessmig.js as a child process (the process boundary is under test) */
  process?: boolean;
}

export async function sessmig(host: Host, args: string[], options: SessmigOptions): Promise<SessmigRun> {
  const env: Record<string, string> = { ...host.env, SESSMIG_OPENCODE: host.opencodeBin, ...options.env };
  const timeoutMs = options.timeoutMs ?? 300_000;
  const asProcess = ALL_PROCESSES || options.process === true || readsAwsChain(env);
  const t0 = performance.now();
  const result = asProcess ? await inChild(args, env, options.cwd, timeoutMs, options.input) : await inProcess(args, env, options.cwd, timeoutMs, options.input);
  if (RUN_LOG) await appendFile(RUN_LOG, `${asProcess ? 'process' : 'in-process'}\t${Math.round(performance.now() - t0)}\t${process.env.VITEST_WORKER_ID ?? ''}\t${args[0]}\n`);
  const { stdout, stderr } = result;
  allOutput.push(stdout, stderr);
  assertNoSecrets(args, stdout, stderr, { ...host.env, ...options.env });
  let json: any;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
  }
  return { exitCode: result.exitCode, stdout, stderr, json };
}

/**
 * Whether the AWS SDK would build credentials from its default chain, which reads process.env
 * and ~/.aws of the process it runs in (not the env sessmig is given): then only a child process
 * with the run's env is faithful.
 */
export function readsAwsChain(env: Record<string, string | undefined>): boolean {
  const set = (name: string) => (env[name] ?? '') !== '';
  if (['AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'].some(set)) return true;
  const staticKeys = set('AWS_ACCESS_KEY_ID') && set('AWS_SECRET_ACCESS_KEY');
  return !staticKeys && Object.keys(env).some((name) => name.startsWith('AWS_') && set(name));
}

type Output = { exitCode: number; stdout: string; stderr: string };

async function inChild(args: string[], env: Record<string, string>, cwd: string, timeoutMs: number, input: string | undefined): Promise<Output> {
  const result = await execa(process.execPath, [SESSMIG_BIN, ...args], {
    cwd,
    env,
    extendEnv: false,
    reject: false,
    timeout: timeoutMs,
    ...(input !== undefined ? { input } : { stdin: 'ignore' as const }),
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

type Main = (argv: string[], io: Record<string, unknown>) => Promise<number>;
let loaded: Promise<Main> | undefined;

/** dist/cli/main.js, loaded once per test file (what bin/sessmig.js runs). */
function loadMain(): Promise<Main> {
  // bin/sessmig.js sets this in its own process: the SDK's Node-version notice is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  loaded ??= import(pathToFileURL(path.join(REPO_ROOT, 'dist', 'cli', 'main.js')).href).then((module) => module.main as Main);
  return loaded;
}

/** execa's default: one final newline (\n or \r\n) is stripped from each output. */
function stripFinalNewline(text: string): string {
  return text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
}

async function inProcess(args: string[], env: Record<string, string>, cwd: string, timeoutMs: number, input: string | undefined): Promise<Output> {
  const main = await loadMain();
  let stdout = '';
  let stderr = '';
  const run = main(['node', SESSMIG_BIN, ...args], {
    env,
    cwd,
    stdout: (text: string) => void (stdout += text),
    stderr: (text: string) => void (stderr += text),
    stderrIsTTY: false,
    // like a child's stdin: the given input, else an empty stream (never this process's stdin)
    stdin: Readable.from(input !== undefined ? [Buffer.from(input)] : []),
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`sessmig ${args.join(' ')} (in-process) did not finish in ${timeoutMs} ms\n--- stdout\n${stdout}\n--- stderr\n${stderr}`)), timeoutMs);
  });
  try {
    const exitCode = await Promise.race([run, timedOut]);
    return { exitCode, stdout: stripFinalNewline(stdout), stderr: stripFinalNewline(stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Every sessmig run of the suite goes through here, so every output is checked: no credential and
 * no URL signature may appear, except the ticket URL that `share` exists to print on stdout.
 */
export function assertNoSecrets(args: string[], stdout: string, stderr: string, env: Record<string, string | undefined>): void {
  const printsTicket = args[0] === 'share';
  const checked = printsTicket ? stderr : `${stdout}\n${stderr}`;
  const leaks: string[] = [];
  // `key show` prints the key; `share` prints an encrypted ticket's key in its URL's fragment.
  const printsKey = (args[0] === 'key' && args[1] === 'show') || printsTicket;
  if (/AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]{20,}/.test(printsKey ? stderr : `${stdout}\n${stderr}`)) leaks.push('an age secret key');
  if (/X-Amz-Signature=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Signature');
  if (/X-Amz-Credential=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Credential');
  if (/X-Amz-Security-Token=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Security-Token');
  for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'SESSMIG_KEY']) {
    const value = env[name];
    if (value && value.length >= 8 && `${stdout}\n${stderr}`.includes(value)) leaks.push(`the value of ${name}`);
  }
  if (leaks.length > 0) throw new Error(`sessmig ${args.join(' ')} printed ${leaks.join(', ')}:\n${stdout}\n${stderr}`);
}

/** A failed expectation message with everything sessmig said. */
export function explain(run: SessmigRun): string {
  return `exit ${run.exitCode}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}
