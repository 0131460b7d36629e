import type { Command } from 'commander';
import { push, pushExitCode } from '../core/push.js';
import { addCommonOptions, formatBytes, printJson, withContext, type CommonOptions, type Io } from './options.js';

interface PushFlags extends CommonOptions {
  session?: string[];
  dryRun?: boolean;
  migrate?: boolean;
  force?: boolean;
}

export function registerPush(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('push')
      .description("export this worktree's opencode sessions (with their subagent children) to the remote as a new checkpoint")
      .option('-s, --session <id>', 'only this session and its children (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
      .option('-n, --dry-run', 'show what would be pushed; write nothing')
      .option('-m, --migrate', 'hand the sessions over: push, then release ownership for another host to claim with `pull --migrate`')
      .option('-f, --force', 'on a conflict (changed here and in the remote since the last sync), overwrite the remote copy'),
  ).action(async (flags: PushFlags) => {
    const result = await withContext(flags, io, (ctx) => push(ctx, { ...(flags.session ? { sessions: flags.session } : {}), dryRun: flags.dryRun === true, migrate: flags.migrate === true, force: flags.force === true }));
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
