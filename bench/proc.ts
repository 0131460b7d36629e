/**
 * Processes of the bench: stdout/stderr always go to files (opencode truncates piped stdout past
 * 64 KiB), each run timed, its peak RSS polled from /proc; and `sessmig --timing`'s table parsed.
 * Shared by run.ts and scale.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';

export const live = new Set<ChildProcess>();

export interface ProcResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  ms: number;
  pid: number;
  /** highest VmHWM seen in /proc/<pid>/status while it ran (bytes; 0 if never read) */
  hwmBytes: number;
}

export function readHwm(pid: number): number {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export async function runProc(
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

export async function tail(file: string, chars = 1500): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  return text.slice(-chars);
}


export interface SessmigPhase {
  ok: boolean;
  ms: number;
  exitCode: number | null;
  /** node process only: getrusage(RUSAGE_SELF).ru_maxrss at exit */
  peakRssBytes: number | null;
  /** node process only: highest VmHWM polled from /proc every 20 ms */
  polledHwmBytes: number;
  summary?: unknown;
  /** sessmig's own --timing table (busy time per phase; parallel phases can exceed the wall clock) */
  timing?: TimingTable;
  error?: string;
}

export interface TimingTable {
  wallMs: number | null;
  phases: { phase: string; ms: number; count: number }[];
  notes: string[];
}

/** The `--timing` block sessmig prints on stderr (src/core/timing.ts, Timing.format). */
export function parseTiming(stderr: string): TimingTable | undefined {
  const lines = stderr.split('\n');
  const start = lines.findIndex((line) => line.startsWith('timing (busy time per phase'));
  if (start < 0) return undefined;
  const table: TimingTable = { wallMs: null, phases: [], notes: [] };
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith('  ')) break;
    const phase = /^ {2}(\S+)\s+([\d.]+) s\s+[\d.]+ %\s+\((\d+)×\)$/.exec(line);
    const total = /^ {2}total\s+([\d.]+) s\s+wall clock$/.exec(line);
    if (phase) table.phases.push({ phase: phase[1]!, ms: Math.round(Number(phase[2]) * 1000), count: Number(phase[3]) });
    else if (total) table.wallMs = Math.round(Number(total[1]) * 1000);
    else table.notes.push(line.trim());
  }
  return table;
}

