/**
 * The registry behind docs/RELIABILITY.md: a fault or bad-input test calls `recordFault` once its
 * assertions have passed, and the row lands in the run's records (one JSON line each, in a folder
 * that test/support/reliabilityReporter.ts creates and provides). At the end of a full, passing
 * run the reporter renders the table; the document is never written by hand.
 *
 *   recordFault({ area: 'fault', fault: 'S3 server killed mid-pull', target: 's3rver', outcome: 'exit 1; re-run pulls everything' });
 *
 * Outside a run of this project's vitest config (no folder provided) a call does nothing.
 */
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, inject } from 'vitest';
import { RECORDS_FILE } from './reliabilityReporter.js';

declare module 'vitest' {
  interface ProvidedContext {
    /** The folder this run's records go to (absent when the reliability reporter is not loaded). */
    reliabilityRun?: string;
  }
}

export type ReliabilityArea = 'fault' | 'bad input' | 'security';

/** Where the case ran: a remote kind, or `local` for cases that need no remote (parsers, temp files, opencode). */
export type ReliabilityTarget = 'file' | 's3rver' | 'ceph' | 'external' | 'local' | (string & {});

export interface FaultRecord {
  area: ReliabilityArea;
  /** What was done to sessmig, in a few words ("blob truncated in the remote"). */
  fault: string;
  target: ReliabilityTarget;
  /** What sessmig did about it, as the test asserted ("refused, exit 3; nothing imported"). */
  outcome: string;
  /** Sessions lost on either host; the tests assert 0 before they record. */
  lost?: number;
}

export interface StoredRecord extends Required<FaultRecord> {
  /** The test file, relative to the repository. */
  file: string;
  test: string;
}

/** Records one case that a test just proved. Call it after the test's assertions. */
export function recordFault(record: FaultRecord): void {
  const dir = inject('reliabilityRun');
  if (!dir) return;
  const state = expect.getState();
  const stored: StoredRecord = {
    area: record.area,
    fault: record.fault,
    target: record.target,
    outcome: record.outcome,
    lost: record.lost ?? 0,
    file: path.relative(fileURLToPath(new URL('../..', import.meta.url)), state.testPath ?? '').split(path.sep).join('/'),
    test: state.currentTestName ?? '',
  };
  // One write per line with O_APPEND: lines from concurrent workers do not interleave.
  appendFileSync(path.join(dir, RECORDS_FILE), `${JSON.stringify(stored)}\n`);
}
