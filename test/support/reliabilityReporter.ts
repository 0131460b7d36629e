/**
 * Renders docs/RELIABILITY.md from the cases the tests recorded (test/support/reliability.ts).
 *
 * Runs in vitest's main process: onInit makes a fresh folder for the run's records and provides
 * it to the tests; onTestRunEnd renders the table — only when the run was full and green: every
 * test file of the suite ran, those that record cases passed, and no test name filter was set. A partial run
 * (one file, `-t`, a failure) leaves the document as it was and says so on stderr.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Reporter, TestModule, TestRunEndReason, Vitest } from 'vitest/node';
import type { StoredRecord } from './reliability.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
/** The run's records, one JSON line per recorded case, in the folder provided as `reliabilityRun`. */
export const RECORDS_FILE = 'records.jsonl';
export const RELIABILITY_DOC = path.join(REPO, 'docs', 'RELIABILITY.md');

/** Every test file of the suite (relative, sorted), and whether its source records cases. */
export function suiteFiles(root = path.join(REPO, 'test')): { file: string; records: boolean }[] {
  const out: { file: string; records: boolean }[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.test.ts')) {
        out.push({ file: path.relative(REPO, full).split(path.sep).join('/'), records: /\brecordFault\(/.test(readFileSync(full, 'utf8')) });
      }
    }
  };
  walk(root);
  return out.sort((a, b) => (a.file < b.file ? -1 : 1));
}

export class ReliabilityReporter implements Reporter {
  private dir: string | undefined;
  private vitest: Vitest | undefined;

  onInit(vitest: Vitest): void {
    this.vitest = vitest;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'sessmig-reliability-'));
    vitest.provide('reliabilityRun', this.dir);
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    if (!this.dir) return;
    try {
      const why = this.partial(testModules, unhandledErrors, reason);
      if (why) {
        process.stderr.write(`\ndocs/RELIABILITY.md not rewritten: ${why}\n`);
        return;
      }
      const records = readRecords(path.join(this.dir, RECORDS_FILE));
      writeFileSync(RELIABILITY_DOC, renderReliability(records, runFacts()));
      process.stderr.write(`\ndocs/RELIABILITY.md rewritten: ${records.length} recorded case(s)\n`);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
      this.dir = undefined;
    }
  }

  /** Why this run cannot produce the table, or undefined when it can. */
  private partial(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): string | undefined {
    if (reason !== 'passed' || unhandledErrors.length > 0) return `the run ${reason === 'passed' ? 'had unhandled errors' : reason}`;
    if (this.vitest?.config.testNamePattern) return 'a test name filter (-t) was set';
    const ran = new Map(testModules.map((module) => [path.relative(REPO, module.moduleId).split(path.sep).join('/'), module.state()]));
    const files = suiteFiles();
    if (!files.some((entry) => entry.records)) return 'no test file records cases';
    const missing = files.filter((entry) => !ran.has(entry.file)).map((entry) => entry.file);
    if (missing.length > 0) return `partial run (${missing.length} of ${files.length} test files did not run: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''})`;
    const notPassed = files.filter((entry) => entry.records && ran.get(entry.file) !== 'passed').map((entry) => entry.file);
    if (notPassed.length > 0) return `these recording files did not pass: ${notPassed.join(', ')}`;
    return undefined;
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

export interface RunFacts {
  date: string;
  commit: string;
  node: string;
}

function runFacts(): RunFacts {
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    // not a git checkout
  }
  return { date: new Date().toISOString().slice(0, 10), commit, node: process.version };
}

const AREAS: { area: StoredRecord['area']; title: string }[] = [
  { area: 'fault', title: 'Faults' },
  { area: 'bad input', title: 'Bad input' },
  { area: 'security', title: 'Security' },
];

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();
}

/** The document, deterministic for a given set of records (sorted; duplicates merged). */
export function renderReliability(records: StoredRecord[], facts: RunFacts): string {
  const rows = new Map<string, StoredRecord & { tests: Set<string> }>();
  for (const record of records) {
    const key = JSON.stringify([record.area, record.fault, record.target, record.outcome]);
    const row = rows.get(key);
    if (row) {
      row.lost += record.lost;
      row.tests.add(record.file);
    } else {
      rows.set(key, { ...record, tests: new Set([record.file]) });
    }
  }
  const sorted = [...rows.values()].sort((a, b) =>
    a.fault === b.fault ? (a.target === b.target ? (a.outcome < b.outcome ? -1 : 1) : a.target < b.target ? -1 : 1) : a.fault < b.fault ? -1 : 1,
  );
  const lost = sorted.reduce((sum, row) => sum + row.lost, 0);
  const targets = [...new Set(sorted.map((row) => row.target))].sort();
  const lines: string[] = [
    '# Reliability: faults and bad input tried, and what happened',
    '',
    '<!-- Generated by the test run (test/support/reliabilityReporter.ts) from the cases the tests',
    '     record with recordFault() after their assertions pass. Do not edit by hand: run `npm test`. -->',
    '',
    `Produced by a full, passing \`npm test\` on ${facts.date}, commit \`${facts.commit}\`, Node ${facts.node}.`,
    `**${sorted.length} cases** (${records.length} recorded runs) on ${targets.length} targets (${targets.map((t) => `\`${t}\``).join(', ')}); ` +
      `**sessions lost: ${lost}**.`,
    '',
    'Targets: `file` a local-folder remote; `s3rver` a lenient S3 on loopback; `ceph` a real Ceph RGW on',
    'loopback (strict: signatures, expiry, conditional writes); `local` no remote involved. Every case',
    'runs the real sessmig CLI or its real parsers against real opencode; "sessions lost" counts sessions',
    'missing or changed on either host after the case, as the test checked.',
  ];
  for (const { area, title } of AREAS) {
    const inArea = sorted.filter((row) => row.area === area);
    if (inArea.length === 0) continue;
    lines.push('', `## ${title} (${inArea.length})`, '', '| fault | target | outcome | sessions lost | test |', '| --- | --- | --- | ---: | --- |');
    for (const row of inArea) {
      const tests = [...row.tests].sort().map((file) => `\`${file}\``).join(', ');
      lines.push(`| ${cell(row.fault)} | ${cell(row.target)} | ${cell(row.outcome)} | ${row.lost} | ${tests} |`);
    }
  }
  lines.push('');
  return lines.join('\n');
}
