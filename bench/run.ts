/**
 * `npm run bench`: sessmig against the sequential opencode baseline, measured in ONE run on this
 * machine, with loopback S3 (s3rver), real opencode and the fake LLM of test/support.
 *
 *   1. Host A gets BENCH_SESSIONS (default 20) real sessions made by `opencode run` against the fake
 *      LLM: plain answers ([[big N]] text), [[write …]] tool calls, [[task …]] subagent calls (each
 *      makes a child session), some with a second turn; plus one LARGE session of about
 *      BENCH_LARGE_MB MiB (default 50; 0 = none), made by exporting a real `opencode run` session,
 *      inflating its answer's text part in the JSON, deleting the original and `opencode import`ing
 *      the inflated blob on A (real import, cwd = A's repo).
 *   2. (a) baseline: `opencode export <id>` of every session (children included) to a file, one
 *      after another, then `opencode import <file>` of each into host B (cwd = B's repo).
 *      (b) `sessmig push` from A, then `sessmig pull` into a fresh host C (real CLI, s3rver).
 *      (c) one session continued on A (`opencode run --session <id> "more"`), then `sessmig push`.
 *      (d) sessmig's own peak RSS (the node process only: getrusage RUSAGE_SELF written at exit by
 *      bench/rss-probe.mjs, cross-checked with VmHWM polled from /proc/<pid>/status).
 *   3. Prints a table and the ratios against the targets; writes bench/out/results.json and
 *      bench/out/results.md.
 *   4. Removes every temp dir and stops every server, also on failure or Ctrl-C (BENCH_KEEP=1 keeps
 *      the temp dir for a post-mortem).
 *
 * Env: BENCH_SESSIONS, BENCH_LARGE_MB, BENCH_JOBS (sessmig --jobs; default: sessmig's own default,
 * min(4, CPUs)), BENCH_SETUP_PARALLEL (concurrent `opencode run` while seeding host A, default 2),
 * BENCH_KEEP=1, BENCH_STRICT=1 (exit 1 when a target is missed).
 *
 * Runs in place through bench/register.mjs (TypeScript transpiled by the project's own typescript);
 * `npm run bench` builds dist/ first, since the CLI under test is bin/sessmig.js → dist/.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFakeLlm, type FakeLlm } from '../test/support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../test/support/host.js';
import { startS3rver, type S3Target } from '../test/support/s3.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(BENCH_DIR, '..');
const OUT_DIR = path.join(BENCH_DIR, 'out');
const SESSMIG_BIN = path.join(REPO, 'bin', 'sessmig.js');
const RSS_PROBE = pathToFileURL(path.join(BENCH_DIR, 'rss-probe.mjs')).href;

const TARGETS = { pushPullOverBaseline: 0.5, incrementalOverExport: 0.15, peakRssBytes: 200 * 1000 * 1000 };
const MINUTE = 60_000;

function envNumber(name: string, fallback: number, min: number, integer: boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new Error(`${name}=${JSON.stringify(raw)}: expected ${integer ? 'a whole number' : 'a number'} ≥ ${min}`);
  }
  return value;
}

const sessmigDefaultJobs = Math.max(1, Math.min(4, os.availableParallelism()));
const config = {
  sessions: envNumber('BENCH_SESSIONS', 20, 1, true),
  largeMiB: envNumber('BENCH_LARGE_MB', 50, 0, false),
  jobs: envNumber('BENCH_JOBS', sessmigDefaultJobs, 1, true),
  setupParallel: envNumber('BENCH_SETUP_PARALLEL', 2, 1, true),
  keep: process.env.BENCH_KEEP === '1',
  strict: process.env.BENCH_STRICT === '1',
};

const started = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
}

// ------------------------------------------------------------------------------------------------
// processes: stdout/stderr always to files (opencode truncates piped stdout past 64 KiB)

const live = new Set<ChildProcess>();

interface ProcResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
  pid: number;
  /** highest VmHWM seen in /proc/<pid>/status while it ran (bytes; 0 if never read) */
  hwmBytes: number;
}

function readHwm(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function runProc(
  file: string,
  args: string[],
  o: { cwd: string; env: Record<string, string>; stdoutFile: string; stderrFile: string; timeoutMs: number; pollHwm?: boolean },
): Promise<ProcResult> {
  const out = await fs.open(o.stdoutFile, 'w');
  const err = await fs.open(o.stderrFile, 'w');
  try {
    const t0 = performance.now();
    return await new Promise<ProcResult>((resolve, reject) => {
      const child = spawn(file, args, { cwd: o.cwd, env: o.env, stdio: ['ignore', out.fd, err.fd] });
      live.add(child);
      let hwmBytes = 0;
      const poll = o.pollHwm && child.pid ? setInterval(() => (hwmBytes = Math.max(hwmBytes, readHwm(child.pid!))), 20) : undefined;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, o.timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        clearInterval(poll);
        live.delete(child);
        reject(error);
      });
      child.on('exit', () => clearInterval(poll));
      child.on('close', (exitCode, signal) => {
        const ms = performance.now() - t0;
        clearTimeout(timer);
        clearInterval(poll);
        live.delete(child);
        resolve({ exitCode, signal, timedOut, ms, pid: child.pid ?? -1, hwmBytes });
      });
    });
  } finally {
    await out.close().catch(() => {});
    await err.close().catch(() => {});
  }
}

async function tail(file: string, chars = 1500): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.slice(-chars);
}

// ------------------------------------------------------------------------------------------------
// session content

type Kind = 'plain' | 'write' | 'task';

interface SeedPlan {
  index: number;
  kind: Kind;
  prompt: string;
  followUp?: string;
}

function seedPlans(n: number): SeedPlan[] {
  const plans: SeedPlan[] = [];
  for (let i = 0; i < n; i++) {
    let kind: Kind = i % 5 === 2 ? 'task' : i % 5 === 1 || i % 5 === 3 ? 'write' : 'plain';
    if (n < 3 && i === n - 1) kind = 'task'; // at least one child session
    const prompt =
      kind === 'plain'
        ? `bench ${i}: explain the module layout [[big ${[2, 8, 32][i % 3]}]]`
        : kind === 'write'
          ? `bench ${i}: add a note file [[write note-${i}.txt note ${i}\\nsecond line of note ${i}]]`
          : `bench ${i}: delegate a subtask [[task child of bench ${i}: summarize the repository]]`;
    plans.push({ index: i, kind, prompt, ...(i % 4 === 3 ? { followUp: `bench ${i}: follow up [[big 4]]` } : {}) });
  }
  return plans;
}

/** Deterministic, moderately compressible text (words drawn by xorshift32), exactly `bytes` long. */
function fillerText(bytes: number): string {
  const words = ('alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa ' +
    'quebec romeo sierra tango uniform victor whiskey xray yankee zulu const return import export await async ' +
    'function session message stream buffer promise worker handler request response config module layout')
    .split(' ');
  let x = 0x9e3779b9;
  const rnd = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const count = 6 + (rnd() % 10);
    const picked: string[] = [];
    for (let k = 0; k < count; k++) picked.push(words[rnd() % words.length]!);
    const line = `${String(i).padStart(7, '0')} ${picked.join(' ')}\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join('').slice(0, bytes);
}

async function pool<T, R>(items: T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

interface Snapshot {
  sessions: number;
  children: number;
  messages: number;
  parts: number;
  partBytes: number;
}

async function snapshot(host: Host): Promise<Snapshot> {
  const [row] = await host.db<Record<keyof Snapshot, number>>(
    `SELECT (SELECT count(*) FROM session) AS sessions, (SELECT count(*) FROM session WHERE parent_id IS NOT NULL) AS children,
            (SELECT count(*) FROM message) AS messages, (SELECT count(*) FROM part) AS parts,
            (SELECT coalesce(sum(length(data)), 0) FROM part) AS partBytes`,
  );
  return {
    sessions: Number(row?.sessions ?? 0),
    children: Number(row?.children ?? 0),
    messages: Number(row?.messages ?? 0),
    parts: Number(row?.parts ?? 0),
    partBytes: Number(row?.partBytes ?? 0),
  };
}

function sameShape(a: Snapshot, b: Snapshot): boolean {
  return a.sessions === b.sessions && a.children === b.children && a.messages === b.messages && a.parts === b.parts;
}

// ------------------------------------------------------------------------------------------------
// results

interface SessmigPhase {
  ok: boolean;
  ms: number;
  exitCode: number | null;
  /** node process only: getrusage(RUSAGE_SELF).ru_maxrss at exit */
  peakRssBytes: number | null;
  /** node process only: highest VmHWM polled from /proc every 20 ms */
  polledHwmBytes: number;
  summary?: unknown;
  error?: string;
}

const results: Record<string, any> = {
  startedAt: new Date().toISOString(),
  config: { sessions: config.sessions, largeMiB: config.largeMiB, jobs: config.jobs, jobsIsSessmigDefault: config.jobs === sessmigDefaultJobs, setupParallel: config.setupParallel },
  targets: TARGETS,
};

function machine(opencodeVersion: string, sessmigVersion: string): Record<string, unknown> {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      return null;
    }
  };
  const dirty = git(['status', '--porcelain', '--', 'src', 'bin']);
  return {
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    opencode: opencodeVersion,
    sessmig: sessmigVersion,
    gitHead: git(['rev-parse', '--short', 'HEAD']),
    srcDirty: dirty === null ? null : dirty.length > 0,
    loadAvgAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
}

const s = (ms: number | undefined | null) => (ms === undefined || ms === null ? '—' : (ms / 1000).toFixed(1));
const mb = (bytes: number | undefined | null) => (bytes === undefined || bytes === null ? '—' : `${(bytes / 1e6).toFixed(1)} MB`);
const verdict = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'PASS' : 'FAIL');

function render(): { text: string; md: string } {
  const r = results;
  const m = r.machine ?? {};
  const a = r.baseline;
  const rows: [string, string, string][] = [
    [`(a) baseline: ${a?.sessions ?? '?'} × opencode export (to files), sequential`, s(a?.exportMs), 's'],
    [`(a) baseline: ${a?.sessions ?? '?'} × opencode import into B, sequential`, s(a?.importMs), 's'],
    ['(a) baseline total', s(a?.totalMs), 's'],
    [`(b) sessmig push (A → s3rver), --jobs ${r.config.jobs}`, s(r.push?.ms), 's'],
    [`(b) sessmig pull (s3rver → fresh C), --jobs ${r.config.jobs}`, s(r.pull?.ms), 's'],
    ['(b) push + pull', s(r.push && r.pull ? r.push.ms + r.pull.ms : null), 's'],
    ['(c) incremental push, 1 session changed', s(r.incremental?.ms), 's'],
    ['(d) sessmig peak RSS during push (node process only)', mb(r.push?.peakRssBytes ?? null), ''],
    ['    sessmig peak RSS during pull (node process only)', mb(r.pull?.peakRssBytes ?? null), ''],
  ];
  const ratios = r.ratios ?? {};
  const ratioRows: [string, string, string, string][] = [
    ['(b)/(a)  push+pull / baseline total', ratios.pushPullOverBaseline?.toFixed(3) ?? '—', `≤ ${TARGETS.pushPullOverBaseline}`, verdict(r.pass?.pushPullOverBaseline ?? null)],
    ['(c)/(a-export)  incremental push / baseline export half', ratios.incrementalOverExport?.toFixed(3) ?? '—', `≤ ${TARGETS.incrementalOverExport}`, verdict(r.pass?.incrementalOverExport ?? null)],
    ['(d) peak RSS of sessmig push', mb(r.push?.peakRssBytes ?? null), `< ${mb(TARGETS.peakRssBytes)}`, verdict(r.pass?.peakRss ?? null)],
  ];
  const head =
    `sessmig bench: ${r.config.sessions} sessions + ${r.setup?.children ?? '?'} children` +
    (r.large ? ` + 1 large (${mb(r.large.exportBytes ?? r.large.blobBytes)} export)` : '') +
    `, sessmig --jobs ${r.config.jobs}, loopback S3 (s3rver)\n` +
    `machine: ${m.nproc} CPUs (${m.cpu}), node ${m.node}, opencode ${m.opencode}, sessmig ${m.sessmig} (${m.gitHead}${m.srcDirty ? '+dirty' : ''}), ` +
    `load avg ${m.loadAvgAtStart?.[0]} → ${r.loadAvgAtEnd?.[0] ?? '?'}`;
  const w = Math.max(...rows.map((row) => row[0].length), ...ratioRows.map((row) => row[0].length));
  const text = [
    head,
    '',
    ...rows.map(([name, value, unit]) => `${name.padEnd(w)}  ${value.padStart(9)} ${unit}`),
    '',
    ...ratioRows.map(([name, value, target, ok]) => `${name.padEnd(w)}  ${value.padStart(9)}  ${target.padEnd(10)} ${ok}`),
    ...(r.verification ? ['', `verification: ${r.verification.ok ? 'B and C hold the same sessions/messages/parts as A' : `MISMATCH ${JSON.stringify(r.verification)}`}`] : []),
    ...(r.errors?.length ? ['', 'ERRORS:', ...r.errors.map((e: string) => `  ${e}`)] : []),
  ].join('\n');
  const md = [
    `# sessmig bench (${r.startedAt})`,
    '',
    head.replace('\n', '  \n'),
    '',
    '| measurement | value |',
    '|---|---:|',
    ...rows.map(([name, value, unit]) => `| ${name.trim()} | ${value}${unit ? ` ${unit}` : ''} |`),
    '',
    '| ratio | value | target | result |',
    '|---|---:|---|---|',
    ...ratioRows.map(([name, value, target, ok]) => `| ${name} | ${value} | ${target} | ${ok} |`),
    '',
    ...(r.large ? [`Large session: ${r.large.method}`, ''] : []),
    ...(r.verification ? [`Verification: ${r.verification.ok ? 'B and C hold the same sessions/messages/parts as A.' : `mismatch: \`${JSON.stringify(r.verification)}\``}`, ''] : []),
    ...(r.errors?.length ? ['Errors:', '', ...r.errors.map((e: string) => `- \`${e.replace(/`/g, "'")}\``), ''] : []),
  ].join('\n');
  return { text, md };
}

// ------------------------------------------------------------------------------------------------
// main

let llm: FakeLlm | undefined;
let s3: S3Target | undefined;
let root: string | undefined;
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const child of live) child.kill('SIGKILL');
    await s3?.dispose().catch((e: unknown) => log(`s3rver dispose failed: ${(e as Error).message}`));
    await llm?.close().catch(() => {});
    if (root) {
      if (config.keep) log(`BENCH_KEEP=1: kept ${root}`);
      else await fs.rm(root, { recursive: true, force: true, maxRetries: 3 }).catch((e: unknown) => log(`could not remove ${root}: ${(e as Error).message}`));
    }
  })();
  return cleaning;
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(code));
  });
}

async function main(): Promise<void> {
  root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'sessmig-bench-')));
  const tmp = path.join(root, 'tmp'); // TMPDIR of every child: sessmig's and opencode's temp files die with root
  const io = path.join(root, 'io');
  const baselineDir = path.join(root, 'baseline');
  for (const dir of [tmp, io, baselineDir]) await fs.mkdir(dir, { recursive: true });
  let ioSeq = 0;
  const ioFiles = (label: string) => {
    const n = ++ioSeq;
    return { stdoutFile: path.join(io, `${n}-${label}.out`), stderrFile: path.join(io, `${n}-${label}.err`) };
  };
  const errors: string[] = [];
  results.errors = errors;

  log(`config ${JSON.stringify(results.config)}; temp dir ${root}`);
  llm = await startFakeLlm();
  s3 = await startS3rver();
  const remote = s3.remoteUrl('bench');
  const [a, b, c] = await Promise.all([
    createHost('a', { llm, root: path.join(root, 'a') }),
    createHost('b', { root: path.join(root, 'b') }),
    createHost('c', { root: path.join(root, 'c') }),
  ]);
  const repos = new Map<Host, string>();
  for (const host of [a, b, c]) {
    host.env.TMPDIR = tmp;
    const repo = path.join(host.workDir, 'proj');
    await createRepo(repo); // same deterministic root commit on every host: the same opencode project
    repos.set(host, repo);
  }
  const repoA = repos.get(a)!;
  const repoB = repos.get(b)!;
  const repoC = repos.get(c)!;

  const opencodeVersion = (await a.opencode(['--version'])).stdout.trim();
  const sessmigVersionRun = await runProc(process.execPath, [SESSMIG_BIN, '--version'], { cwd: REPO, env: a.env, ...ioFiles('sessmig-version'), timeoutMs: MINUTE });
  const sessmigVersion = (await fs.readFile(path.join(io, `${ioSeq}-sessmig-version.out`), 'utf8')).trim() || `exit ${sessmigVersionRun.exitCode}`;
  results.machine = machine(opencodeVersion, sessmigVersion);

  // A fresh data dir migrates its database on first use (concurrent first runs race on it), and that
  // one-time cost must not land in a timed phase: open every host's database once now.
  await Promise.all([a, b, c].map((host) => host.db('SELECT 1')));

  // ---- 1. sessions on A -----------------------------------------------------------------------
  const setupT0 = performance.now();
  const plans = seedPlans(config.sessions);
  log(`seeding host A: ${plans.length} sessions through opencode run + fake LLM (${config.setupParallel} at a time)`);
  const seeded = await pool(plans, config.setupParallel, async (plan) => {
    const first = await a.run(repoA, plan.prompt, { timeoutMs: 3 * MINUTE });
    if (plan.followUp) await a.run(repoA, plan.followUp, { session: first.sessionID, timeoutMs: 3 * MINUTE });
    return { ...plan, id: first.sessionID };
  });

  if (config.largeMiB > 0) {
    log(`making the large session (${config.largeMiB} MiB)`);
    const seed = await a.run(repoA, 'bench large: print the whole build log [[big 64]]', { timeoutMs: 3 * MINUTE });
    const seedFile = path.join(root, 'large-seed.json');
    const exp = await runProc(a.opencodeBin, ['export', seed.sessionID], { cwd: repoA, env: a.env, stdoutFile: seedFile, stderrFile: path.join(io, 'large-seed.err'), timeoutMs: 5 * MINUTE });
    if (exp.exitCode !== 0) throw new Error(`opencode export of the large seed failed (exit ${exp.exitCode}): ${await tail(path.join(io, 'large-seed.err'))}`);
    const blob = JSON.parse(await fs.readFile(seedFile, 'utf8'));
    let part: { text: string } | undefined;
    for (const message of blob.messages ?? []) {
      for (const p of message.parts ?? []) if (p.type === 'text' && typeof p.text === 'string' && (!part || p.text.length > part.text.length)) part = p;
    }
    if (!part) throw new Error('the large seed session has no text part to inflate');
    const wanted = Math.round(config.largeMiB * 2 ** 20);
    const rest = Buffer.byteLength(JSON.stringify(blob)) - Buffer.byteLength(JSON.stringify(part.text));
    part.text = fillerText(Math.max(1024, wanted - rest));
    const blobText = JSON.stringify(blob, null, 2);
    const largeFile = path.join(root, 'large.json');
    await fs.writeFile(largeFile, blobText);
    await a.opencode(['session', 'delete', seed.sessionID], { cwd: repoA, timeoutMs: 2 * MINUTE });
    const imp = await a.opencode(['import', largeFile], { cwd: repoA, timeoutMs: 10 * MINUTE });
    if (!imp.stdout.includes(`Imported session: ${seed.sessionID}`)) throw new Error(`opencode import of the large session printed no success line: ${imp.stdout.slice(-500)} ${imp.stderr.slice(-500)}`);
    await fs.rm(seedFile, { force: true });
    await fs.rm(largeFile, { force: true });
    results.large = {
      id: seed.sessionID,
      targetMiB: config.largeMiB,
      blobBytes: Buffer.byteLength(blobText),
      method:
        'a real `opencode run` session ("[[big 64]]" answer) on host A was exported (`opencode export` to a file), the text part of its ' +
        `answer was replaced with ${mb(part.text.length)} of deterministic word-salad text (xorshift32 over a 50-word vocabulary, ~3-4× gzip ratio), ` +
        'the original was deleted (`opencode session delete`) and the inflated blob imported with `opencode import` (cwd = A\'s repo), keeping its ids.',
    };
  }
  const snapA = await snapshot(a);
  results.setup = {
    ms: Math.round(performance.now() - setupT0),
    roots: snapA.sessions - snapA.children,
    children: snapA.children,
    kinds: Object.fromEntries((['plain', 'write', 'task'] as const).map((k) => [k, seeded.filter((p) => p.kind === k).length])),
    withSecondTurn: seeded.filter((p) => p.followUp).length,
    hostA: snapA,
  };
  log(`host A: ${snapA.sessions} sessions (${snapA.children} children), ${snapA.messages} messages, ${snapA.parts} parts`);

  // ---- 2a. sequential baseline ------------------------------------------------------------------
  const rows = await a.db<{ id: string; parent_id: string | null }>('SELECT id, parent_id FROM session ORDER BY time_created, id');
  const ordered = [...rows.filter((r) => !r.parent_id), ...rows.filter((r) => r.parent_id)]; // parents first
  log(`(a) baseline: ${ordered.length} × opencode export, then ${ordered.length} × opencode import into B`);
  const perSession: { id: string; bytes: number; exportMs: number; importMs?: number }[] = [];
  const exportT0 = performance.now();
  for (const [i, row] of ordered.entries()) {
    const file = path.join(baselineDir, `${i}.json`);
    const stderrFile = path.join(io, `baseline-export-${i}.err`);
    const r = await runProc(a.opencodeBin, ['export', row.id], { cwd: repoA, env: a.env, stdoutFile: file, stderrFile, timeoutMs: 10 * MINUTE });
    if (r.exitCode !== 0) throw new Error(`baseline: opencode export ${row.id} failed (exit ${r.exitCode}${r.timedOut ? ', timed out' : ''}): ${await tail(stderrFile)}`);
    perSession.push({ id: row.id, bytes: (await fs.stat(file)).size, exportMs: Math.round(r.ms) });
  }
  const exportMs = performance.now() - exportT0;
  const importT0 = performance.now();
  for (const [i, entry] of perSession.entries()) {
    const files = ioFiles(`baseline-import-${i}`);
    const r = await runProc(b.opencodeBin, ['import', path.join(baselineDir, `${i}.json`)], { cwd: repoB, env: b.env, ...files, timeoutMs: 10 * MINUTE });
    const out = await fs.readFile(files.stdoutFile, 'utf8').catch(() => '');
    if (r.exitCode !== 0 || !out.includes('Imported session:')) throw new Error(`baseline: opencode import of ${entry.id} failed (exit ${r.exitCode}): ${out.slice(-500)} ${await tail(files.stderrFile)}`);
    entry.importMs = Math.round(r.ms);
  }
  const importMs = performance.now() - importT0;
  const largeEntry = perSession.find((e) => e.id === results.large?.id);
  if (results.large && largeEntry) results.large.exportBytes = largeEntry.bytes;
  results.baseline = {
    sessions: perSession.length,
    exportMs: Math.round(exportMs),
    importMs: Math.round(importMs),
    totalMs: Math.round(exportMs + importMs),
    exportBytes: perSession.reduce((sum, e) => sum + e.bytes, 0),
    large: largeEntry ?? null,
    perSession,
  };
  await fs.rm(baselineDir, { recursive: true, force: true });
  log(`(a) export ${s(exportMs)} s, import ${s(importMs)} s`);

  // ---- 2b-d. sessmig ----------------------------------------------------------------------------
  const sessmig = async (host: Host, repo: string, command: 'push' | 'pull', label: string): Promise<SessmigPhase> => {
    const files = ioFiles(label);
    const rssFile = path.join(io, `${label}.rss.json`);
    const env = { ...host.env, ...s3!.env, SESSMIG_OPENCODE: host.opencodeBin, BENCH_RSS_FILE: rssFile };
    const args = ['--import', RSS_PROBE, SESSMIG_BIN, command, '--remote', remote, '--jobs', String(config.jobs), '--json'];
    log(`${label}: sessmig ${command} --remote ${remote} --jobs ${config.jobs} --json (cwd ${path.relative(root!, repo)})`);
    const r = await runProc(process.execPath, args, { cwd: repo, env, ...files, timeoutMs: 30 * MINUTE, pollHwm: true });
    const stdout = await fs.readFile(files.stdoutFile, 'utf8').catch(() => '');
    let json: any;
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
    let peakRssBytes: number | null = null;
    try {
      peakRssBytes = JSON.parse(await fs.readFile(rssFile, 'utf8')).maxRssKiB * 1024;
    } catch {
      /* killed before its exit hook ran */
    }
    const phase: SessmigPhase = { ok: r.exitCode === 0, ms: Math.round(r.ms), exitCode: r.exitCode, peakRssBytes, polledHwmBytes: r.hwmBytes };
    if (command === 'push' && json?.sessions) {
      const list = json.sessions as { exported?: boolean; uploaded?: boolean }[];
      phase.summary = { status: json.status, sessions: list.length, exported: list.filter((x) => x.exported).length, uploaded: list.filter((x) => x.uploaded).length, skipped: json.skipped?.length ?? 0 };
    } else if (command === 'pull' && json?.sessions) {
      const actions: Record<string, number> = {};
      for (const x of json.sessions as { action: string }[]) actions[x.action] = (actions[x.action] ?? 0) + 1;
      phase.summary = { status: json.status, sessions: json.sessions.length, actions };
    }
    if (!phase.ok) {
      phase.error = `sessmig ${command} (${label}) exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}${r.signal ? ` ${r.signal}` : ''}: ${(await tail(files.stderrFile, 1200)).trim()}`;
      errors.push(phase.error);
      log(phase.error);
    } else {
      log(`${label}: ${s(r.ms)} s, peak RSS ${mb(peakRssBytes)} (polled ${mb(r.hwmBytes)}) ${JSON.stringify(phase.summary ?? {})}`);
    }
    return phase;
  };

  results.push = await sessmig(a, repoA, 'push', 'push');
  if (results.push.ok) {
    results.pull = await sessmig(c, repoC, 'pull', 'pull');
    const changed = seeded.find((p) => p.kind === 'plain' && !p.followUp) ?? seeded[0]!;
    log(`(c) continuing session ${changed.id} on A: opencode run --session ${changed.id} "more"`);
    await a.run(repoA, 'more', { session: changed.id, timeoutMs: 3 * MINUTE });
    results.incremental = { changedSession: changed.id, ...(await sessmig(a, repoA, 'push', 'push-incremental')) };
  } else {
    errors.push('pull and incremental push not run: the push failed');
  }

  // ---- verification -----------------------------------------------------------------------------
  const [snapB, snapC] = await Promise.all([snapshot(b), results.pull?.ok ? snapshot(c) : Promise.resolve(undefined)]);
  results.verification = {
    ok: sameShape(snapA, snapB) && (snapC === undefined || sameShape(snapA, snapC)),
    hostA: snapA,
    hostB: snapB,
    hostC: snapC ?? null,
  };
  if (!results.verification.ok) errors.push(`hosts differ after migration: A ${JSON.stringify(snapA)} B ${JSON.stringify(snapB)} C ${JSON.stringify(snapC ?? null)}`);
}

function finish(): void {
  const r = results;
  const baseline = r.baseline;
  const ratios: Record<string, number> = {};
  const pass: Record<string, boolean> = {};
  if (baseline && r.push?.ok && r.pull?.ok) {
    ratios.pushPullOverBaseline = (r.push.ms + r.pull.ms) / baseline.totalMs;
    pass.pushPullOverBaseline = ratios.pushPullOverBaseline <= TARGETS.pushPullOverBaseline;
  }
  if (baseline && r.incremental?.ok) {
    ratios.incrementalOverExport = r.incremental.ms / baseline.exportMs;
    pass.incrementalOverExport = ratios.incrementalOverExport <= TARGETS.incrementalOverExport;
  }
  if (r.push?.ok) {
    const peak = r.push.peakRssBytes ?? r.push.polledHwmBytes;
    if (peak) pass.peakRss = peak < TARGETS.peakRssBytes;
  }
  r.ratios = ratios;
  r.pass = pass;
  r.loadAvgAtEnd = os.loadavg().map((v) => Number(v.toFixed(2)));
  r.finishedAt = new Date().toISOString();
  r.totalMs = Math.round(performance.now() - started);
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
  (results.errors ??= []).push(message.split('\n').slice(0, 6).join('\n'));
  log(`FAILED: ${message}`);
  exitCode = 1;
} finally {
  await cleanup();
}
finish();
if (results.errors?.length) exitCode = 1;
if (config.strict && Object.values(results.pass as Record<string, boolean>).some((ok) => !ok)) exitCode = exitCode || 1;
const { text, md } = render();
await fs.mkdir(OUT_DIR, { recursive: true });
await fs.writeFile(path.join(OUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
await fs.writeFile(path.join(OUT_DIR, 'results.md'), `${md}\n`);
process.stdout.write(`\n${text}\n\nwrote ${path.relative(process.cwd(), path.join(OUT_DIR, 'results.json'))} and results.md (${s(results.totalMs)} s in all)\n`);
process.exitCode = exitCode;
