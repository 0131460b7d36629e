import type { Command } from 'commander';
import { usageError } from '../core/errors.js';
import { push, pushExitCode } from '../core/push.js';
import { pushToTicket } from '../core/uploadTicket.js';
import { addCommonOptions, formatBytes, printJson, withContext, type CommonOptions, type Io } from './options.js';

interface PushFlags extends CommonOptions {
  session?: string[];
  dryRun?: boolean;
  migrate?: boolean;
  force?: boolean;
  toUrl?: string;
  encrypt?: boolean;
}

export function registerPush(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('push')
      .description("export this worktree's opencode sessions (with their subagent children) to the remote as a new checkpoint")
      .option('-s, --session <id>', 'only this session and its children (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
      .option('-n, --dry-run', 'show what would be pushed; write nothing')
      .option('-m, --migrate', 'hand the sessions over: push, then release ownership for another host to claim with `pull --migrate`')
      .option('-f, --force', 'on a conflict (changed here and in the remote since the last sync), overwrite the remote copy')
      .option('--encrypt', 'encrypt everything this push writes with this host\'s key (sessmig key new); the worktree stays encrypted from then on (or SESSMIG_ENCRYPT=1)')
      .option('--to-url <url>', 'push through an upload ticket (the URL `sessmig share --upload` printed on a host with credentials): needs no credentials'),
  ).action(async (flags: PushFlags) => {
    if (flags.toUrl !== undefined) {
      if (flags.remote !== undefined) throw usageError('bad-flag', '--to-url and --remote contradict each other: the ticket names its remote', 'drop --remote');
      if (flags.force) throw usageError('bad-flag', '--force does not apply to --to-url: the host with credentials resolves conflicts when it takes the upload in (sessmig pull --force there)', 'drop --force');
      const url = flags.toUrl;
      const result = await withContext(
        flags,
        io,
        (ctx) => pushToTicket(ctx, url, { ...(flags.session ? { sessions: flags.session } : {}), dryRun: flags.dryRun === true, migrate: flags.migrate === true }),
        { remote: false },
      );
      if (flags.json) {
        printJson(io, { command: 'push', ...result });
      } else {
        for (const session of result.sessions) {
          io.stderr(`  ${session.id}  ${result.status === 'dry-run' ? 'would upload' : 'uploaded'}  ${String(session.messages).padStart(4)} msgs  ${formatBytes(session.storedBytes).padStart(10)}  ${session.parentID ? '  └ ' : ''}${session.title}\n`);
        }
        if (result.status === 'uploaded') io.stderr(`worktree ${result.worktree}: uploaded through ticket ${result.ticket.id} (checkpoint ${result.checkpoint} once ${result.ticket.issuedBy.hostname} runs sessmig pull)\n`);
      }
      done(0);
      return;
    }
    const result = await withContext(
      flags,
      io,
      (ctx) => push(ctx, { ...(flags.session ? { sessions: flags.session } : {}), dryRun: flags.dryRun === true, migrate: flags.migrate === true, force: flags.force === true }),
      { remote: true, mayEncrypt: true },
    );
    if (flags.json) {
      printJson(io, { command: 'push', ...result });
    } else {
      for (const session of result.sessions) {
        io.stderr(`  ${session.id}  ${session.action.padEnd(12)}  ${String(session.messages).padStart(4)} msgs  ${formatBytes(session.storedBytes).padStart(10)}  ${session.parentID ? '  └ ' : ''}${session.title}\n`);
      }
      for (const item of result.planned.length > 0 && result.status === 'dry-run' ? result.planned : []) {
        io.stderr(`  would push ${item.id}  ${item.parentID ? '└ ' : ''}${item.title}\n`);
      }
      for (const item of result.skipped) io.stderr(`  skipped ${item.id}: ${item.reason}\n`);
      if (result.status === 'pushed') io.stderr(`worktree ${result.worktree}: checkpoint ${result.checkpoint}\n`);
    }
    done(pushExitCode(result));
  });
}
