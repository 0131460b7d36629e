import type { Command } from 'commander';
import { assertWorktreeKey } from '../format/ids.js';
import { listRemote } from '../core/ls.js';
import { addCommonOptions, formatBytes, printJson, remoteFrom, type CommonOptions, type Io } from './options.js';

export function registerLs(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(program.command('ls').description('list the worktrees and checkpoints in the remote')).action(async (flags: CommonOptions) => {
    const remote = remoteFrom(flags, io);
    const worktrees = await listRemote(remote, flags.worktree === undefined ? undefined : assertWorktreeKey(flags.worktree));
    if (flags.json) {
      printJson(io, { command: 'ls', remote: remote.display, worktrees });
    } else {
      if (worktrees.length === 0) io.stderr(`no worktrees in ${remote.display}\n`);
      for (const wt of worktrees) {
        io.stdout(`worktree ${wt.worktree}  owner: ${wt.owner ?? (wt.checkpoint ? 'released' : '-')}  current: ${wt.checkpoint ?? '-'}${wt.error ? `  ERROR: ${wt.error}` : ''}\n`);
        for (const cp of wt.checkpoints) {
          io.stdout(
            `  ${cp.current ? '*' : ' '} ${cp.id}  ${cp.createdAt ?? '?'}  ${cp.host ?? '?'}  ${cp.sessions ?? '?'} sessions  ${cp.storedBytes === null ? '?' : formatBytes(cp.storedBytes)}${cp.error ? `  ERROR: ${cp.error}` : ''}\n`,
          );
        }
      }
    }
    done(0);
  });
}
