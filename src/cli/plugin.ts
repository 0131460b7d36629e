import type { Command } from 'commander';
import { execa } from 'execa';
import { appendFile, mkdir, readFile, realpath } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { attemptAutoPush, pushOnIdle } from '../core/autoPush.js';
import { usageError } from '../util/errors.js';
import { findWorktree } from '../core/worktree.js';
import { autoPushLog, recordAutoPush } from '../host/autoPushState.js';
import { globalPluginDir, installPlugin, pluginSource, projectPluginDir, uninstallPlugin } from '../host/opencodePlugin.js';
import { hostPaths } from '../host/paths.js';
import { addCommonOptions, parsePositiveInt, printJson, settingsFrom, withContext, type CommonOptions, type Io } from './options.js';

interface PluginFlags {
  project?: boolean;
  json?: boolean;
}

/** bin/sessmig.js of this installation (dist/cli/plugin.js → ../../bin/sessmig.js). */
async function sessmigBin(): Promise<string> {
  const bin = fileURLToPath(new URL('../../bin/sessmig.js', import.meta.url));
  return realpath(bin).catch(() => bin);
}

async function pluginDir(flags: PluginFlags, io: Io): Promise<string> {
  if (!flags.project) return globalPluginDir(io.env, io.env.HOME || '');
  const worktree = await findWorktree(io.cwd, 'plugin', io.env);
  return projectPluginDir(worktree.root);
}

/**
 * The project plugin names this host's node and sessmig paths: keep it out of commits, through the
 * repository's own ignore file (.git/info/exclude), not the shared .gitignore.
 */
async function excludeFromGit(root: string, file: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const result = await execa('git', ['rev-parse', '--path-format=absolute', '--git-path', 'info/exclude'], { cwd: root, env, extendEnv: false, reject: false, stdin: 'ignore' });
  if (result.exitCode !== 0) return undefined;
  const exclude = String(result.stdout).trim();
  const line = `/${path.relative(root, file).split(path.sep).join('/')}`;
  const text = await readFile(exclude, 'utf8').catch(() => '');
  if (text.split('\n').includes(line)) return exclude;
  await mkdir(path.dirname(exclude), { recursive: true });
  await appendFile(exclude, `${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`);
  return exclude;
}

export function registerPlugin(program: Command, io: Io, done: (code: number) => void): void {
  const plugin = program.command('plugin').description('the opencode plugin that pushes a worktree when its opencode session goes idle');

  plugin
    .command('install')
    .description('write the plugin for every opencode of this user ($XDG_CONFIG_HOME/opencode/plugin/sessmig.js), or with --project for this repository only (.opencode/plugin/sessmig.js)')
    .option('--project', "this repository's .opencode/plugin/ instead of the user's opencode config")
    .option('--json', 'print one JSON document on stdout')
    .action(async (flags: PluginFlags) => {
      if (!io.env.HOME && !flags.project) throw usageError('no-home', 'HOME is not set: cannot find the opencode config folder', 'set HOME, or install with --project');
      const dir = await pluginDir(flags, io);
      const node = process.execPath;
      const bin = await sessmigBin();
      const file = await installPlugin(dir, pluginSource(node, bin));
      const excludedIn = flags.project ? await excludeFromGit(path.dirname(path.dirname(dir)), file, io.env) : undefined;
      if (flags.json) printJson(io, { command: 'plugin', action: 'install', scope: flags.project ? 'project' : 'global', file, node, sessmig: bin, ...(excludedIn ? { excludedIn } : {}) });
      else {
        io.stderr(`installed ${file}\n`);
        if (excludedIn) io.stderr(`  kept out of commits through ${excludedIn} (it names this host's paths)\n`);
        io.stderr(`  on session.idle it runs: ${node} ${bin} plugin idle  (reinstall if sessmig or node move)\n`);
        io.stderr('  it pushes only worktrees this host owns, to a remote set by git config sessmig.remote or SESSMIG_REMOTE\n');
        const here = await settingsFrom({}, io).catch(() => undefined);
        if (here?.remote.source === 'default') io.stderr('  no remote is configured here yet: `git config sessmig.remote URL` in each repository to push on idle\n');
      }
      done(0);
    });

  plugin
    .command('uninstall')
    .description('remove the plugin file that `sessmig plugin install` wrote (global, or with --project this repository\'s)')
    .option('--project', "this repository's .opencode/plugin/ instead of the user's opencode config")
    .option('--json', 'print one JSON document on stdout')
    .action(async (flags: PluginFlags) => {
      const dir = await pluginDir(flags, io);
      const { file, outcome } = await uninstallPlugin(dir);
      if (flags.json) printJson(io, { command: 'plugin', action: 'uninstall', scope: flags.project ? 'project' : 'global', file, outcome });
      else io.stderr(outcome === 'removed' ? `removed ${file}\n` : outcome === 'absent' ? `no plugin at ${file}\n` : `${file} is not sessmig's plugin; left alone\n`);
      done(outcome === 'foreign' ? 1 : 0);
    });

  addCommonOptions(
    plugin
      .command('idle')
      .description('what the plugin runs on session.idle (detached): debounce, then push this worktree if this host owns it and a remote is configured; results go to sessmig status'),
  ).action(async (flags: CommonOptions) => {
    const paths = hostPaths(io.env);
    const settings = await settingsFrom(flags, io);
    const worktree = await findWorktree(io.cwd, settings.worktree.value ?? undefined, io.env);
    const logFile = autoPushLog(paths.state, worktree.key);
    await mkdir(path.dirname(logFile), { recursive: true, mode: 0o700 });
    // Detached, with no terminal: everything this process says goes to its log.
    const log = (text: string) => void appendFile(logFile, text).catch(() => {});
    const quietIo: Io = { ...io, stdout: log, stderr: log, stderrIsTTY: false };
    if (settings.remote.source === 'default') {
      const now = new Date().toISOString();
      await recordAutoPush(paths.state, worktree.key, worktree.root, { startedAt: now, finishedAt: now, result: 'skipped', message: 'no remote configured (git config sessmig.remote, or SESSMIG_REMOTE in opencode\'s environment)' });
      done(0);
      return;
    }
    const debounceMs = parsePositiveInt(io.env.SESSMIG_IDLE_DEBOUNCE_MS, 'SESSMIG_IDLE_DEBOUNCE_MS', 3000, 600_000);
    await pushOnIdle({
      stateDir: paths.state,
      worktreeKey: worktree.key,
      root: worktree.root,
      debounceMs,
      log: (line) => log(`${line}\n`),
      attempt: () =>
        withContext({ ...flags, quiet: true }, quietIo, (ctx) => attemptAutoPush(ctx)).catch((error: unknown) => ({
          result: 'failed' as const,
          message: error instanceof Error ? error.message : String(error),
        })),
    });
    done(0);
  });
}
