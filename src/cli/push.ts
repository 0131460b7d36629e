import type { Command } from 'commander';
import { usageError } from '../util/errors.js';
import { push, pushExitCode } from '../core/push.js';
import { pushToTicket } from '../core/uploadTicket.js';
import { ticketUrlFrom } from './ticketUrl.js';
import { takePushLock } from '../host/pushLock.js';
import { addCommonOptions, formatBytes, parsePositiveInt, printJson, withContext, type CommonOptions, type Io } from './options.js';

interface PushFlags extends CommonOptions {
  session?: string[];
  dryRun?: boolean;
  migrate?: boolean;
  force?: boolean;
  toUrl?: string;
  encrypt?: boolean;
  code?: boolean;
  codeMaxBytes?: string;
}

/** How long a manual push waits for a running push of the same worktree (an automatic one, usually). */
const PUSH_LOCK_WAIT_S = 600;

export function registerPush(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('push')
      .description("export this worktree's opencode sessions (with their subagent children) to the remote as a new checkpoint")
      .option('-s, --session <id>', 'only this session and its children (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
      .option('-n, --dry-run', 'show what would be pushed; write nothing')
      .option('-m, --migrate', 'hand the sessions over: push, then release ownership for another host to claim with `pull --migrate`')
      .option('-f, --force', 'on a conflict (changed here and in the remote since the last sync), overwrite the remote copy')
      .option('--code', "carry the checkout's code too (commits not on any git remote, staged, unstaged and untracked files): default with --migrate")
      .option('--no-code', 'leave the code out, also with --migrate')
      .option('--code-max-bytes <bytes>', 'refuse a code leg whose new bundles exceed this many bytes (default 536870912)')
      .option('--encrypt', 'encrypt everything this push writes with this host\'s key (sessmig key new); the worktree stays encrypted from then on (or SESSMIG_ENCRYPT=1)')
      .option('--to-url <url>', 'push through an upload ticket (the URL `sessmig share --upload` printed on a host with credentials): needs no credentials; - reads the URL from standard input, @FILE from a file (a URL given here is visible in ps)'),
  ).action(async (flags: PushFlags) => {
    if (flags.toUrl !== undefined) {
      if (flags.remote !== undefined) throw usageError('bad-flag', '--to-url and --remote contradict each other: the ticket names its remote', 'drop --remote');
      if (flags.force) throw usageError('bad-flag', '--force does not apply to --to-url: the host with credentials resolves conflicts when it takes the upload in (sessmig pull --force there)', 'drop --force');
      const url = await ticketUrlFrom(flags.toUrl, '--to-url', io);
      const result = await withContext(
        flags,
        io,
        (ctx) =>
          pushToTicket(ctx, url, {
            ...(flags.session ? { sessions: flags.session } : {}),
            dryRun: flags.dryRun === true,
            migrate: flags.migrate === true,
            code: flags.code ?? flags.migrate === true,
            ...(flags.codeMaxBytes !== undefined ? { codeMaxBytes: parsePositiveInt(flags.codeMaxBytes, '--code-max-bytes', 536_870_912, Number.MAX_SAFE_INTEGER) } : {}),
          }),
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
    const result = await withContext(flags, io, async (ctx) => {
      const run = () => push(ctx, { ...(flags.session ? { sessions: flags.session } : {}), dryRun: flags.dryRun === true, migrate: flags.migrate === true, force: flags.force === true, code: flags.code ?? flags.migrate === true, ...(flags.codeMaxBytes !== undefined ? { codeMaxBytes: parsePositiveInt(flags.codeMaxBytes, '--code-max-bytes', 536_870_912, Number.MAX_SAFE_INTEGER) } : {}) });
      if (flags.dryRun) return run();
      // One push of a worktree at a time on this host, the automatic push on idle included.
      const lock = await takePushLock(ctx.paths.state, ctx.worktree.key, {
        kind: 'manual',
        waitMs: parsePositiveInt(io.env.SESSMIG_PUSH_LOCK_WAIT, 'SESSMIG_PUSH_LOCK_WAIT', PUSH_LOCK_WAIT_S, 86_400) * 1000,
        signal: io.signal,
        onWait: (holder) => ctx.report.info(`waiting for another push of this worktree to end${holder ? ` (${holder.kind}, pid ${holder.pid})` : ''}…`),
      });
      try {
        return await run();
      } finally {
        await lock.release();
      }
    }, { remote: true, mayEncrypt: true });
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
