import type { Host } from '../format/schema.js';
import type { HostPaths } from '../host/paths.js';
import type { Settings } from '../host/settings.js';
import type { Opencode } from '../opencode/opencode.js';
import type { Remote } from '../remote/remote.js';
import type { Timing } from './timing.js';
import type { Worktree } from './worktree.js';

/** Human progress and warnings: always on stderr (stdout is reserved for --json). */
export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /** A progress line (sessions done / total, bytes), redrawn in place on a terminal; nothing otherwise. */
  progress(phase: string, done: number, total: number, bytes: number): void;
  readonly warnings: string[];
}

/** Everything a core operation needs; built by the CLI, free of commander and terminals. */
export interface Context {
  cwd: string;
  env: NodeJS.ProcessEnv;
  paths: HostPaths;
  host: Host;
  remote: Remote;
  worktree: Worktree;
  opencode: Opencode;
  report: Reporter;
  jobs: number;
  signal: AbortSignal;
  /** A temp dir (0700) for this run, removed when it ends. */
  tempDir: string;
  timing: Timing;
  /** The settings the command runs with and where each came from (absent where a test builds the context). */
  settings?: Settings;
}

/**
 * `write` prints one line (a newline is added). With `tty` (stderr is a terminal and no --json),
 * progress is drawn with `raw` on one line that later lines clear.
 */
export function makeReporter(write: (line: string) => void, options: { quiet?: boolean; tty?: boolean; raw?: (text: string) => void } = {}): Reporter {
  const warnings: string[] = [];
  let drawn = false;
  const clear = () => {
    if (drawn && options.raw) options.raw('\r\x1b[K');
    drawn = false;
  };
  return {
    warnings,
    info(message) {
      if (options.quiet) return;
      clear();
      write(message);
    },
    warn(message) {
      warnings.push(message);
      clear();
      write(`warning: ${message}`);
    },
    progress(phase, done, total, bytes) {
      if (!options.tty || options.quiet || !options.raw) return;
      const mib = (bytes / 1024 / 1024).toFixed(1);
      options.raw(`\r\x1b[K${phase} ${done}/${total} sessions, ${mib} MiB`);
      drawn = done < total;
      if (!drawn) options.raw('\r\x1b[K');
    },
  };
}
