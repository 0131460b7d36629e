import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The opencode plugin `sessmig plugin install` writes. opencode 1.18 loads every `*.js` in
 * `$XDG_CONFIG_HOME/opencode/plugin/` (global; `plugins/` works too) and `<repo>/.opencode/plugin/`
 * (project), inside every opencode process — `run`, the TUI, `serve`, and also `export` and `db`,
 * whose stdout is data. Hence the plugin writes nothing to stdout or stderr, does nothing at load
 * but read a few small files, and reports through opencode's own log (`client.app.log`, service
 * `sessmig`) and a TUI toast.
 *
 * On `session.idle`, when no session of this opencode process is busy, it starts
 * `node sessmig.js plugin idle` in the session's folder, detached (its own process group, stdio
 * ignored, unref'd), so it outlives `opencode run`. Everything else — whether a remote is
 * configured, ownership, debounce, the lock, busy sessions of other opencode processes — is
 * decided by that sessmig process. The node binary and sessmig's bin script are the absolute paths
 * of the sessmig that installed the plugin: reinstall after moving or upgrading sessmig to a new
 * place (`sessmig plugin install` again).
 */
export const PLUGIN_FILE_NAME = 'sessmig.js';
const MARKER = '// sessmig push-on-idle plugin';

export function globalPluginDir(env: NodeJS.ProcessEnv, home: string): string {
  const config = env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(home, '.config');
  return path.join(config, 'opencode', 'plugin');
}

export function projectPluginDir(worktreeRoot: string): string {
  return path.join(worktreeRoot, '.opencode', 'plugin');
}

export function pluginSource(nodeBin: string, sessmigBin: string): string {
  return `${MARKER} (written by \`sessmig plugin install\`; \`sessmig plugin uninstall\` removes it).
// On session.idle it runs \`sessmig plugin idle\` for the session's worktree in the background.
// It never writes to stdout: opencode export prints sessions there.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const NODE = ${JSON.stringify(nodeBin)};
const SESSMIG = ${JSON.stringify(sessmigBin)};

function stateDir() {
  const xdg = process.env.XDG_STATE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(process.env.HOME || os.homedir(), '.local', 'state');
  return path.join(base, 'sessmig', 'auto-push');
}

/** The last automatic push of the worktree at root, from the state sessmig writes. */
function lastAutoPush(root) {
  try {
    const dir = stateDir();
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.json')) continue;
      const state = JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
      if (state && state.root === root && state.last) return state.last;
    }
  } catch {}
  return undefined;
}

export const SessmigPushOnIdle = async ({ client, directory, worktree }) => {
  // Inert inside the opencode processes sessmig itself starts, and wherever the user says so.
  if (process.env.SESSMIG_NO_AUTO_PUSH === '1') return {};
  const busy = new Set();
  const reported = new Set();
  const log = (level, message) => {
    try {
      Promise.resolve(client.app.log({ body: { service: 'sessmig', level, message: 'sessmig: ' + message } })).catch(() => {});
    } catch {}
  };
  const toast = (message) => {
    try {
      Promise.resolve(client.tui?.showToast?.({ body: { title: 'sessmig', message, variant: 'error' } })).catch(() => {});
    } catch {}
  };
  const reportFailure = () => {
    const last = lastAutoPush(worktree || directory);
    if (!last || last.result !== 'failed' || reported.has(last.finishedAt)) return;
    reported.add(last.finishedAt);
    const message = 'last automatic push failed at ' + last.finishedAt + ': ' + last.message;
    log('error', message);
    toast(message);
  };
  return {
    event: async ({ event }) => {
      try {
        if (event.type === 'session.status') {
          const id = event.properties && event.properties.sessionID;
          const type = event.properties && event.properties.status && event.properties.status.type;
          if (id && type && type !== 'idle') busy.add(id);
          if (id && type === 'idle') busy.delete(id);
          return;
        }
        if (event.type !== 'session.idle') return;
        const id = event.properties && event.properties.sessionID;
        if (id) busy.delete(id);
        reportFailure();
        if (busy.size > 0) return;
        if (!existsSync(SESSMIG) || !existsSync(NODE)) {
          log('error', 'sessmig is not at ' + SESSMIG + ' (node ' + NODE + ') any more: run \`sessmig plugin install\` again');
          return;
        }
        const child = spawn(NODE, [SESSMIG, 'plugin', 'idle'], { cwd: directory, detached: true, stdio: 'ignore', env: process.env });
        child.on('error', (error) => log('error', 'could not start sessmig: ' + error.message));
        child.unref();
        log('info', 'session ' + id + ' is idle: sessmig push started in the background (pid ' + child.pid + ')');
      } catch (error) {
        log('error', 'plugin: ' + (error && error.message ? error.message : String(error)));
      }
    },
  };
};
`;
}

export async function installPlugin(dir: string, source: string): Promise<string> {
  const file = path.join(dir, PLUGIN_FILE_NAME);
  await mkdir(dir, { recursive: true });
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`; // unique per call: two commands may run in one process
  await writeFile(temp, source, { mode: 0o644 });
  await rename(temp, file);
  return file;
}

/** Removes the plugin file if it is sessmig's own; 'absent', 'removed' or 'foreign' (left alone). */
export async function uninstallPlugin(dir: string): Promise<{ file: string; outcome: 'absent' | 'removed' | 'foreign' }> {
  const file = path.join(dir, PLUGIN_FILE_NAME);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined) return { file, outcome: 'absent' };
  if (!text.startsWith(MARKER)) return { file, outcome: 'foreign' };
  await rm(file, { force: true });
  return { file, outcome: 'removed' };
}

export async function pluginInstalled(dir: string): Promise<boolean> {
  const text = await readFile(path.join(dir, PLUGIN_FILE_NAME), 'utf8').catch(() => undefined);
  return text !== undefined && text.startsWith(MARKER);
}
