import type { Host } from '../format/schema.js';
import type { HostPaths } from '../host/paths.js';
import type { Opencode } from '../opencode/opencode.js';
import type { Remote } from '../remote/remote.js';
import type { Timing } from './timing.js';
import type { Worktree } from './worktree.js';

/** Human progress and warnings: always on stderr (stdout is reserved for --json). */
export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
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
}

export function makeReporter(write: (line: string) => void, quiet = false): Reporter {
  const warnings: string[] = [];
  return {
    warnings,
    info(message) {
      if (!quiet) write(message);
    },
    warn(message) {
      warnings.push(message);
      write(`warning: ${message}`);
    },
  };
}
