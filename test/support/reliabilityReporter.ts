/**
 * Renders docs/RELIABILITY.md from the cases the tests recorded (test/support/reliability.ts).
 *
 * Runs in vitest's main process: onInit makes a fresh folder for the run's records and provides
 * it to the tests; onTestRunEnd merges them into the document. The document keeps, for every
 * test file that records cases, the rows of the last run of that file that passed: a file that
 * ran and passed replaces its rows; a file that did not run, or failed, keeps its old ones; a
 * file that no longer records anything loses them. So a partial run (one file) updates that
 * file's rows and never shrinks the table to itself. A run with a test name filter (-t) changes
 * nothing. The raw rows ride along at the end of the document in a comment, for the next merge.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reporter, TestModule, TestRunEndReason, Vitest } from 'vitest/node';
import type { StoredRecord } from './reliability.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
/** The run's records, one JSON line per recorded case, in the folder provided as `reliabilityRun`. */
export const RECORDS_FILE = 'records.jsonl';
export const RELIABILITY_DOC = path.join(REPO, 'docs', 'RELIABILITY.md');
const DATA_START = '<!-- reliability-data';
const DATA_END = '-->';

/** A recorded case and the run of its file that produced it. */
export interface DocumentRecord extends StoredRecord {
  date: string;
  commit: string;
}

/** Test files (relative, sorted) whose source records cases. */
export function recordingFiles(root = path.join(REPO, 'test')): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.test.ts') && /\brecordFault\(/.test(readFileSync(full, 'utf8'))) {
        out.push(relative(full));
      }
    }
  };
  walk(root);
  return out.sort();
}

function relative(file: string): string {
  return path.relative(REPO, file).split(path.sep).join('/');
}

export class ReliabilityReporter implements Reporter {
  private dir: string | undefined;
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sessmig-reliability-'));
    this.dir = dir;
    vitest.provide('reliabilityRun', dir);
    // An interrupted run never reaches onTestRunEnd.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    if (!this.dir) return;
    try {
      if (this.vitest?.config.testNamePattern) {
        process.stderr.write('\ndocs/RELIABILITY.md unchanged: a test name filter (-t) was set\n');
        return;
      }
      const passed = new Set(testModules.filter((module) => module.state() === 'passed').map((module) => relative(module.moduleId)));
      const recording = new Set(recordingFiles());
      const updated = [...passed].filter((file) => recording.has(file)).sort();
      if (updated.length === 0) return; // no file that records cases ran: nothing to say
      let previous: DocumentRecord[] = [];
      let old = '';
      try {
        old = readFileSync(RELIABILITY_DOC, 'utf8');
        previous = parseDocumentRecords(old);
      } catch {
        // no document yet
      }
      const facts = runFacts();
      const fresh = readRecords(path.join(this.dir, RECORDS_FILE))
        .filter((record) => updated.includes(record.file))
        .map((record) => ({ ...record, date: facts.date, commit: facts.commit }));
      const kept = previous.filter((record) => recording.has(record.file) && !updated.includes(record.file));
      const merged = [...kept, ...fresh];
      const text = renderReliability(merged);
      // The tracked document is rewritten on demand only (`npm run reliability`): a plain `npm test`
      // leaves the working tree clean and renders into test-output/ for a look.
      const target = process.env.SESSMIG_WRITE_RELIABILITY === '1' ? RELIABILITY_DOC : path.join(REPO, 'test-output', 'RELIABILITY.md');
      mkdirSync(path.dirname(target), { recursive: true });
      if (text !== old) writeFileSync(target, text);
      if (target !== RELIABILITY_DOC && text !== old) process.stderr.write(`\ndocs/RELIABILITY.md differs from this run's cases (rendered to ${path.relative(REPO, target)}); \`npm run reliability\` rewrites it\n`);
      const notRun = [...recording].filter((file) => !passed.has(file));
      process.stderr.write(
        `\ndocs/RELIABILITY.md: ${fresh.length} case(s) from ${updated.length} file(s) of this run` +
          (notRun.length > 0 ? `; rows of ${notRun.length} file(s) that did not run or pass here left as they were (${notRun.join(', ')})` : '') +
          '\n',
      );
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      this.dir = undefined;
    }
  }
}

function readRecords(file: string): StoredRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as StoredRecord);
}

interface RunFacts {
  date: string;
  commit: string;
}

function runFacts(): RunFacts {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  return { date: new Date().toISOString().slice(0, 10), commit };
}

const AREAS: { area: StoredRecord['area']; title: string }[] = [
  { area: 'fault', title: 'Faults' },
  { area: 'bad input', title: 'Bad input' },
  { area: 'security', title: 'Security' },
];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
}

/** The raw rows a document carries (its last comment), for the next merge. */
export function parseDocumentRecords(text: string): DocumentRecord[] {
  const at = text.lastIndexOf(DATA_START);
  if (at < 0) return [];
  const body = text.slice(at + DATA_START.length, text.indexOf(DATA_END, at));
  return body
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as DocumentRecord);
}

function compare(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareText(a: string, b: string): number {
  return compare(a.toLowerCase(), b.toLowerCase()) || compare(a, b);
}

/** The document, deterministic for a given set of records (sorted; duplicates merged). */
export function renderReliability(records: DocumentRecord[]): string {
  const sortedRecords = [...records].sort(
    (a, b) => compare(a.file, b.file) || compare(a.test, b.test) || compare(a.fault, b.fault) || compare(a.target, b.target) || compare(a.outcome, b.outcome),
  );
  // One row per fault and outcome; the targets it was tried on share the row.
  const rows = new Map<string, DocumentRecord & { targets: Set<string>; tests: Set<string> }>();
  for (const record of sortedRecords) {
    const key = JSON.stringify([record.area, record.fault, record.outcome]);
    const row = rows.get(key);
    if (row) {
      row.lost += record.lost;
      row.targets.add(record.target);
      row.tests.add(record.file);
    } else {
      rows.set(key, { ...record, targets: new Set([record.target]), tests: new Set([record.file]) });
    }
  }
  const sorted = [...rows.values()].sort((a, b) => compareText(a.fault, b.fault) || compareText(a.outcome, b.outcome));
  const cases = new Set(sortedRecords.map((record) => JSON.stringify([record.area, record.fault, record.target]))).size;
  const lost = sorted.reduce((sum, row) => sum + row.lost, 0);
  const targets = [...new Set(sortedRecords.map((row) => row.target))].sort();
  const runs = new Map<string, { date: string; commit: string; cases: number }>();
  for (const record of sortedRecords) {
    const run = runs.get(record.file) ?? { date: record.date, commit: record.commit, cases: 0 };
    run.cases++;
    runs.set(record.file, run);
  }
  const dates = [...new Set(sortedRecords.map((record) => record.date))].sort();
  const lines: string[] = [
    '# Reliability: faults and bad input tried, and what happened',
    '',
    '<!-- Generated by the test run (test/support/reliabilityReporter.ts) from the cases the tests',
    '     record with recordFault() after their assertions pass. Do not edit by hand: run `npm test`. -->',
    '',
    `Produced by the test runs of ${dates.length === 0 ? '—' : dates.length === 1 ? dates[0] : `${dates[0]} to ${dates[dates.length - 1]}`} (each test file's last passing run; see "Runs" below).`,
    `**${cases} cases** (a fault or input on one target; ${records.length} recorded) on ${targets.length} targets (${targets.map((t) => `\`${t}\``).join(', ')}); ` +
      `**sessions lost: ${lost}**.`,
    '',
    'Targets: `file` a local-folder remote; `s3rver` a lenient S3 on loopback; `ceph` a real Ceph RGW on',
    'loopback (strict: signatures, expiry, conditional writes); `local` no remote involved. Every case',
    'runs the real sessmig CLI, or its real parsers, with real opencode; "sessions lost" counts sessions',
    'missing or changed on either host after the case, as the test checked before recording it.',
  ];
  for (const { area, title } of AREAS) {
    const inArea = sorted.filter((row) => row.area === area);
    if (inArea.length === 0) continue;
    lines.push('', `## ${title} (${inArea.length})`, '', '| fault | targets | outcome | sessions lost | test |', '| --- | --- | --- | ---: | --- |');
    for (const row of inArea) {
      const tests = [...row.tests].sort().map((file) => `\`${file}\``).join(', ');
      const on = [...row.targets].sort().map((target) => cell(target)).join(', ');
      lines.push(`| ${cell(row.fault)} | ${on} | ${cell(row.outcome)} | ${row.lost} | ${tests} |`);
    }
  }
  lines.push('', '## Runs', '', '| test file | last passing run | commit | cases |', '| --- | --- | --- | ---: |');
  for (const [file, run] of [...runs].sort((a, b) => compare(a[0], b[0]))) lines.push(`| \`${file}\` | ${run.date} | \`${run.commit}\` | ${run.cases} |`);
  lines.push('', DATA_START, ...sortedRecords.map((record) => JSON.stringify(record).replace(/--/g, '-\\u002d')), DATA_END, '');
  return lines.join('\n');
}
