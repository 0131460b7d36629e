import type { Command } from 'commander';
import { assertWorktreeKey } from '../format/ids.js';
import { listRemote } from '../core/ls.js';
import { loadUserKey } from '../crypto/keys.js';
import { SealedRemote, type EncryptionMarker } from '../crypto/sealedRemote.js';
import { hostPaths } from '../host/paths.js';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { addCommonOptions, formatBytes, printJson, remoteFrom, tempRoot, warnIfCleartext, type CommonOptions, type Io } from './options.js';

export function registerLs(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(program.command('ls').description('list the worktrees and checkpoints in the remote'), { opencode: false }).action(async (flags: CommonOptions) => {
    const remote = await remoteFrom(flags, io);
    const key = await loadUserKey(hostPaths(io.env).config, io.env);
    const scratch = await mkdtemp(path.join(tempRoot(io.env), 'sessmig-'));
    const hostId = '00000000-0000-4000-8000-000000000000';
    const unseal = async (worktree: string, marker: EncryptionMarker) =>
      key && key.keyId() === marker.keyId ? SealedRemote.open(remote, key, worktree, { tempDir: scratch, hostId, marker }) : undefined;
    const worktrees = await listRemote(remote, flags.worktree === undefined ? undefined : assertWorktreeKey(flags.worktree), unseal).finally(() =>
      rm(scratch, { recursive: true, force: true }),
    );
    // Silent only when every worktree listed is encrypted (ls reads their checkpoints' titles and hosts otherwise).
    if (worktrees.length === 0 || worktrees.some((wt) => !wt.encrypted)) warnIfCleartext(remote, io);
    if (flags.json) {
      printJson(io, { command: 'ls', remote: remote.display, worktrees });
    } else {
      if (worktrees.length === 0) io.stderr(`no worktrees in ${remote.display}\n`);
      for (const wt of worktrees) {
        const sealed = wt.encrypted ? `  encrypted (key ${wt.encrypted.keyId}${wt.encrypted.readable ? '' : ', not this host\'s'})` : '';
        io.stdout(`worktree ${wt.worktree}  owner: ${wt.owner || wt.ownerHostId || (wt.checkpoint ? 'released' : '-')}  current: ${wt.checkpoint ?? '-'}${sealed}${wt.error ? `  ERROR: ${wt.error}` : ''}\n`);
        for (const cp of wt.checkpoints) {
          io.stdout(
            `  ${cp.current ? '*' : ' '} ${cp.id}  ${cp.createdAt ?? '?'}  ${cp.host ?? '?'}  ${cp.sessions ?? '?'} sessions  ${cp.storedBytes === null ? '?' : formatBytes(cp.storedBytes)}${cp.deleted ? `  ${cp.deleted} deleted` : ''}${cp.error ? `  ERROR: ${cp.error}` : ''}\n`,
          );
          if (cp.current) for (const checkout of cp.checkouts ?? []) io.stdout(`      ${checkout.sessions} session(s) in ${checkout.host}:${checkout.root}${checkout.branch ? ` (${checkout.branch})` : ''}\n`);
        }
      }
    }
    done(0);
  });
}
