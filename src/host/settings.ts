import { execa } from 'execa';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { usageError } from '../util/errors.js';

/**
 * The settings a command runs with, each with where it came from. Precedence, highest first:
 * the command line flag, the environment, git config (`sessmig.*`, read from inside the worktree,
 * so a repository's own `.git/config` beats the user's `~/.gitconfig`), then the default.
 */
export type SettingSource = 'flag' | 'env' | 'git-config' | 'default';

export interface Setting<T> {
  value: T;
  source: SettingSource;
  /** The flag, variable or git key that gave the value (absent for a default). */
  from?: string;
}

export interface Settings {
  /** The remote URL (file:///… or s3://…). */
  remote: Setting<string>;
  /** The worktree key; null means the default (the opencode project id, found later). */
  worktree: Setting<string | null>;
  /** Whether a push asks for encryption (the remote's marker decides after the first sealed push). */
  encrypt: Setting<boolean>;
  /** The opencode binary. */
  opencode: Setting<string>;
}

/** One row per setting: its flag, its variable, its git key, how to parse text, its default. */
interface SettingSpec<K extends keyof Settings> {
  name: K;
  flag: string;
  env: string;
  git: string;
  parse: (text: string, where: string) => Settings[K]['value'];
}

function parseBoolean(text: string, where: string): boolean {
  const value = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(value)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(value)) return false;
  throw usageError('bad-setting', `${where}=${JSON.stringify(text.slice(0, 20))} is not a boolean`, `set ${where} to true or false (1 or 0)`);
}

const identity = (text: string) => text;

const SPECS = {
  remote: { name: 'remote', flag: '--remote', env: 'SESSMIG_REMOTE', git: 'sessmig.remote', parse: identity },
  worktree: { name: 'worktree', flag: '--worktree', env: 'SESSMIG_WORKTREE', git: 'sessmig.worktree', parse: identity },
  encrypt: { name: 'encrypt', flag: '--encrypt', env: 'SESSMIG_ENCRYPT', git: 'sessmig.encrypt', parse: parseBoolean },
  opencode: { name: 'opencode', flag: '--opencode', env: 'SESSMIG_OPENCODE', git: 'sessmig.opencode', parse: identity },
} as const satisfies { [K in keyof Settings]: SettingSpec<K> };

/** The git keys sessmig reads (git config lowercases variable names). */
export const GIT_KEYS = Object.values(SPECS).map((spec) => spec.git);

export interface SettingsInput {
  /** Flags as commander parsed them (undefined: not given). `encrypt` is only true or absent. */
  flags: { remote?: string | undefined; worktree?: string | undefined; encrypt?: boolean | undefined; opencode?: string | undefined };
  env: NodeJS.ProcessEnv;
  /** `sessmig.*` values from git config, keys lowercased as git prints them. */
  git: ReadonlyMap<string, string>;
  /** The embedded default remote folder ($XDG_DATA_HOME/sessmig/remote). */
  defaultRemoteFolder: string;
}

/** Pure: decides every setting from flags, environment and git config. */
export function resolveSettings(input: SettingsInput): Settings {
  const pick = <K extends keyof Settings>(spec: SettingSpec<K>, flag: Settings[K]['value'] | undefined, fallback: Settings[K]['value']): Setting<Settings[K]['value']> => {
    if (flag !== undefined) return { value: flag, source: 'flag', from: spec.flag };
    const fromEnv = input.env[spec.env];
    // An empty variable counts as unset, as a shell's `VAR= sessmig …` means it.
    if (fromEnv !== undefined && fromEnv !== '') return { value: spec.parse(fromEnv, spec.env), source: 'env', from: spec.env };
    const fromGit = input.git.get(spec.git);
    if (fromGit !== undefined && fromGit !== '') return { value: spec.parse(fromGit, spec.git), source: 'git-config', from: spec.git };
    return { value: fallback, source: 'default' };
  };
  return {
    remote: pick(SPECS.remote, input.flags.remote, pathToFileURL(input.defaultRemoteFolder).href),
    worktree: pick(SPECS.worktree, input.flags.worktree, null),
    // The flag can only switch encryption on; `SESSMIG_ENCRYPT=0` or `sessmig.encrypt=false` switch it off below it.
    encrypt: pick(SPECS.encrypt, input.flags.encrypt === true ? true : undefined, false),
    opencode: pick(SPECS.opencode, input.flags.opencode, 'opencode'),
  };
}

/**
 * Parses `git config -z --get-regexp` output: records `key\nvalue\0` (a key alone when the
 * variable has no value). The last value of a key wins, as `git config --get` does.
 */
export function parseGitConfigZ(output: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const record of output.split('\0')) {
    if (record === '') continue;
    const newline = record.indexOf('\n');
    const key = (newline < 0 ? record : record.slice(0, newline)).toLowerCase();
    values.set(key, newline < 0 ? '' : record.slice(newline + 1));
  }
  return values;
}

/**
 * Every `sessmig.*` value git sees from `cwd` (system, global, the repository's own config),
 * in one git process. Outside a repository git still reads the user's config; without git, none.
 */
export async function readGitSettings(cwd: string, env: NodeJS.ProcessEnv): Promise<Map<string, string>> {
  try {
    const result = await execa('git', ['config', '-z', '--get-regexp', '^sessmig\\.'], { cwd, env, extendEnv: false, reject: false, stdin: 'ignore', stripFinalNewline: false });
    // Exit 1: no such variable. Anything else (a broken config) is git's to report.
    if (result.exitCode === 1) return new Map();
    if (result.exitCode !== 0) {
      throw usageError('bad-git-config', `git config failed reading sessmig.* settings: ${String(result.stderr).trim().slice(0, 300)}`, 'fix the git config file git names above');
    }
    return parseGitConfigZ(String(result.stdout));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
}

export async function loadSettings(flags: SettingsInput['flags'], env: NodeJS.ProcessEnv, cwd: string, dataDir: string): Promise<Settings> {
  return resolveSettings({ flags, env, git: await readGitSettings(cwd, env), defaultRemoteFolder: path.join(dataDir, 'remote') });
}

/** One line per setting for humans: `remote   s3://b/p  (git-config sessmig.remote)`. */
export function describeSettings(settings: Settings, worktreeKey?: string): string[] {
  return (Object.keys(settings) as (keyof Settings)[]).map((name) => {
    const setting = settings[name];
    const value = setting.value ?? worktreeKey ?? '-';
    const shown = name === 'worktree' && setting.source === 'default' ? `${value} (the opencode project id)` : String(value);
    return `${name.padEnd(9)}${shown}  (${setting.source}${setting.from ? ` ${setting.from}` : ''})`;
  });
}
