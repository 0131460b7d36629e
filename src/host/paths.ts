import os from 'node:os';
import path from 'node:path';

/** XDG base directories (with their standard fallbacks) for sessmig's own files on this host. */
export interface HostPaths {
  /** $XDG_CONFIG_HOME/sessmig: host id, keys. */
  config: string;
  /** $XDG_DATA_HOME/sessmig: the embedded default remote. */
  data: string;
  /** $XDG_STATE_HOME/sessmig: sync bases, backups. */
  state: string;
  /** $XDG_CACHE_HOME/sessmig: what can be recomputed (opencode versions per binary). */
  cache: string;
}

export function hostPaths(env: NodeJS.ProcessEnv): HostPaths {
  const home = env.HOME || os.homedir();
  const base = (name: string, fallback: string) => {
    const value = env[name];
    return value && path.isAbsolute(value) ? value : path.join(home, fallback);
  };
  return {
    config: path.join(base('XDG_CONFIG_HOME', '.config'), 'sessmig'),
    data: path.join(base('XDG_DATA_HOME', '.local/share'), 'sessmig'),
    state: path.join(base('XDG_STATE_HOME', '.local/state'), 'sessmig'),
    cache: path.join(base('XDG_CACHE_HOME', '.cache'), 'sessmig'),
  };
}
