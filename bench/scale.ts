/**
 * The scale curve of `npm run bench` (issue 22): sessmig push, pull and incremental push (one session
 * changed) at N = 20, 100, 300 sessions, per session and in peak RSS, with medians over rounds.
 *
 * Making N sessions cheaply: a handful of real template sessions (`opencode run` against the fake LLM:
 * a plain answer, a `write` tool call, a `task` call with its child session) are exported once, then
 * cloned N times with fresh ids (the 14-character random tail of every ses_/msg_/prt_ id is replaced
 * per clone; the 12-hex time head is kept, so message and part order stays; the templates are kept
 * in the cache too, their repository path replaced per host) and replayed into the
 * source host through one `opencode serve` by sessmig's own replay (src/opencode/replay.ts: events on
 * POST /sync/replay, each session read back and compared), or through `opencode import` where the
 * version has no replay. Every tenth root gets a three-item todo list (todos are not in an export).
 *
 * The result is cached under os.tmpdir()/sessmig-bench-cache/<opencode version>-scale-v1-n<N>/
 * (`host/` is the source host at a fixed path, since every session records its directory;
 * `pristine/` a copy of its opencode data dir; `ready.json` the counts). Each round restores
 * `pristine/` over the host's data dir and clears sessmig's state, so every round starts from the
 * same N sessions: push to a fresh remote prefix, pull into a fresh host (checked: the same session,
 * message and part counts), `opencode run --session <one> "more"`, push again.
 * BENCH_SCALE_REBUILD=1 throws the cache away first.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FakeLlm } from '../test/support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../test/support/host.js';
import type { S3Target } from '../test/support/s3.js';
import { OpencodeServer } from '../src/opencode/server.js';
import { replayAvailable, replaySession } from '../src/opencode/replay.js';
import { parseTiming, runProc, tail, type SessmigPhase } from './proc.js';

const MINUTE = 60_000;
/** Bump when the synthesized shape changes: the cache key holds it. */
const SHAPE = 'scale-v1';

export interface ScaleOptions {
  ns: number[];
  rounds: number;
  jobs: number;
  llm: FakeLlm;
  s3: S3Target;
  /** The bench's temp dir (pulled-into hosts go there) and TMPDIR of every child. */
  root: string;
  tmp: string;
  /** The builds measured (bin/sessmig.js each), every round in the order `order` gives. */
  builds: { name: string; bin: string }[];
  order(round: number): { name: string; bin: string }[];
  rssProbe: string;
  opencodeVersion: string;
  log(message: string): void;
}

export interface ScaleRound {
  push: SessmigPhase;
  pull: SessmigPhase | null;
  incremental: SessmigPhase | null;
  /** the pulled host holds as many sessions/messages/parts as the source */
  verified: boolean;
}

export interface ScalePoint {
  n: number;
  /** every session pushed and pulled, children included */
  sessions: number;
  messages: number;
  parts: number;
  cache: { dir: string; reused: boolean; buildMs: number | null };
  rounds: ScaleRound[];
  /** medians over the complete rounds, ms (whole command) and ms per session */
  median: { pushMs: number; pullMs: number; incrementalMs: number; pushPerSession: number; pullPerSession: number; incrementalPerSession: number; peakRssBytes: number } | null;
}

interface Counts {
  sessions: number;
  children: number;
  messages: number;
  parts: number;
}

async function counts(host: Host): Promise<Counts> {
  const [row] = await host.db<Record<keyof Counts, number>>(
    'SELECT (SELECT count(*) FROM session) AS sessions, (SELECT count(*) FROM session WHERE parent_id IS NOT NULL) AS children, (SELECT count(*) FROM message) AS messages, (SELECT count(*) FROM part) AS parts',
  );
  return { sessions: Number(row?.sessions ?? 0), children: Number(row?.children ?? 0), messages: Number(row?.messages ?? 0), parts: Number(row?.parts ?? 0) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : Math.round((sorted[mid - 1]! + sorted[mid]!) / 2);
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** 14 base62 characters, a pure function of the clone number and the original tail. */
function cloneTail(clone: number, tail14: string): string {
  const digest = createHash('sha256').update(`${clone}:${tail14}`).digest();
  let out = '';
  for (let i = 0; i < 14; i++) out += BASE62[digest[i]! % 62];
  return out;
}

const ID = /\b(ses|msg|prt)_([0-9a-f]{12})([0-9A-Za-z]{14})\b/g;

/** The template group's JSON texts with every id given this clone's tail (the time head kept). */
export function cloneGroup(texts: string[], clone: number): string[] {
  return texts.map((text) => text.replace(ID, (_m, kind: string, head: string, t: string) => `${kind}_${head}${cloneTail(clone, t)}`));
}

/** Template groups: [root export, ...its children's exports], as JSON texts (directory = repo). */
async function makeTemplates(host: Host, repo: string, log: (m: string) => void): Promise<string[][]> {
  const prompts = [
    'scale: explain the module layout [[big 8]]',
    'scale: add a note file [[write scale-note.txt a note\\nsecond line]]',
    'scale: delegate a subtask [[task child of scale: summarize the repository]]',
    'scale: answer briefly [[big 2]]',
    'scale: write another note [[write scale-other.txt other note]]',
  ];
  log(`scale: making ${prompts.length} template sessions with opencode run`);
  const groups: string[][] = [];
  for (const prompt of prompts) {
    const { sessionID } = await host.run(repo, prompt, { timeoutMs: 3 * MINUTE });
    const ids = [sessionID, ...(await host.children(sessionID))];
    const texts: string[] = [];
    for (const id of ids) {
      const out = await host.opencode(['export', id], { cwd: repo, timeoutMs: 2 * MINUTE });
      const start = out.stdout.indexOf('{');
      texts.push(JSON.stringify(JSON.parse(out.stdout.slice(start))));
    }
    groups.push(texts);
    await host.opencode(['session', 'delete', sessionID], { cwd: repo, timeoutMs: 2 * MINUTE });
  }
  return groups;
}

/**
 * The template groups, made once per opencode version and kept beside the hosts
 * (`…-templates.json`, with the repository path they were made in, which each host's own replaces).
 */
async function cachedTemplates(o: ScaleOptions, host: Host, repo: string): Promise<string[][]> {
  const file = path.join(os.tmpdir(), 'sessmig-bench-cache', `${o.opencodeVersion.replace(/[^0-9A-Za-z.-]/g, '_')}-${SHAPE}-templates.json`);
  let saved = await fs.readFile(file, 'utf8').then((text) => JSON.parse(text) as { repo: string; groups: string[][] }, () => undefined);
  if (!saved) {
    saved = { repo, groups: await makeTemplates(host, repo, o.log) };
    await fs.writeFile(file, JSON.stringify(saved));
  }
  const from = JSON.stringify(saved.repo).slice(1, -1);
  const to = JSON.stringify(repo).slice(1, -1);
  return saved.groups.map((group) => group.map((text) => text.split(from).join(to)));
}

/** Builds (or finds) the cached source host with `n` root sessions. */
async function sourceHost(o: ScaleOptions, n: number): Promise<{ host: Host; repo: string; dir: string; pristine: string; reused: boolean; buildMs: number | null; ready: Counts }> {
  const dir = path.join(os.tmpdir(), 'sessmig-bench-cache', `${o.opencodeVersion.replace(/[^0-9A-Za-z.-]/g, '_')}-${SHAPE}-n${n}`);
  const pristine = path.join(dir, 'pristine');
  const readyFile = path.join(dir, 'ready.json');
  if (process.env.BENCH_SCALE_REBUILD === '1') await fs.rm(dir, { recursive: true, force: true });
  const cached = await fs.readFile(readyFile, 'utf8').then((text) => JSON.parse(text) as Counts, () => undefined);
  const host = await createHost(`scale-${n}`, { root: path.join(dir, 'host') });
  host.env.TMPDIR = o.tmp;
  const repo = path.join(host.workDir, 'proj');
  if (cached) return { host, repo, dir, pristine, reused: true, buildMs: null, ready: cached };

  const t0 = performance.now();
  await fs.rm(dir, { recursive: true, force: true });
  const fresh = await createHost(`scale-${n}`, { root: path.join(dir, 'host'), llm: o.llm });
  fresh.env.TMPDIR = o.tmp;
  await createRepo(repo);
  await fresh.db('SELECT 1');
  const templates = await cachedTemplates(o, fresh, repo);
  const work = path.join(dir, 'blobs');
  await fs.mkdir(work, { recursive: true });
  const server = await OpencodeServer.start({ bin: fresh.opencodeBin, env: fresh.env, cwd: repo, timeoutMs: 5 * MINUTE, tempDir: o.tmp });
  const roots: string[] = [];
  try {
    const replay = await replayAvailable(server);
    o.log(`scale: bringing ${n} synthesized sessions into the source host through ${replay ? "sessmig's replay (one opencode serve)" : '`opencode import` (no replay on this version)'}`);
    for (let i = 0; i < n; i++) {
      const group = cloneGroup(templates[i % templates.length]!, i);
      for (const [k, text] of group.entries()) {
        const file = path.join(work, `${i}-${k}.json`);
        await fs.writeFile(file, text);
        if (replay) await replaySession(server, file, { tempDir: o.tmp });
        else await fresh.opencode(['import', file], { cwd: repo, timeoutMs: 5 * MINUTE });
        await fs.rm(file, { force: true });
      }
      roots.push((JSON.parse(group[0]!) as { info: { id: string } }).info.id);
      if ((i + 1) % 50 === 0) o.log(`scale: ${i + 1}/${n}`);
    }
  } finally {
    await server.stop();
  }
  const now = Date.now();
  const todoRows = roots
    .filter((_, i) => i % 10 === 0)
    .flatMap((id) => [0, 1, 2].map((p) => `('${id}', 'scale todo ${p}', '${p === 0 ? 'completed' : 'pending'}', 'medium', ${p}, ${now}, ${now})`));
  if (todoRows.length) await fresh.db(`INSERT INTO todo (session_id, content, status, priority, position, time_created, time_updated) VALUES ${todoRows.join(', ')}`);
  const ready = await counts(fresh);
  await fs.rm(work, { recursive: true, force: true });
  await fs.cp(path.join(fresh.dataDir, 'opencode'), pristine, { recursive: true });
  await fs.writeFile(readyFile, `${JSON.stringify(ready)}\n`);
  return { host: fresh, repo, dir, pristine, reused: false, buildMs: Math.round(performance.now() - t0), ready };
}

/** One sessmig command with --json --timing, its peak RSS from bench/rss-probe.mjs. */
async function sessmig(o: ScaleOptions, bin: string, host: Host, repo: string, command: 'push' | 'pull', remote: string, label: string): Promise<SessmigPhase> {
  const io = path.join(o.root, 'io');
  await fs.mkdir(io, { recursive: true });
  const stdoutFile = path.join(io, `${label}.out`);
  const stderrFile = path.join(io, `${label}.err`);
  const rssFile = path.join(io, `${label}.rss.json`);
  const env = { ...host.env, ...o.s3.env, SESSMIG_OPENCODE: host.opencodeBin, BENCH_RSS_FILE: rssFile };
  const args = ['--import', o.rssProbe, bin, command, '--remote', remote, '--jobs', String(o.jobs), '--json', '--timing'];
  const r = await runProc(process.execPath, args, { cwd: repo, env, stdoutFile, stderrFile, timeoutMs: 30 * MINUTE, pollHwm: true });
  let peakRssBytes: number | null = null;
  try {
    peakRssBytes = JSON.parse(await fs.readFile(rssFile, 'utf8')).maxRssKiB * 1024;
  } catch {
    /* killed before its exit hook ran */
  }
  const phase: SessmigPhase = { ok: r.exitCode === 0, ms: Math.round(r.ms), exitCode: r.exitCode, peakRssBytes, polledHwmBytes: r.hwmBytes };
  const timing = parseTiming(await fs.readFile(stderrFile, 'utf8').catch(() => ''));
  if (timing) phase.timing = timing;
  if (!phase.ok) phase.error = `sessmig ${command} (${label}) exit ${r.exitCode}: ${(await tail(stderrFile, 1200)).trim()}`;
  const phases = timing?.phases.slice(0, 5).map((x) => `${x.phase} ${(x.ms / 1000).toFixed(1)}`).join(', ');
  o.log(`${label}: ${phase.ok ? 'ok' : 'FAILED'} ${(r.ms / 1000).toFixed(1)} s, peak RSS ${((peakRssBytes ?? r.hwmBytes) / 1e6).toFixed(1)} MB${phases ? ` [${phases}]` : ''}${phase.error ? ` ${phase.error}` : ''}`);
  return phase;
}

/** Runs the whole curve for every build (by name); errors are collected, not thrown, so one bad N leaves the others. */
export async function runScale(o: ScaleOptions, errors: string[]): Promise<Record<string, ScalePoint[]>> {
  const out: Record<string, ScalePoint[]> = Object.fromEntries(o.builds.map((b) => [b.name, []]));
  for (const n of o.ns) {
    const src = await sourceHost(o, n);
    o.log(`scale N=${n}: source host ${src.reused ? 'from the cache' : `built in ${((src.buildMs ?? 0) / 1000).toFixed(1)} s`} (${src.ready.sessions} sessions, ${src.ready.children} children, ${src.ready.messages} messages) in ${src.dir}`);
    await src.host.writeOpencodeConfig(o.llm); // this run's fake LLM port, for the continued session
    const points = new Map(o.builds.map((b) => [b.name, { n, sessions: src.ready.sessions, messages: src.ready.messages, parts: src.ready.parts, cache: { dir: src.dir, reused: src.reused, buildMs: src.buildMs }, rounds: [], median: null } as ScalePoint]));
    for (let round = 1; round <= o.rounds; round++) {
      for (const build of o.order(round)) {
        const point = points.get(build.name)!;
        // the same N sessions every round, and no sync state: a first push to a fresh prefix
        await fs.rm(path.join(src.host.dataDir, 'opencode'), { recursive: true, force: true });
        await fs.cp(src.pristine, path.join(src.host.dataDir, 'opencode'), { recursive: true });
        await fs.rm(path.join(src.host.stateDir, 'sessmig'), { recursive: true, force: true });
        const label = `scale-n${n}-r${round}${o.builds.length > 1 ? `-${build.name}` : ''}`;
        const remote = o.s3.remoteUrl(`${label}-${Date.now().toString(36)}`);
        const push = await sessmig(o, build.bin, src.host, src.repo, 'push', remote, `${label}-push`);
        const result: ScaleRound = { push, pull: null, incremental: null, verified: false };
        point.rounds.push(result);
        if (!push.ok) {
          errors.push(push.error!);
          continue;
        }
        const dest = await createHost(`${label}-dest`, { root: path.join(o.root, `${label}-dest`) });
        dest.env.TMPDIR = o.tmp;
        const destRepo = path.join(dest.workDir, 'proj');
        await createRepo(destRepo);
        await dest.db('SELECT 1'); // the first open migrates the database: not part of the pull
        result.pull = await sessmig(o, build.bin, dest, destRepo, 'pull', remote, `${label}-pull`);
        if (result.pull.ok) {
          const got = await counts(dest);
          result.verified = got.sessions === src.ready.sessions && got.messages === src.ready.messages && got.parts === src.ready.parts;
          if (!result.verified) errors.push(`scale N=${n} round ${round} (${build.name}): the pulled host holds ${JSON.stringify(got)}, the source ${JSON.stringify(src.ready)}`);
        } else errors.push(result.pull.error!);
        await fs.rm(dest.root, { recursive: true, force: true });

        const [one] = await src.host.db<{ id: string }>('SELECT id FROM session WHERE parent_id IS NULL ORDER BY id LIMIT 1');
        await src.host.run(src.repo, 'more', { session: one!.id, timeoutMs: 3 * MINUTE });
        result.incremental = await sessmig(o, build.bin, src.host, src.repo, 'push', remote, `${label}-incremental`);
        if (!result.incremental.ok) errors.push(result.incremental.error!);
      }
    }
    for (const build of o.builds) {
      const point = points.get(build.name)!;
      const done = point.rounds.filter((r) => r.push.ok && r.pull?.ok && r.incremental?.ok && r.verified);
      if (done.length) {
        const pushMs = median(done.map((r) => r.push.ms));
        const pullMs = median(done.map((r) => r.pull!.ms));
        const incrementalMs = median(done.map((r) => r.incremental!.ms));
        const rss = (p: SessmigPhase) => p.peakRssBytes ?? p.polledHwmBytes;
        point.median = {
          pushMs,
          pullMs,
          incrementalMs,
          pushPerSession: pushMs / point.sessions,
          pullPerSession: pullMs / point.sessions,
          incrementalPerSession: incrementalMs / point.sessions,
          peakRssBytes: Math.max(...done.flatMap((r) => [rss(r.push), rss(r.pull!), rss(r.incremental!)])),
        };
      }
      out[build.name]!.push(point);
    }
  }
  return out;
}

/**
 * The curve as an SVG (no library): per-session time (ms) of push, pull and incremental push against
 * N on the left, peak RSS (MB) against N on the right; both axes linear, N at the measured points.
 */
export function scaleSvg(points: ScalePoint[], title: string, before?: ScalePoint[]): string {
  const ok = points.filter((p) => p.median);
  const old = (before ?? []).filter((p) => p.median);
  const W = 760;
  const H = 330;
  const pad = { l: 58, r: 16, t: 46, b: 50 };
  const panelW = (W - pad.l - pad.r - 70) / 2;
  const panelH = H - pad.t - pad.b;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const maxN = Math.max(1, ...ok.map((p) => p.n));
  const series = [
    { name: 'push', color: '#1f77b4', get: (p: ScalePoint) => p.median!.pushPerSession },
    { name: 'pull', color: '#d62728', get: (p: ScalePoint) => p.median!.pullPerSession },
    { name: 'incremental push', color: '#2ca02c', get: (p: ScalePoint) => p.median!.incrementalPerSession },
  ];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13">${esc(title)}</text>`,
  ];
  const panel = (x0: number, label: string, lines: { name: string; color: string; get: (p: ScalePoint) => number }[], unit: string) => {
    const maxY = Math.max(1e-9, ...[...ok, ...old].flatMap((p) => lines.map((l) => l.get(p)))) * 1.1;
    const X = (n: number) => x0 + (n / maxN) * panelW;
    const Y = (v: number) => pad.t + panelH - (v / maxY) * panelH;
    out.push(`<text x="${x0 + panelW / 2}" y="${pad.t - 10}" text-anchor="middle">${esc(label)}</text>`);
    out.push(`<line x1="${x0}" y1="${pad.t + panelH}" x2="${x0 + panelW}" y2="${pad.t + panelH}" stroke="#333"/><line x1="${x0}" y1="${pad.t}" x2="${x0}" y2="${pad.t + panelH}" stroke="#333"/>`);
    for (let k = 0; k <= 4; k++) {
      const v = (maxY / 4) * k;
      out.push(`<line x1="${x0 - 3}" y1="${Y(v)}" x2="${x0 + panelW}" y2="${Y(v)}" stroke="#ddd"/><text x="${x0 - 5}" y="${Y(v) + 4}" text-anchor="end">${v >= 100 ? v.toFixed(0) : v.toFixed(1)}</text>`);
    }
    for (const p of ok) out.push(`<text x="${X(p.n)}" y="${pad.t + panelH + 15}" text-anchor="middle">${p.n}</text>`);
    out.push(`<text x="${x0 + panelW / 2}" y="${pad.t + panelH + 32}" text-anchor="middle">N root sessions</text>`);
    out.push(`<text x="${x0 - 42}" y="${pad.t + panelH / 2}" text-anchor="middle" transform="rotate(-90 ${x0 - 42} ${pad.t + panelH / 2})">${esc(unit)}</text>`);
    lines.forEach((l, i) => {
      const pts = ok.map((p) => `${X(p.n).toFixed(1)},${Y(l.get(p)).toFixed(1)}`).join(' ');
      out.push(`<polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="2"/>`);
      for (const p of ok) out.push(`<circle cx="${X(p.n).toFixed(1)}" cy="${Y(l.get(p)).toFixed(1)}" r="3" fill="${l.color}"/>`);
      out.push(`<rect x="${x0 + panelW - 120}" y="${pad.t + 6 + i * 14}" width="10" height="3" fill="${l.color}"/><text x="${x0 + panelW - 106}" y="${pad.t + 10 + i * 14}">${esc(l.name)}</text>`);
      if (old.length) {
        // the compared build (before), dashed
        out.push(`<polyline points="${old.map((p) => `${X(p.n).toFixed(1)},${Y(l.get(p)).toFixed(1)}`).join(' ')}" fill="none" stroke="${l.color}" stroke-width="1.5" stroke-dasharray="5 4" opacity="0.8"/>`);
      }
    });
    if (old.length) out.push(`<text x="${x0 + panelW - 120}" y="${pad.t + 10 + lines.length * 14}" fill="#555">dashed: before</text>`);
  };
  panel(pad.l, 'time per session (median)', series, 'ms per session');
  panel(pad.l + panelW + 70, "sessmig's peak RSS (max over push, pull, incremental)", [{ name: 'peak RSS', color: '#9467bd', get: (p) => p.median!.peakRssBytes / 1e6 }], 'MB');
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Markdown table of the curve, and the issue-22 ratios N=max over N=min. */
export function scaleTable(points: ScalePoint[]): { lines: string[]; ratios: Record<string, number> } {
  const f = (ms: number) => (ms / 1000).toFixed(1);
  const lines = [
    '| N roots | sessions (with children) | push s (per session ms) | pull s (per session ms) | incremental push s (per session ms) | peak RSS MB | rounds |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...points.map((p) =>
      p.median
        ? `| ${p.n} | ${p.sessions} | ${f(p.median.pushMs)} (${p.median.pushPerSession.toFixed(0)}) | ${f(p.median.pullMs)} (${p.median.pullPerSession.toFixed(0)}) | ${f(p.median.incrementalMs)} (${p.median.incrementalPerSession.toFixed(1)}) | ${(p.median.peakRssBytes / 1e6).toFixed(0)} | ${p.rounds.filter((r) => r.verified).length}/${p.rounds.length} |`
        : `| ${p.n} | ${p.sessions} | — | — | — | — | 0/${p.rounds.length} |`,
    ),
  ];
  const ok = points.filter((p) => p.median);
  const ratios: Record<string, number> = {};
  if (ok.length >= 2) {
    const lo = ok[0]!;
    const hi = ok[ok.length - 1]!;
    ratios.pushPerSession = hi.median!.pushPerSession / lo.median!.pushPerSession;
    ratios.pullPerSession = hi.median!.pullPerSession / lo.median!.pullPerSession;
    ratios.incrementalPerSession = hi.median!.incrementalPerSession / lo.median!.incrementalPerSession;
    ratios.peakRss = hi.median!.peakRssBytes / lo.median!.peakRssBytes;
  }
  return { lines, ratios };
}
