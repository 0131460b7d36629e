import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * What the push on idle (the opencode plugin) leaves for `sessmig status` and for the plugin to
 * report: `$XDG_STATE_HOME/sessmig/auto-push/<worktree key>.json`, plus a request stamp (the time
 * of the last idle event, `<key>.request`) that debounces pushes across processes, and a log.
 */
export type AutoPushResult = 'pushed' | 'skipped' | 'failed';

export interface AutoPushRecord {
  startedAt: string;
  finishedAt: string;
  result: AutoPushResult;
  /** Why it was skipped or failed, or what was pushed. */
  message: string;
  checkpoint?: string;
}

export interface AutoPushState {
  worktree: string;
  /** The worktree's folder, for the plugin to find its own worktree's record. */
  root: string;
  last: AutoPushRecord | null;
}

export function autoPushDir(stateDir: string): string {
  return path.join(stateDir, 'auto-push');
}

const stateFile = (stateDir: string, key: string) => path.join(autoPushDir(stateDir), `${key}.json`);
const requestFile = (stateDir: string, key: string) => path.join(autoPushDir(stateDir), `${key}.request`);
export const autoPushLog = (stateDir: string, key: string) => path.join(autoPushDir(stateDir), `${key}.log`);

async function writeAtomic(file: string, text: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`; // unique per call: two commands may run in one process (main() as a library)
  await writeFile(temp, text, { mode: 0o600 });
  await rename(temp, file);
}

export async function readAutoPushState(stateDir: string, key: string): Promise<AutoPushState | null> {
  try {
    const value = JSON.parse(await readFile(stateFile(stateDir, key), 'utf8')) as AutoPushState;
    return value && typeof value === 'object' ? value : null;
  } catch {
    return null;
  }
}

export async function recordAutoPush(stateDir: string, key: string, root: string, record: AutoPushRecord): Promise<void> {
  const state: AutoPushState = { worktree: key, root, last: record };
  await writeAtomic(stateFile(stateDir, key), `${JSON.stringify(state, null, 2)}\n`);
}

/** Stamps an idle event (ms since the epoch). */
export async function stampRequest(stateDir: string, key: string, at: number): Promise<void> {
  await writeAtomic(requestFile(stateDir, key), `${at}\n`);
}

export async function lastRequest(stateDir: string, key: string): Promise<number> {
  const text = await readFile(requestFile(stateDir, key), 'utf8').catch(() => '0');
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : 0;
}
