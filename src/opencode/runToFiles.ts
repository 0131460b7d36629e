import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Runs a process with stdout and stderr written to files through real file descriptors.
 *
 * Why not pipes: opencode (a Bun binary) can exit without draining a full pipe, so large output
 * read through a pipe is cut at a multiple of 64 KiB while the exit code is still 0
 * (anomalyco/opencode #29330, #14948; measured here: a 270 KB export came out as 65536 or 131072
 * bytes through a slow pipe, whole when redirected to a file). execa's file targets are fed
 * through a pipe as well, hence node:child_process with raw fds.
 */
export interface FileRunResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  canceled: boolean;
  stdoutFile: string;
  stderr: string;
}

export interface FileRunOptions {
  cwd?: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Folder for the output files (the caller removes stdoutFile when done). */
  tempDir: string;
}

const MAX_STDERR = 64 * 1024;

export async function runToFiles(bin: string, args: string[], options: FileRunOptions): Promise<FileRunResult> {
  const id = randomBytes(6).toString('hex');
  const stdoutFile = path.join(options.tempDir, `opencode-${id}.out`);
  const stderrFile = path.join(options.tempDir, `opencode-${id}.err`);
  const out = await open(stdoutFile, 'w', 0o600);
  const err = await open(stderrFile, 'w', 0o600);
  try {
    const status = await new Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; timedOut: boolean; canceled: boolean }>(
      (resolve, reject) => {
        if (options.signal?.aborted) {
          resolve({ exitCode: null, signal: null, timedOut: false, canceled: true });
          return;
        }
        const child = spawn(bin, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', out.fd, err.fd] });
        let timedOut = false;
        let canceled = false;
        const timer = setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, options.timeoutMs);
        const onAbort = () => {
          canceled = true;
          child.kill('SIGKILL');
        };
        options.signal?.addEventListener('abort', onAbort, { once: true });
        const cleanup = () => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
        };
        child.on('error', (error) => {
          cleanup();
          reject(error);
        });
        child.on('close', (exitCode, signal) => {
          cleanup();
          resolve({ exitCode, signal, timedOut, canceled });
        });
      },
    );
    const stderr = (await readFile(stderrFile, 'utf8').catch(() => '')).slice(-MAX_STDERR);
    return { ...status, stdoutFile, stderr };
  } catch (error) {
    await rm(stdoutFile, { force: true });
    throw error;
  } finally {
    await out.close().catch(() => undefined);
    await err.close().catch(() => undefined);
    await rm(stderrFile, { force: true });
  }
}
