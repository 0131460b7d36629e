import type { Command } from 'commander';
import { status } from '../core/status.js';
import { addCommonOptions, printJson, withContext, type CommonOptions, type Io } from './options.js';

export function registerStatus(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program.command('status').description("show the worktree's owner, current checkpoint, and where each session stands against the remote"),
  ).action(async (flags: CommonOptions) => {
    const result = await withContext(flags, io, (ctx) => status(ctx));
    if (flags.json) {
      printJson(io, { command: 'status', ...result });
    } else {
      const out = (line: string) => io.stdout(`${line}\n`);
      out(`worktree ${result.worktree} (${result.worktreeRoot})`);
      out(`remote   ${result.remote}`);
      out(`stored   ${result.encrypted ? `encrypted (key ${result.encrypted.keyId})` : 'in the clear (push --encrypt to encrypt)'}`);
      out(`owner    ${result.ownerDescription}${result.ownedByThisHost ? '  ← this host' : ''}`);
      out(`current  ${result.checkpoint ?? '-'}${result.generation ? ` (generation ${result.generation})` : ''}`);
      if (result.handedAway) out(`handed away from this host by push --migrate at ${result.handedAway.at} (checkpoint ${result.handedAway.checkpoint})`);
      out(`checkout ${result.checkout.root} (${result.checkout.branch ? `branch ${result.checkout.branch}` : 'detached HEAD'})`);
      for (const session of result.sessions) {
        const where = session.state === 'other-checkout' ? session.local?.directory ?? session.checkout?.root : session.checkout && session.checkout.root !== result.worktreeRoot ? `${session.checkout.host.hostname || session.checkout.host.hostId}:${session.checkout.root}` : undefined;
        out(`  ${session.state.padEnd(16)} ${session.id}  ${session.parentID ? '└ ' : ''}${session.title}${where ? `  [${where}${session.checkout?.branch ? ` (${session.checkout.branch})` : ''}]` : ''}`);
      }
      for (const backup of result.backups) out(`backup ${backup.pullId}  ${backup.sessions.length} session(s)  ${backup.dir}`);
    }
    done(0);
  });
}
