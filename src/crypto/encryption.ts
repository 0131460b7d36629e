import type { Remote } from '../remote/remote.js';
import { usageError } from '../util/errors.js';
import { loadUserKey } from './keys.js';
import { missingKey, readMarker, SealedRemote, wrongKey } from './sealedRemote.js';

/**
 * Decides, once per command, whether a worktree's objects are sealed: the remote's marker says
 * the worktree is encrypted (then this host needs the same key), or the command asks for
 * encryption (`push --encrypt`, SESSMIG_ENCRYPT=1) and the marker will be written with the first
 * sealed checkpoint. Returns the remote to use.
 */
export async function resolveEncryption(
  remote: Remote,
  worktree: string,
  options: { configDir: string; env: NodeJS.ProcessEnv; encrypt: boolean; tempDir: string; hostId: string },
): Promise<Remote> {
  const marker = await readMarker(remote, worktree);
  if (!marker && !options.encrypt) return remote;
  const key = await loadUserKey(options.configDir, options.env);
  if (!key) {
    if (marker) throw missingKey(worktree, marker.keyId);
    throw usageError('no-key', 'encryption was asked for (--encrypt or SESSMIG_ENCRYPT=1) but this host has no key; nothing was written', 'make one with `sessmig key new` (then copy it to your other hosts with `sessmig key show` / `sessmig key import`)');
  }
  if (marker && marker.keyId !== key.keyId()) throw wrongKey(worktree, marker.keyId, key.keyId());
  return SealedRemote.open(remote, key, worktree, { tempDir: options.tempDir, hostId: options.hostId, marker });
}

export function encryptRequested(flag: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  if (flag) return true;
  const value = env.SESSMIG_ENCRYPT;
  if (value === undefined || value === '' || value === '0') return false;
  if (value === '1' || value === 'true') return true;
  throw usageError('bad-env', `SESSMIG_ENCRYPT=${JSON.stringify(value.slice(0, 20))} is not 1 or 0`, 'set SESSMIG_ENCRYPT=1 to encrypt, or unset it');
}

/**
 * For commands that walk worktrees on a raw remote (ls, check, prune): the remote to read one
 * worktree through — sealed with this host's key where the worktree is encrypted. Without the key
 * (or with another one) an encrypted worktree is refused as resolveEncryption refuses it.
 */
export function worktreeOpener(remote: Remote, options: { configDir: string; env: NodeJS.ProcessEnv; tempDir: string; hostId: string }): (worktree: string) => Promise<Remote> {
  const cache = new Map<string, Promise<Remote>>();
  return (worktree) => {
    let opened = cache.get(worktree);
    if (!opened) cache.set(worktree, (opened = resolveEncryption(remote, worktree, { ...options, encrypt: false })));
    return opened;
  };
}
