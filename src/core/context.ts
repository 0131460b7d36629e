import type { Host } from '../format/schema.js';
import type { HostPaths } from '../host/paths.js';
import type { Settings } from '../host/settings.js';
import type { OpencodeAdapter } from '../opencode/opencodeAdapter.js';
import type { Remote } from '../remote/remote.js';
import type { Timing } from '../util/timing.js';
import type { Worktree } from './worktree.js';

export type { Reporter } from '../util/reporter.js';
import type { Reporter } from '../util/reporter.js';


/** Everything a core operation needs; built by the CLI, free of commander and terminals. */
export interface Context {
  cwd: string;
  env: NodeJS.ProcessEnv;
  paths: HostPaths;
  host: Host;
  remote: Remote;
  worktree: Worktree;
  opencode: OpencodeAdapter;
  report: Reporter;
  jobs: number;
  signal: AbortSignal;
  /** A temp dir (0700) for this run, removed when it ends. */
  tempDir: string;
  timing: Timing;
  /** The settings the command runs with and where each came from (absent where a test builds the context). */
  settings?: Settings;
}

