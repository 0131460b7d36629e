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
 *      (e) pull only (issue 11): (b)'s pull against (a)'s sequential imports (same blobs, the large
 *      one included); and, when there is a large session, `sessmig push --session <root>…` of the
 *      BENCH_SESSIONS small roots (children follow) to their own prefix, then `sessmig pull` into a
 *      fresh host D, against the sum of (a)'s per-session imports of the same sessions (large one
 *      left out). Runs before (c), so the sessions are exactly the ones (a) imported.
 *      (f) encryption cost (issue 9), after (c), on the same sessions (the large one included): host
 *      A gets a key (`sessmig key new`; `key show` hands it to the pulling hosts as SESSMIG_KEY), then
 *      BENCH_ENCRYPT_REPEAT rounds of push+pull with and without encryption, in ABBA order (plain,
 *      encrypted, encrypted, plain, …), each round to a fresh remote prefix and into a fresh host:
 *      plain = `sessmig push`, encrypted = `sessmig push --encrypt`; `sessmig pull` either way.
 *      Every sessmig run passes --timing; its per-phase table lands in results.json.
 *   3. Prints a table and the ratios against the targets; writes bench/out/results.json and
 *      bench/out/results.md.
 *   4. Removes every temp dir and stops every server, also on failure or Ctrl-C (BENCH_KEEP=1 keeps
 *      the temp dir for a post-mortem).
 *
 *   5. Issue 22 (bench/README.md, item 6): (e) and a new (g) — the large session alone against its own
 *      export + import — run BENCH_ROUNDS rounds (medians); then the scale curve of bench/scale.ts
 *      (N = 20, 100, 300 synthesized sessions from a cached source host), written to bench/scale.svg
 *      and, on a full run, bench/RESULTS.md. `--quick` (BENCH_QUICK=1) makes a short smoke run.
 *
 * Env: BENCH_SESSIONS, BENCH_LARGE_MB (default 300), BENCH_ROUNDS (default 3), BENCH_SCALE=0,
 * BENCH_SCALE_NS (default 20,100,300), BENCH_SCALE_REBUILD=1, BENCH_SESSMIG (another build's bin/sessmig.js), BENCH_JOBS (sessmig --jobs; default: sessmig's own default,
 * min(4, CPUs)), BENCH_SETUP_PARALLEL (concurrent `opencode run` while seeding host A, default 2),
 * BENCH_PULL_ONLY=0 (skip (e)'s extra push+pull without the large session), BENCH_ENCRYPT=0 (skip
 * (f)), BENCH_ENCRYPT_REPEAT (rounds of each kind in (f), default 2), BENCH_KEEP=1, BENCH_STRICT=1
 * (exit 1 when a target is missed), BENCH_RERENDER=path/to/results.json (measure nothing: re-judge
 * and re-render that run into bench/out/).
 *
 * Runs in place through bench/register.mjs (TypeScript transpiled by the project's own typescript);
 * `npm run bench` builds dist/ first, since the CLI under test is bin/sessmig.js → dist/.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startFakeLlm, type FakeLlm } from '../test/support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../test/support/host.js';
import { startS3rver, type S3Target } from '../test/support/s3.js';
import { live, parseTiming, runProc, tail, type SessmigPhase } from './proc.js';
import { median, runScale, scaleSvg, scaleTable, type ScalePoint } from './scale.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(BENCH_DIR, '..');
/** BENCH_OUT: where results.json/results.md (and a quick run's scale.svg) go; default bench/out/. */
const OUT_DIR = process.env.BENCH_OUT ? path.resolve(process.env.BENCH_OUT) : path.join(BENCH_DIR, 'out');
/** BENCH_SESSMIG=/elsewhere/bin/sessmig.js measures another build (e.g. a frozen copy of the code before a change) with this bench. */
const SESSMIG_BIN = process.env.BENCH_SESSMIG ? path.resolve(process.env.BENCH_SESSMIG) : path.join(REPO, 'bin', 'sessmig.js');
/**
 * BENCH_COMPARE=/elsewhere/bin/sessmig.js: (e), (g) and the scale curve run every round with both
 * builds, in alternating order (ABBA…), so that both see the same load; medians side by side.
 */
const COMPARE_BIN = process.env.BENCH_COMPARE ? path.resolve(process.env.BENCH_COMPARE) : undefined;
interface Build {
  name: 'main' | 'compare';
  bin: string;
}
const BUILDS: Build[] = [{ name: 'main', bin: SESSMIG_BIN }, ...(COMPARE_BIN ? [{ name: 'compare' as const, bin: COMPARE_BIN }] : [])];
/** The builds in round `round`'s order (1-based): ABBA… */
function buildsInRound(round: number): Build[] {
  return round % 4 === 2 || round % 4 === 3 ? [...BUILDS].reverse() : BUILDS;
}
interface PushPullRound {
  remote: string;
  push: SessmigPhase;
  pull: SessmigPhase | null;
}
/** Medians over the complete rounds (undefined fields when none completed). */
function pushPullMedians(rounds: PushPullRound[]): { pushMedianMs?: number; pullMedianMs?: number; pushPullMedianMs?: number; peakRssBytes?: number } {
  const done = rounds.filter((x) => x.push.ok && x.pull?.ok);
  if (!done.length) return {};
  return {
    pushMedianMs: median(done.map((x) => x.push.ms)),
    pullMedianMs: median(done.map((x) => x.pull!.ms)),
    pushPullMedianMs: median(done.map((x) => x.push.ms + x.pull!.ms)),
    peakRssBytes: Math.max(...done.flatMap((x) => [x.push, x.pull!].map((p) => p.peakRssBytes ?? p.polledHwmBytes))),
  };
}
const RSS_PROBE = pathToFileURL(path.join(BENCH_DIR, 'rss-probe.mjs')).href;

const TARGETS = {
  /** the speed issue */
  pushPullOverBaseline: 0.5,
  /** issue 11: push+pull against the same baseline, tighter */
  pushPullOverBaselineReplay: 0.25,
  /** issue 11: sessmig pull against sequential `opencode import` of the same blobs */
  pullOverImport: 0.25,
  incrementalOverExport: 0.15,
  peakRssBytes: 200 * 1000 * 1000,
  /** issue 9: encrypted push+pull over plain push+pull, minus 1 */
  encryptionExtra: 0.1,
  /** issue 22: push+pull of the small sessions over their own sequential export + import */
  smallPushPullOverBaseline: 0.2,
  /** issue 22: pull of the small sessions over their sequential imports */
  smallPullOverImport: 0.2,
  /** issue 22: incremental push (1 changed) over the small sessions' sequential exports */
  smallIncrementalOverExport: 0.1,
  /** issue 22: push+pull of the large session alone over its own `opencode export` + `opencode import` */
  largePushPullOverBaseline: 1.25,
  /** issue 22: time per session at the largest N over that at the smallest N (push, pull, incremental) */
  scalePerSession: 0.5,
};
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
/** `npm run bench -- --quick` (or BENCH_QUICK=1): a smoke run of a few minutes; every knob below still wins. */
const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
function envList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const values = raw.split(',').map((x) => Number(x.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1)) throw new Error(`${name}=${JSON.stringify(raw)}: expected whole numbers ≥ 1, comma-separated`);
  return [...new Set(values)].sort((a, b) => a - b);
}
const config = {
  quick,
  sessions: envNumber('BENCH_SESSIONS', quick ? 4 : 20, 1, true),
  largeMiB: envNumber('BENCH_LARGE_MB', quick ? 2 : 300, 0, false),
  /** rounds of (e), (g) and each scale point; medians reported */
  rounds: envNumber('BENCH_ROUNDS', quick ? 1 : 3, 1, true),
  scale: process.env.BENCH_SCALE !== '0',
  scaleNs: envList('BENCH_SCALE_NS', quick ? [5, 15] : [20, 100, 300]),
  jobs: envNumber('BENCH_JOBS', sessmigDefaultJobs, 1, true),
  setupParallel: envNumber('BENCH_SETUP_PARALLEL', 2, 1, true),
  pullOnly: process.env.BENCH_PULL_ONLY !== '0',
  encrypt: process.env.BENCH_ENCRYPT === undefined ? !quick : process.env.BENCH_ENCRYPT !== '0',
  encryptRepeat: envNumber('BENCH_ENCRYPT_REPEAT', 2, 1, true),
  keep: process.env.BENCH_KEEP === '1',
  strict: process.env.BENCH_STRICT === '1',
};

const started = performance.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
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

/** Counts of a host's opencode database; `without` leaves one session (no children) out. */
async function snapshot(host: Host, without?: string): Promise<Snapshot> {
  if (without !== undefined && !/^[A-Za-z0-9_]+$/.test(without)) throw new Error(`bad session id ${without}`);
  const ses = without === undefined ? '1 = 1' : `id != '${without}'`;
  const msg = without === undefined ? '1 = 1' : `session_id != '${without}'`;
  const prt = without === undefined ? '1 = 1' : `message_id IN (SELECT id FROM message WHERE session_id != '${without}')`;
  const [row] = await host.db<Record<keyof Snapshot, number>>(
    `SELECT (SELECT count(*) FROM session WHERE ${ses}) AS sessions, (SELECT count(*) FROM session WHERE parent_id IS NOT NULL AND ${ses}) AS children,
            (SELECT count(*) FROM message WHERE ${msg}) AS messages, (SELECT count(*) FROM part WHERE ${prt}) AS parts,
            (SELECT coalesce(sum(length(data)), 0) FROM part WHERE ${prt}) AS partBytes`,
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

const results: Record<string, any> = {
  startedAt: new Date().toISOString(),
  config: { compare: COMPARE_BIN ?? null, quick: config.quick, sessions: config.sessions, largeMiB: config.largeMiB, rounds: config.rounds, scale: config.scale, scaleNs: config.scaleNs, jobs: config.jobs, jobsIsSessmigDefault: config.jobs === sessmigDefaultJobs, setupParallel: config.setupParallel, pullOnly: config.pullOnly, encrypt: config.encrypt, encryptRepeat: config.encryptRepeat },
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
    sessmigBin: SESSMIG_BIN,
    gitHead: git(['rev-parse', '--short', 'HEAD']),
    srcDirty: dirty === null ? null : dirty.length > 0,
    loadAvgAtStart: os.loadavg().map((v) => Number(v.toFixed(2))),
  };
}

const s = (ms: number | undefined | null) => (ms === undefined || ms === null ? '—' : (ms / 1000).toFixed(1));
const mb = (bytes: number | undefined | null) => (bytes === undefined || bytes === null ? '—' : `${(bytes / 1e6).toFixed(1)} MB`);
const verdict = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'PASS' : 'FAIL');
const pct = (ratio: number, signed = true) => `${signed && ratio >= 0 ? '+' : ''}${(ratio * 100).toFixed(1)} %`;

/** Every sessmig run of the bench with its --timing phases, largest first (for results.md). */
function timingLines(): string[] {
  const r = results;
  const runs: [string, SessmigPhase | null | undefined][] = [
    ['push (b)', r.push],
    ['pull (b)', r.pull],
    ['push (e)', r.pullOnly?.push],
    ['pull (e)', r.pullOnly?.pull],
    ['push (c)', r.incremental],
    ...((r.encryption?.rounds ?? []) as { kind: string; push: SessmigPhase; pull: SessmigPhase | null }[]).flatMap(
      (x, i) =>
        [
          [`push (f${i + 1}, ${x.kind})`, x.push],
          [`pull (f${i + 1}, ${x.kind})`, x.pull],
        ] as [string, SessmigPhase | null][],
    ),
  ];
  return runs
    .filter(([, phase]) => phase?.timing)
    .map(([name, phase]) => {
      const t = phase!.timing!;
      const phases = t.phases.map((x) => `${x.phase} ${s(x.ms)} (${x.count}×)`).join(', ');
      return `- ${name}: ${s(phase!.ms)} s wall — ${phases}${t.notes.length ? `; ${t.notes.join('; ')}` : ''}`;
    });
}

/** BENCH_COMPARE: the compared build's medians beside this build's, measured in the same rounds. */
function compareLines(): string[] {
  const r = results;
  const c = r.compare;
  if (!c) return [];
  const f = (ms: number | undefined | null) => s(ms ?? null);
  const x = (after: number | undefined, before: number | undefined) => (after && before ? (after / before).toFixed(2) : '—');
  const vs = (ms: number | undefined, base: number | undefined) => (ms && base ? (ms / base).toFixed(3) : '—');
  const rows: string[] = [];
  const po = r.pullOnly;
  if (po && c.pullOnly) {
    const base = po.baselineExportMs + po.baselineImportMs;
    rows.push(
      `| (e) small sessions: push | ${f(c.pullOnly.pushMedianMs)} s | ${f(po.pushMedianMs)} s | ${x(po.pushMedianMs, c.pullOnly.pushMedianMs)} |`,
      `| (e) small sessions: pull | ${f(c.pullOnly.pullMedianMs)} s | ${f(po.pullMedianMs)} s | ${x(po.pullMedianMs, c.pullOnly.pullMedianMs)} |`,
      `| (e) small: push+pull / sequential export+import (target ≤ ${TARGETS.smallPushPullOverBaseline}) | ${vs(c.pullOnly.pushPullMedianMs, base)} | ${vs(po.pushPullMedianMs, base)} | |`,
      `| (e) small: pull / sequential imports (target ≤ ${TARGETS.smallPullOverImport}) | ${vs(c.pullOnly.pullMedianMs, po.baselineImportMs)} | ${vs(po.pullMedianMs, po.baselineImportMs)} | |`,
    );
  }
  const lo = r.largeOnly;
  if (lo && c.largeOnly) {
    const base = (lo.baselineExportMs ?? 0) + (lo.baselineImportMs ?? 0);
    rows.push(
      `| (g) large session: push | ${f(c.largeOnly.pushMedianMs)} s | ${f(lo.pushMedianMs)} s | ${x(lo.pushMedianMs, c.largeOnly.pushMedianMs)} |`,
      `| (g) large session: pull | ${f(c.largeOnly.pullMedianMs)} s | ${f(lo.pullMedianMs)} s | ${x(lo.pullMedianMs, c.largeOnly.pullMedianMs)} |`,
      `| (g) large: push+pull / its export+import (target ≤ ${TARGETS.largePushPullOverBaseline}) | ${vs(c.largeOnly.pushPullMedianMs, base)} | ${vs(lo.pushPullMedianMs, base)} | |`,
      `| (g) large: peak RSS | ${mb(c.largeOnly.peakRssBytes)} | ${mb(lo.peakRssBytes)} | |`,
    );
  }
  const mine = (r.scale ?? []) as ScalePoint[];
  for (const theirs of (c.scale ?? []) as ScalePoint[]) {
    const p = mine.find((q) => q.n === theirs.n);
    if (!p?.median || !theirs.median) continue;
    rows.push(
      `| scale N=${p.n} (${p.sessions} sessions): push | ${f(theirs.median.pushMs)} s | ${f(p.median.pushMs)} s | ${x(p.median.pushMs, theirs.median.pushMs)} |`,
      `| scale N=${p.n}: pull | ${f(theirs.median.pullMs)} s | ${f(p.median.pullMs)} s | ${x(p.median.pullMs, theirs.median.pullMs)} |`,
      `| scale N=${p.n}: incremental push | ${f(theirs.median.incrementalMs)} s | ${f(p.median.incrementalMs)} s | ${x(p.median.incrementalMs, theirs.median.incrementalMs)} |`,
      `| scale N=${p.n}: peak RSS | ${mb(theirs.median.peakRssBytes)} | ${mb(p.median.peakRssBytes)} | |`,
    );
  }
  if (!rows.length) return [];
  return [
    `Before → after: \`${c.bin}\` (before) against this build (after), both in every round of (e), (g) and the scale curve, in alternating order (medians of ${r.config.rounds}):`,
    '',
    '| measurement | before | after | after / before |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
  ];
}

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
  const med = (x: { rounds?: unknown[] }) => ((x.rounds?.length ?? 1) > 1 ? ` (median of ${x.rounds!.length})` : '');
  const po = r.pullOnly;
  if (po) {
    rows.push(
      [`(e) baseline: the ${po.sessions} opencode imports of (a) without the large one (sum)`, s(po.baselineImportMs), 's'],
      [`(e) baseline: the ${po.sessions} opencode exports of (a) without the large one (sum)`, s(po.baselineExportMs), 's'],
      [`(e) sessmig push --session ×${po.roots} (no large one) → own prefix${med(po)}`, s(po.pushMedianMs ?? po.push?.ms), 's'],
      [`(e) sessmig pull of those ${po.sessions} sessions → fresh D${med(po)}`, s(po.pullMedianMs ?? po.pull?.ms), 's'],
    );
  }
  const lo = r.largeOnly;
  if (lo) {
    rows.push(
      ['(g) baseline: opencode export + opencode import of the large session', `${s(lo.baselineExportMs)} + ${s(lo.baselineImportMs)}`, 's'],
      [`(g) sessmig push --session <large> + pull → fresh G${med(lo)}`, `${s(lo.pushMedianMs)} + ${s(lo.pullMedianMs)}`, 's'],
      ['(g) sessmig peak RSS, push / pull of the large session (max over rounds)', mb(lo.peakRssBytes), ''],
    );
  }
  const enc = r.encryptionSummary;
  if (enc) {
    const n = (side: EncryptionSide) => (side.rounds > 1 ? ` (mean of ${side.rounds})` : '');
    rows.push(
      [`(f) push, plain${n(enc.plain)}`, s(enc.plain.pushMs), 's'],
      [`(f) push --encrypt${n(enc.encrypted)}`, s(enc.encrypted.pushMs), 's'],
      [`(f) pull, plain${n(enc.plain)}`, s(enc.plain.pullMs), 's'],
      [`(f) pull, encrypted (SESSMIG_KEY)${n(enc.encrypted)}`, s(enc.encrypted.pullMs), 's'],
      [`(f) push+pull plain → encrypted${enc.plain.rounds > 1 ? ' (means)' : ''}`, `${s(enc.plain.totalMs)} → ${s(enc.encrypted.totalMs)}`, 's'],
      ...(enc.plain.rounds > 1 || enc.encrypted.rounds > 1
        ? ([['(f) push+pull plain → encrypted (best round of each)', `${s(enc.plain.bestTotalMs)} → ${s(enc.encrypted.bestTotalMs)}`, 's']] as [string, string, string][])
        : []),
      [`(f) extra time: push / pull${enc.plain.rounds > 1 ? ' (means)' : ''}`, `${pct(enc.pushExtra)} / ${pct(enc.pullExtra)}`, ''],
      ['(f) sessmig peak RSS, encrypted push / pull', `${mb(enc.encrypted.peakPushRssBytes)} / ${mb(enc.encrypted.peakPullRssBytes)}`, ''],
      ['    (plain push / pull, same rounds)', `${mb(enc.plain.peakPushRssBytes)} / ${mb(enc.plain.peakPullRssBytes)}`, ''],
    );
  }
  const ratios = r.ratios ?? {};
  const fixed = (value: number | undefined) => value?.toFixed(3) ?? '—';
  const ratioRows: [string, string, string, string][] = [
    ['(b)/(a)  push+pull / baseline total (speed issue)', fixed(ratios.pushPullOverBaseline), `≤ ${TARGETS.pushPullOverBaseline}`, verdict(r.pass?.pushPullOverBaseline ?? null)],
    ['(b)/(a)  push+pull / baseline total (issue 11)', fixed(ratios.pushPullOverBaseline), `≤ ${TARGETS.pushPullOverBaselineReplay}`, verdict(r.pass?.pushPullOverBaselineReplay ?? null)],
    ['(b-pull)/(a-import)  pull / sequential imports, large one included', fixed(ratios.pullOverImport), `≤ ${TARGETS.pullOverImport}`, verdict(r.pass?.pullOverImport ?? null)],
    ...(po ? [['(e)  pull / sequential imports, without the large one', fixed(ratios.pullOverImportWithoutLarge), `≤ ${TARGETS.pullOverImport}`, verdict(r.pass?.pullOverImportWithoutLarge ?? null)] as [string, string, string, string]] : []),
    ['(c)/(a-export)  incremental push / baseline export half', fixed(ratios.incrementalOverExport), `≤ ${TARGETS.incrementalOverExport}`, verdict(r.pass?.incrementalOverExport ?? null)],
    ...(po ? [['(e)  issue 22: small sessions push+pull / their sequential export+import', fixed(ratios.smallPushPullOverBaseline), `≤ ${TARGETS.smallPushPullOverBaseline}`, verdict(r.pass?.smallPushPullOverBaseline ?? null)] as [string, string, string, string]] : []),
    ...(po ? [['(e)  issue 22: small sessions pull / their sequential imports', fixed(ratios.smallPullOverImport), `≤ ${TARGETS.smallPullOverImport}`, verdict(r.pass?.smallPullOverImport ?? null)] as [string, string, string, string]] : []),
    ['(c)  issue 22: incremental push / sequential exports of the small sessions', fixed(ratios.smallIncrementalOverExport), `≤ ${TARGETS.smallIncrementalOverExport}`, verdict(r.pass?.smallIncrementalOverExport ?? null)],
    ...(lo ? [['(g)  issue 22: large session push+pull / its export+import', fixed(ratios.largePushPullOverBaseline), `≤ ${TARGETS.largePushPullOverBaseline}`, verdict(r.pass?.largePushPullOverBaseline ?? null)] as [string, string, string, string]] : []),
    ...(lo ? [['(g)  issue 22: peak RSS with the large session', mb(lo.peakRssBytes), `< ${mb(TARGETS.peakRssBytes)}`, verdict(r.pass?.largePeakRss ?? null)] as [string, string, string, string]] : []),
    ...(['pushPerSession', 'pullPerSession', 'incrementalPerSession'] as const).filter((k) => ratios[`scale_${k}`] !== undefined).map(
      (k) => [`scale: ${k} at N=${r.config.scaleNs.at(-1)} / at N=${r.config.scaleNs[0]}`, fixed(ratios[`scale_${k}`]), `≤ ${TARGETS.scalePerSession}`, verdict(r.pass?.[`scale_${k}`] ?? null)] as [string, string, string, string],
    ),
    ...(r.scale ? [['scale: peak RSS at every N (max)', mb(Math.max(0, ...(r.scale as ScalePoint[]).filter((p) => p.median).map((p) => p.median!.peakRssBytes))), `< ${mb(TARGETS.peakRssBytes)}`, verdict(r.pass?.scalePeakRss ?? null)] as [string, string, string, string]] : []),
    ['(d) peak RSS of sessmig push / pull', `${mb(r.push?.peakRssBytes ?? null)} / ${mb(r.pull?.peakRssBytes ?? null)}`, `< ${mb(TARGETS.peakRssBytes)}`, verdict(r.pass?.peakRss ?? null)],
    ...(enc
      ? ([
          [
            `(f) encryption: extra push+pull time${enc.plain.rounds > 1 ? ' (best rounds; means)' : ''}`,
            enc.plain.rounds > 1 ? `${pct(enc.bestExtra)}; ${pct(enc.extra)}` : pct(enc.extra),
            `≤ ${pct(TARGETS.encryptionExtra, false)}`,
            verdict(r.pass?.encryptionExtra ?? null),
          ],
          ['(f) peak RSS with encryption (push, pull)', mb(enc.encrypted.peakRssBytes), `< ${mb(TARGETS.peakRssBytes)}`, verdict(r.pass?.peakRssEncrypted ?? null)],
        ] as [string, string, string, string][])
      : []),
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
    ...(r.verification ? ['', `verification: ${r.verification.ok ? `B and C${r.verification.others?.length ? ` and the ${r.verification.others.length} other pulled hosts` : ''} hold the same sessions/messages/parts as A` : `MISMATCH ${JSON.stringify(r.verification)}`}`] : []),
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
    ...(r.encryption
      ? [
          `Encryption rounds (f), in order: ${(r.encryption.rounds as { kind: string; push: SessmigPhase; pull: SessmigPhase | null }[])
            .map((x) => `${x.kind} ${s(x.push.ms)} + ${s(x.pull?.ms)} s`)
            .join('; ')}.${r.encryptionCheck ? ` The first encrypted prefix holds ${r.encryptionCheck.objects} objects, ${r.encryptionCheck.sealedBlobs} sealed blobs (\`.age\`), ${r.encryptionCheck.plaintextBlobNames} plaintext blob names.` : ''}`,
          '',
        ]
      : []),
    ...compareLines(),
    ...(r.scale
      ? [
          `Scale curve (medians of ${r.config.rounds} round(s); synthesized sessions replayed once into a cached source host; see bench/scale.ts):`,
          '',
          ...scaleTable(r.scale as ScalePoint[]).lines,
          '',
          ...(r.config.quick ? [] : ['![scale curve](scale.svg)', '']),
        ]
      : []),
    ...(timingLines().length ? ['sessmig --timing (busy time per phase; parallel phases can exceed the wall clock):', '', ...timingLines(), ''] : []),
    ...(r.large ? [`Large session: ${r.large.method}`, ''] : []),
    ...(r.verification ? [`Verification: ${r.verification.ok ? `B and C${r.verification.others?.length ? ` and the ${r.verification.others.length} other pulled hosts` : ''} hold the same sessions/messages/parts as A.` : `mismatch: \`${JSON.stringify(r.verification)}\``}`, ''] : []),
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
  if (process.env.BENCH_ONLY_SCALE === '1') {
    // the scale curve alone (a second look at it, e.g. more rounds), nothing else measured
    log(`BENCH_ONLY_SCALE=1: scale curve only, N = ${config.scaleNs.join(', ')}, ${config.rounds} round(s) each`);
    const curves = await runScale(
      { ns: config.scaleNs, rounds: config.rounds, jobs: config.jobs, llm: llm!, s3: s3!, root: root!, tmp, builds: BUILDS, order: buildsInRound, rssProbe: RSS_PROBE, opencodeVersion, log },
      errors,
    );
    results.scale = curves.main;
    if (COMPARE_BIN) (results.compare ??= { bin: COMPARE_BIN }).scale = curves.compare;
    return;
  }

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
  const sessmig = async (
    host: Host,
    repo: string,
    command: 'push' | 'pull',
    label: string,
    o: { remote?: string; args?: string[]; env?: Record<string, string>; bin?: string } = {},
  ): Promise<SessmigPhase> => {
    const files = ioFiles(label);
    const rssFile = path.join(io, `${label}.rss.json`);
    const target = o.remote ?? remote;
    const env = { ...host.env, ...s3!.env, SESSMIG_OPENCODE: host.opencodeBin, BENCH_RSS_FILE: rssFile, ...o.env };
    const extra = o.args ?? [];
    const args = ['--import', RSS_PROBE, o.bin ?? SESSMIG_BIN, command, ...extra, '--remote', target, '--jobs', String(config.jobs), '--json', '--timing'];
    const shown = extra.length > 4 ? [...extra.slice(0, 4), '…'] : extra;
    log(`${label}: sessmig ${command} ${shown.length ? `${shown.join(' ')} ` : ''}--remote ${target} --jobs ${config.jobs} --json --timing (cwd ${path.relative(root!, repo)})`);
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
    const timing = parseTiming(await fs.readFile(files.stderrFile, 'utf8').catch(() => ''));
    if (timing) phase.timing = timing;
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
      const phases = timing?.phases.slice(0, 5).map((x) => `${x.phase} ${s(x.ms)}`).join(', ');
      log(`${label}: ${s(r.ms)} s, peak RSS ${mb(peakRssBytes)} (polled ${mb(r.hwmBytes)}) ${JSON.stringify(phase.summary ?? {})}${phases ? ` [timing: ${phases}]` : ''}`);
    }
    return phase;
  };

  /** A fresh pulling host: its own XDG dirs, the same repo (same project), its database opened once. */
  const freshHost = async (name: string): Promise<{ host: Host; repo: string }> => {
    const host = await createHost(name, { root: path.join(root!, name) });
    host.env.TMPDIR = tmp;
    const repo = path.join(host.workDir, 'proj');
    await createRepo(repo);
    await host.db('SELECT 1');
    return { host, repo };
  };
  /** Fresh hosts pulled into, with the snapshot of A they must equal. */
  const pulledHosts: { name: string; host: Host; expected: Snapshot }[] = [];

  results.push = await sessmig(a, repoA, 'push', 'push');
  if (results.push.ok) {
    results.pull = await sessmig(c, repoC, 'pull', 'pull');

    // ---- 2e. pull only, without the large session (config.rounds rounds, medians) --------------
    if (config.pullOnly && results.large) {
      const largeId = results.large.id as string;
      const smallRoots = rows.filter((row) => !row.parent_id && row.id !== largeId).map((row) => row.id);
      const small = perSession.filter((e) => e.id !== largeId);
      const roundsBy: Record<string, PushPullRound[]> = { main: [], compare: [] };
      for (let round = 1; round <= config.rounds; round++) {
        for (const build of buildsInRound(round)) {
          const tag = `${build.name === 'compare' ? 'cmp-' : ''}${round}`;
          const smallRemote = s3.remoteUrl(`bench-small-${tag}`);
          const d = await freshHost(`d${tag}`);
          const pushSmall = await sessmig(a, repoA, 'push', `push-small-${tag}`, { remote: smallRemote, args: smallRoots.flatMap((id) => ['--session', id]), bin: build.bin });
          const pullSmall = pushSmall.ok ? await sessmig(d.host, d.repo, 'pull', `pull-small-${tag}`, { remote: smallRemote, bin: build.bin }) : null;
          roundsBy[build.name]!.push({ remote: smallRemote, push: pushSmall, pull: pullSmall });
          if (pullSmall?.ok) pulledHosts.push({ name: `D${tag} (pull without the large session)`, host: d.host, expected: await snapshot(a, largeId) });
        }
      }
      const rounds = roundsBy.main!;
      const done = rounds.filter((x) => x.push.ok && x.pull?.ok);
      results.pullOnly = {
        sessions: small.length,
        roots: smallRoots.length,
        remote: rounds[0]?.remote,
        baselineImportMs: small.reduce((sum, e) => sum + (e.importMs ?? 0), 0),
        baselineExportMs: small.reduce((sum, e) => sum + e.exportMs, 0),
        baselineImportMethod: "sum of (a)'s per-process `opencode import` times of these sessions (the large one left out)",
        push: rounds[0]?.push ?? null,
        pull: rounds[0]?.pull ?? null,
        rounds,
        ...pushPullMedians(rounds),
      };
      if (COMPARE_BIN) (results.compare ??= { bin: COMPARE_BIN }).pullOnly = { rounds: roundsBy.compare, ...pushPullMedians(roundsBy.compare!) };
      if (!done.length) errors.push('pull-only without the large session: not measured (see the push-small/pull-small errors)');

      // ---- 2g. the large session alone (issue 22) ----------------------------------------------
      const largeEntry = perSession.find((e) => e.id === largeId);
      const largeBy: Record<string, PushPullRound[]> = { main: [], compare: [] };
      for (let round = 1; round <= config.rounds; round++) {
        for (const build of buildsInRound(round)) {
          const tag = `${build.name === 'compare' ? 'cmp-' : ''}${round}`;
          const largeRemote = s3.remoteUrl(`bench-large-${tag}`);
          const g = await freshHost(`g${tag}`);
          const push = await sessmig(a, repoA, 'push', `push-large-${tag}`, { remote: largeRemote, args: ['--session', largeId], bin: build.bin });
          const pull = push.ok ? await sessmig(g.host, g.repo, 'pull', `pull-large-${tag}`, { remote: largeRemote, bin: build.bin }) : null;
          largeBy[build.name]!.push({ remote: largeRemote, push, pull });
          if (pull?.ok) {
            const got = await snapshot(g.host);
            if (got.sessions !== 1) errors.push(`(g) round ${tag}: the pulled host holds ${JSON.stringify(got)}, not the one large session`);
          }
          await fs.rm(g.host.root, { recursive: true, force: true });
        }
      }
      const largeRounds = largeBy.main!;
      const largeDone = largeRounds.filter((x) => x.push.ok && x.pull?.ok);
      results.largeOnly = {
        id: largeId,
        baselineExportMs: largeEntry?.exportMs ?? null,
        baselineImportMs: largeEntry?.importMs ?? null,
        rounds: largeRounds,
        ...pushPullMedians(largeRounds),
      };
      if (COMPARE_BIN) (results.compare ??= { bin: COMPARE_BIN }).largeOnly = { rounds: largeBy.compare, ...pushPullMedians(largeBy.compare!) };
      if (!largeDone.length) errors.push('(g) the large session alone: not measured (see the push-large/pull-large errors)');
    }

    const changed = seeded.find((p) => p.kind === 'plain' && !p.followUp) ?? seeded[0]!;
    log(`(c) continuing session ${changed.id} on A: opencode run --session ${changed.id} "more"`);
    await a.run(repoA, 'more', { session: changed.id, timeoutMs: 3 * MINUTE });
    results.incremental = { changedSession: changed.id, ...(await sessmig(a, repoA, 'push', 'push-incremental')) };

    // ---- 2f. encryption cost -------------------------------------------------------------------
    if (config.encrypt) {
      const keyNew = await runProc(process.execPath, [SESSMIG_BIN, 'key', 'new'], { cwd: repoA, env: a.env, ...ioFiles('key-new'), timeoutMs: MINUTE });
      const shown = ioFiles('key-show'); // the key itself: in the temp dir only, removed with it
      const keyShow = await runProc(process.execPath, [SESSMIG_BIN, 'key', 'show'], { cwd: repoA, env: a.env, ...shown, timeoutMs: MINUTE });
      const key = (await fs.readFile(shown.stdoutFile, 'utf8').catch(() => '')).trim();
      if (keyNew.exitCode !== 0 || keyShow.exitCode !== 0 || !key.startsWith('AGE-SECRET-KEY-1')) {
        errors.push(`encryption not measured: sessmig key new/show failed (exit ${keyNew.exitCode}/${keyShow.exitCode}): ${await tail(shown.stderrFile, 400)}`);
      } else {
        const snapA2 = await snapshot(a);
        const order: ('plain' | 'encrypted')[] = [];
        for (let i = 0; i < config.encryptRepeat; i++) order.push(...(i % 2 === 0 ? (['plain', 'encrypted'] as const) : (['encrypted', 'plain'] as const)));
        log(`(f) encryption: ${order.length} rounds of push+pull (${order.join(', ')}), each to a fresh prefix and into a fresh host`);
        const rounds: { kind: 'plain' | 'encrypted'; remote: string; push: SessmigPhase; pull: SessmigPhase | null }[] = [];
        for (const [i, kind] of order.entries()) {
          const label = `${kind === 'plain' ? 'plain' : 'enc'}-${i + 1}`;
          const target = s3.remoteUrl(`bench-${label}`);
          const e = await freshHost(`e${i + 1}`);
          const push = await sessmig(a, repoA, 'push', `push-${label}`, { remote: target, args: kind === 'encrypted' ? ['--encrypt'] : [] });
          const pull = push.ok ? await sessmig(e.host, e.repo, 'pull', `pull-${label}`, { remote: target, env: kind === 'encrypted' ? { SESSMIG_KEY: key } : {} }) : null;
          rounds.push({ kind, remote: target, push, pull });
          if (pull?.ok) pulledHosts.push({ name: `E${i + 1} (${kind})`, host: e.host, expected: snapA2 });
        }
        if (rounds.some((round) => round.kind === 'encrypted' && round.pull?.ok)) {
          // The bucket holds no plaintext blob name for the encrypted rounds (a cheap sanity check that --encrypt took).
          const encRemote = rounds.find((round) => round.kind === 'encrypted')!.remote;
          const prefix = `${encRemote.replace(/^s3:\/\/[^/]+\/?/, '')}/`;
          const stored = (await s3!.listAll()).filter((o) => o.key.startsWith(prefix));
          results.encryptionCheck = {
            remote: encRemote,
            objects: stored.length,
            sealedBlobs: stored.filter((o) => o.key.endsWith('.age')).length,
            plaintextBlobNames: stored.filter((o) => o.key.endsWith('.json.gz')).length,
          };
          if (results.encryptionCheck.plaintextBlobNames > 0 || results.encryptionCheck.sealedBlobs === 0) errors.push(`the encrypted round's bucket prefix does not look encrypted: ${JSON.stringify(results.encryptionCheck)}`);
        }
        results.encryption = { order, rounds: rounds.map(({ kind, remote: r, push, pull }) => ({ kind, remote: r, push, pull })) };
      }
    }
  } else {
    errors.push('pull and incremental push not run: the push failed');
  }

  // ---- verification -----------------------------------------------------------------------------
  const [snapB, snapC] = await Promise.all([snapshot(b), results.pull?.ok ? snapshot(c) : Promise.resolve(undefined)]);
  const others = await Promise.all(pulledHosts.map(async (p) => ({ name: p.name, expected: p.expected, got: await snapshot(p.host) })));
  const othersOk = others.every((o) => sameShape(o.expected, o.got));
  results.verification = {
    ok: sameShape(snapA, snapB) && (snapC === undefined || sameShape(snapA, snapC)) && othersOk,
    hostA: snapA,
    hostB: snapB,
    hostC: snapC ?? null,
    others,
  };
  if (!results.verification.ok) errors.push(`hosts differ after migration: A ${JSON.stringify(snapA)} B ${JSON.stringify(snapB)} C ${JSON.stringify(snapC ?? null)} others ${JSON.stringify(others)}`);

  // ---- 3. the scale curve (issue 22) --------------------------------------------------------------
  if (config.scale) {
    log(`scale curve: N = ${config.scaleNs.join(', ')}, ${config.rounds} round(s) each`);
    const curves = await runScale(
      { ns: config.scaleNs, rounds: config.rounds, jobs: config.jobs, llm: llm!, s3: s3!, root: root!, tmp, builds: BUILDS, order: buildsInRound, rssProbe: RSS_PROBE, opencodeVersion, log },
      errors,
    );
    results.scale = curves.main;
    if (COMPARE_BIN) (results.compare ??= { bin: COMPARE_BIN }).scale = curves.compare;
  }
}

interface EncryptionSide {
  rounds: number;
  pushMs: number;
  pullMs: number;
  totalMs: number;
  peakPushRssBytes: number;
  peakPullRssBytes: number;
  peakRssBytes: number;
  /** the round with the least push+pull time: noise on a busy machine only ever adds time */
  bestTotalMs: number;
}

/** Means over the complete rounds of each kind (f); undefined unless both kinds have one. */
function encryptionSummary(): { plain: EncryptionSide; encrypted: EncryptionSide; extra: number; bestExtra: number; pushExtra: number; pullExtra: number } | undefined {
  const rounds = (results.encryption?.rounds ?? []) as { kind: string; push: SessmigPhase; pull: SessmigPhase | null }[];
  const side = (kind: string): EncryptionSide | undefined => {
    const done = rounds.filter((x) => x.kind === kind && x.push.ok && x.pull?.ok);
    if (done.length === 0) return undefined;
    const mean = (f: (x: (typeof done)[number]) => number) => Math.round(done.reduce((sum, x) => sum + f(x), 0) / done.length);
    const peak = (f: (x: (typeof done)[number]) => SessmigPhase) => Math.max(...done.map((x) => f(x).peakRssBytes ?? f(x).polledHwmBytes));
    const pushMs = mean((x) => x.push.ms);
    const pullMs = mean((x) => x.pull!.ms);
    const peakPushRssBytes = peak((x) => x.push);
    const peakPullRssBytes = peak((x) => x.pull!);
    const bestTotalMs = Math.min(...done.map((x) => x.push.ms + x.pull!.ms));
    return { rounds: done.length, pushMs, pullMs, totalMs: pushMs + pullMs, peakPushRssBytes, peakPullRssBytes, peakRssBytes: Math.max(peakPushRssBytes, peakPullRssBytes), bestTotalMs };
  };
  const plain = side('plain');
  const encrypted = side('encrypted');
  if (!plain || !encrypted) return undefined;
  return {
    plain,
    encrypted,
    extra: encrypted.totalMs / plain.totalMs - 1,
    bestExtra: encrypted.bestTotalMs / plain.bestTotalMs - 1,
    pushExtra: encrypted.pushMs / plain.pushMs - 1,
    pullExtra: encrypted.pullMs / plain.pullMs - 1,
  };
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
  if (baseline && r.push?.ok && r.pull?.ok) {
    pass.pushPullOverBaselineReplay = ratios.pushPullOverBaseline! <= TARGETS.pushPullOverBaselineReplay;
    ratios.pullOverImport = r.pull.ms / baseline.importMs;
    pass.pullOverImport = ratios.pullOverImport <= TARGETS.pullOverImport;
  }
  if (r.pullOnly?.pull?.ok && r.pullOnly.baselineImportMs > 0) {
    ratios.pullOverImportWithoutLarge = (r.pullOnly.pullMedianMs ?? r.pullOnly.pull.ms) / r.pullOnly.baselineImportMs;
    pass.pullOverImportWithoutLarge = ratios.pullOverImportWithoutLarge <= TARGETS.pullOverImport;
  }
  // issue 22: the small sessions on their own, medians of the rounds
  const po = r.pullOnly;
  if (po?.pushPullMedianMs !== undefined && po.baselineExportMs > 0 && po.baselineImportMs > 0) {
    ratios.smallPushPullOverBaseline = po.pushPullMedianMs / (po.baselineExportMs + po.baselineImportMs);
    pass.smallPushPullOverBaseline = ratios.smallPushPullOverBaseline <= TARGETS.smallPushPullOverBaseline;
    ratios.smallPullOverImport = po.pullMedianMs / po.baselineImportMs;
    pass.smallPullOverImport = ratios.smallPullOverImport <= TARGETS.smallPullOverImport;
  }
  if (r.incremental?.ok && (po?.baselineExportMs ?? baseline?.exportMs)) {
    ratios.smallIncrementalOverExport = r.incremental.ms / (po?.baselineExportMs ?? baseline.exportMs);
    pass.smallIncrementalOverExport = ratios.smallIncrementalOverExport <= TARGETS.smallIncrementalOverExport;
  }
  const lo = r.largeOnly;
  if (lo?.pushPullMedianMs !== undefined && lo.baselineExportMs && lo.baselineImportMs) {
    ratios.largePushPullOverBaseline = lo.pushPullMedianMs / (lo.baselineExportMs + lo.baselineImportMs);
    pass.largePushPullOverBaseline = ratios.largePushPullOverBaseline <= TARGETS.largePushPullOverBaseline;
    pass.largePeakRss = lo.peakRssBytes < TARGETS.peakRssBytes;
  }
  if (r.scale) {
    const { ratios: curve } = scaleTable(r.scale as ScalePoint[]);
    for (const [k, v] of Object.entries(curve)) ratios[`scale_${k}`] = v;
    for (const k of ['pushPerSession', 'pullPerSession', 'incrementalPerSession']) if (curve[k] !== undefined) pass[`scale_${k}`] = curve[k]! <= TARGETS.scalePerSession;
    const points = (r.scale as ScalePoint[]).filter((p) => p.median);
    if (points.length) pass.scalePeakRss = Math.max(...points.map((p) => p.median!.peakRssBytes)) < TARGETS.peakRssBytes;
  }
  const peakOf = (phase: SessmigPhase | null | undefined) => (phase?.ok ? (phase.peakRssBytes ?? phase.polledHwmBytes) || 0 : 0);
  if (r.push?.ok) {
    const peak = Math.max(peakOf(r.push), peakOf(r.pull));
    if (peak) pass.peakRss = peak < TARGETS.peakRssBytes;
  }
  const enc = encryptionSummary();
  if (enc) {
    r.encryptionSummary = enc;
    ratios.encryptionExtra = enc.extra;
    ratios.encryptionExtraBest = enc.bestExtra;
    // Judged on the best round of each kind (load from other processes only ever adds time); the
    // means are reported beside it. With one round of each kind the two are the same.
    pass.encryptionExtra = enc.bestExtra <= TARGETS.encryptionExtra;
    if (enc.encrypted.peakRssBytes) pass.peakRssEncrypted = enc.encrypted.peakRssBytes < TARGETS.peakRssBytes;
  }
  r.ratios = ratios;
  r.pass = pass;
}

let exitCode = 0;
const rerender = process.env.BENCH_RERENDER;
if (rerender) {
  // Re-judge and re-render a finished run's results.json (e.g. after a change to the table), measuring nothing.
  const loaded = JSON.parse(await fs.readFile(rerender, 'utf8')) as Record<string, unknown>;
  for (const k of Object.keys(results)) delete results[k];
  Object.assign(results, loaded, { rerenderedAt: new Date().toISOString() });
  finish();
} else {
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
  results.loadAvgAtEnd = os.loadavg().map((v) => Number(v.toFixed(2)));
  results.finishedAt = new Date().toISOString();
  results.totalMs = Math.round(performance.now() - started);
}
if (results.errors?.length) exitCode = 1;
if (config.strict && Object.values(results.pass as Record<string, boolean>).some((ok) => !ok)) exitCode = exitCode || 1;
// results.json first: a fault in the rendering below must not lose a long run's figures
await fs.mkdir(OUT_DIR, { recursive: true });
if (!rerender) await fs.writeFile(path.join(OUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
const { text, md } = render();
if (rerender) await fs.writeFile(path.join(OUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
await fs.writeFile(path.join(OUT_DIR, 'results.md'), `${md}\n`);
if (results.scale?.length) {
  // A full run keeps its table and curve beside the bench (committed); a quick one only in bench/out/.
  const svg = scaleSvg(results.scale as ScalePoint[], `sessmig scale curve: opencode ${results.machine?.opencode ?? '?'}, ${results.machine?.nproc ?? '?'} CPUs, ${results.startedAt}`, results.compare?.scale as ScalePoint[] | undefined);
  await fs.writeFile(path.join(OUT_DIR, 'scale.svg'), svg);
  if (!config.quick && !rerender && process.env.BENCH_ONLY_SCALE !== '1') {
    await fs.writeFile(path.join(BENCH_DIR, 'scale.svg'), svg);
    await fs.writeFile(path.join(BENCH_DIR, 'RESULTS.md'), `${md}\n`);
  }
}
process.stdout.write(`\n${text}\n\nwrote ${path.relative(process.cwd(), path.join(OUT_DIR, 'results.json'))} and results.md (${s(results.totalMs)} s in all)\n`);
process.exitCode = exitCode;
