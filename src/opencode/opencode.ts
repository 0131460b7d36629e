import { execa, type ResultPromise } from 'execa';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { SessmigError } from '../core/errors.js';
import { assertSessionId, SESSION_ID } from '../format/ids.js';
import { redact } from '../util/redact.js';

/**
 * The one place sessmig runs opencode. Every argument that comes from data is a validated session
 * id or a path sessmig made; nothing from a blob reaches a command line. See ../shared/OPENCODE.md
 * (recorded in docs/OPENCODE-NOTES.md) for the behaviours this relies on.
 */
export interface OpencodeOptions {
  bin: string;
  env: NodeJS.ProcessEnv;
  /** Kill an export or import that runs longer than this (a hung opencode). */
  timeoutMs: number;
  /** Aborting it (SIGINT) kills the running opencode processes. */
  signal?: AbortSignal;
}

/** One row of opencode's session table, as sessmig reads it. */
export const SessionRow = z.object({
  id: z.string(),
  parent_id: z.string().nullable(),
  directory: z.string(),
  title: z.string().nullable().transform((value) => value ?? ''),
  time_updated: z.number(),
});
export type SessionRow = z.infer<typeof SessionRow>;

const SESSION_QUERY = 'SELECT id, parent_id, directory, title, time_updated FROM session';
const IMPORTED = /^Imported session: (\S+)\s*$/m;

export class Opencode {
  private cachedVersion: string | undefined;

  constructor(readonly options: OpencodeOptions) {}

  /** The same opencode, deaf to the abort signal: for rolling back after an interrupt. */
  uninterruptible(): Opencode {
    const copy = new Opencode({ ...this.options, signal: undefined });
    copy.cachedVersion = this.cachedVersion;
    return copy;
  }

  async version(): Promise<string> {
    if (this.cachedVersion) return this.cachedVersion;
    const result = await this.run(['--version'], { timeout: 60_000 });
    const version = result.stdout.trim().split(/\s+/).pop() ?? '';
    if (!/^\d+\.\d+\.\d+[0-9A-Za-z.+-]*$/.test(version)) {
      throw new SessmigError('opencode-failed', `\`${this.options.bin} --version\` printed ${JSON.stringify(result.stdout.slice(0, 100))}, not a version`, {
        hint: 'point --opencode (or SESSMIG_OPENCODE) at the opencode binary',
        exitCode: 2,
      });
    }
    this.cachedVersion = version;
    return version;
  }

  /** Every session in the local database (one process, no project boot). */
  async listSessions(): Promise<SessionRow[]> {
    const rows = await this.query(SESSION_QUERY);
    const parsed = z.array(SessionRow).safeParse(rows);
    if (!parsed.success) {
      throw new SessmigError('opencode-failed', 'opencode db returned session rows of an unexpected shape', {
        hint: 'this opencode version may not be supported; see `sessmig doctor`',
      });
    }
    return parsed.data.filter((row) => SESSION_ID.test(row.id));
  }

  async query(sql: string): Promise<unknown[]> {
    const result = await this.run(['db', sql, '--format', 'json'], { timeout: this.options.timeoutMs });
    const text = result.stdout.trim();
    if (text === '') return [];
    try {
      const value = JSON.parse(text) as unknown;
      if (!Array.isArray(value)) throw new Error('not an array');
      return value;
    } catch (error) {
      throw new SessmigError('opencode-failed', `opencode db printed something that is not a JSON array (${(error as Error).message})`, {
        hint: 'run `opencode db "SELECT 1" --format json` by hand to see what is wrong',
      });
    }
  }

  /**
   * Starts `opencode export <id>`; stdout is the blob. `done` settles when the process ends:
   * it rejects with code 'session-gone' when opencode no longer has the session.
   */
  exportSession(id: string): { stdout: Readable; done: Promise<void>; kill(): void } {
    assertSessionId(id);
    const child = this.spawn(['export', id], { timeout: this.options.timeoutMs, buffer: { stdout: false, stderr: true } });
    const done = child.then(
      () => undefined,
      (error: unknown) => {
        throw this.failure(error, `export of ${id}`, id);
      },
    );
    done.catch(() => undefined);
    return { stdout: child.stdout as Readable, done, kill: () => child.kill('SIGKILL') };
  }

  /** `opencode import <file>` from `cwd`; resolves with the id opencode reports. */
  async importFile(file: string, cwd: string, expectedId: string): Promise<void> {
    assertSessionId(expectedId);
    const result = await this.run(['import', file], { cwd, timeout: this.options.timeoutMs }, `import of ${expectedId}`);
    const match = IMPORTED.exec(result.stdout);
    if (!match || match[1] !== expectedId) {
      const said = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-3).join(' | ');
      throw new SessmigError('import-rejected', `opencode import of ${expectedId} did not succeed: ${redact(said).slice(0, 500)}`, {
        hint: 'the blob may not suit this opencode version; see `sessmig doctor`',
      });
    }
  }

  async deleteSession(id: string, cwd: string): Promise<void> {
    assertSessionId(id);
    await this.run(['session', 'delete', id], { cwd, timeout: this.options.timeoutMs }, `delete of ${id}`);
  }

  private spawn(args: string[], options: { cwd?: string; timeout: number; buffer?: { stdout: boolean; stderr: boolean } }): ResultPromise {
    return execa(this.options.bin, args, {
      cwd: options.cwd,
      env: this.options.env,
      extendEnv: false,
      stdin: 'ignore',
      timeout: options.timeout,
      killSignal: 'SIGKILL',
      ...(this.options.signal ? { cancelSignal: this.options.signal } : {}),
      buffer: options.buffer ?? true,
      maxBuffer: 256 * 1024 * 1024,
      stripFinalNewline: false,
    }) as unknown as ResultPromise;
  }

  private async run(args: string[], options: { cwd?: string; timeout: number }, what?: string): Promise<{ stdout: string; stderr: string }> {
    try {
      const result = await this.spawn(args, options);
      return { stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? '') };
    } catch (error) {
      throw this.failure(error, what ?? `opencode ${args[0]}`);
    }
  }

  private failure(error: unknown, what: string, sessionId?: string): SessmigError {
    const e = error as { code?: string; timedOut?: boolean; stderr?: unknown; exitCode?: number; isCanceled?: boolean; signal?: string };
    if (e.code === 'ENOENT' || e.code === 'EACCES') {
      return new SessmigError('opencode-missing', `opencode not found or not executable: ${this.options.bin}`, {
        hint: 'install opencode (npm i -g opencode-ai), or point --opencode PATH / SESSMIG_OPENCODE at it',
        exitCode: 2,
      });
    }
    if (e.isCanceled || this.options.signal?.aborted) {
      return new SessmigError('interrupted', `${what} was interrupted`, { exitCode: 130 });
    }
    if (e.timedOut) {
      return new SessmigError('opencode-timeout', `${what} did not finish within ${Math.round(this.options.timeoutMs / 1000)} s; sessmig killed it`, {
        hint: 'raise --opencode-timeout if the sessions are very large, or check that opencode is not stuck',
      });
    }
    const stderr = String(e.stderr ?? '');
    if (sessionId && /Session not found/i.test(stderr)) {
      return new SessmigError('session-gone', `session ${sessionId} no longer exists in opencode`, { data: { id: sessionId } });
    }
    const last = stderr.trim().split('\n').filter(Boolean).slice(-2).join(' | ');
    return new SessmigError('opencode-failed', `${what} failed (exit ${e.exitCode ?? e.signal ?? '?'})${last ? `: ${redact(last).slice(0, 500)}` : ''}`, {
      hint: 'run the same opencode command by hand to see its full output',
    });
  }
}
