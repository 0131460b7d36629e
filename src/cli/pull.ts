import type { Command } from 'commander';
import { usageError } from '../util/errors.js';
import { assertSessionId } from '../format/ids.js';
import { pull, pullExitCode } from '../core/pull.js';
import { pullFromTicket } from '../core/ticket.js';
import { parseReplayMode } from '../opencode/importer.js';
import { ticketUrlFrom } from './ticketUrl.js';
import { addCommonOptions, printJson, withContext, type CommonOptions, type Io } from './options.js';

interface PullFlags extends CommonOptions {
  checkpoint?: string;
  dryRun?: boolean;
  force?: boolean;
  keepLocal?: boolean;
  migrate?: boolean;
  fromUrl?: string;
  replay?: string;
  session?: string[];
  code?: boolean;
}

export function registerPull(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('pull')
      .description("import the worktree's current checkpoint (or --checkpoint ID) into this worktree's opencode")
      .option('-c, --checkpoint <id>', 'pull this checkpoint instead of the current one')
      .option('-n, --dry-run', 'show what would change; change nothing')
      .option('-f, --force', 'on a conflict, take the remote copy (the local copy is kept as a backup); with --migrate, also claim from a non-released owner')
      .option('--keep-local', 'on a conflict, keep the local copy')
      .option('--code', "restore the checkpoint's code into this checkout too (branch, HEAD, index, working tree): default with --migrate")
      .option('--no-code', 'leave the code alone, also with --migrate')
      .option('-s, --session <id>', 'take this session whatever checkout it belongs to (moving it out of another checkout here), or bring back one deleted here (repeatable)', (value: string, previous: string[] = []) => [...previous, value])
      .option('-m, --migrate', 'take the sessions over: pull, then claim ownership (a released worktree; with --force, one owned by a host that is gone)')
      .option('--replay <mode>', 'auto: replay sessions through one opencode serve where the local opencode supports it, else import; always; never (or SESSMIG_REPLAY)')
      .option('--from-url <url>', 'pull through a ticket (the URL `sessmig share` printed on a host with credentials): needs no credentials; - reads the URL from standard input, @FILE from a file (a URL given here is visible in ps)'),
  ).action(async (flags: PullFlags) => {
    if (flags.force && flags.keepLocal) throw usageError('bad-flag', '--force and --keep-local contradict each other', 'pick one');
    if (flags.fromUrl !== undefined) {
      if (flags.remote !== undefined) throw usageError('bad-flag', '--from-url and --remote contradict each other: the ticket names its remote', 'drop --remote');
      if (flags.checkpoint !== undefined) throw usageError('bad-flag', '--from-url and --checkpoint contradict each other: the ticket names its checkpoint', 'drop --checkpoint, or ask for a ticket of that checkpoint (sessmig share --checkpoint ID)');
    }
    const fromUrl = flags.fromUrl === undefined ? undefined : await ticketUrlFrom(flags.fromUrl, '--from-url', io);
    const replay = parseReplayMode(flags.replay ?? io.env.SESSMIG_REPLAY);
    const result = await withContext(
      flags,
      io,
      (ctx) =>
      fromUrl !== undefined
        ? pullFromTicket(ctx, fromUrl, { migrate: flags.migrate === true, dryRun: flags.dryRun === true, force: flags.force === true, keepLocal: flags.keepLocal === true, replay, code: flags.code ?? flags.migrate === true })
        : pull(ctx, {
            ...(flags.checkpoint !== undefined ? { checkpoint: flags.checkpoint } : {}),
            dryRun: flags.dryRun === true,
            force: flags.force === true,
            keepLocal: flags.keepLocal === true,
            migrate: flags.migrate === true,
            replay,
            ...(flags.session ? { sessions: flags.session.map((id) => assertSessionId(id, '--session')) } : {}),
            code: flags.code ?? flags.migrate === true,
          }),
      // An empty folder is a destination too: the code leg creates the checkout there.
      { remote: fromUrl === undefined, emptyFolder: flags.code ?? flags.migrate === true, keyFromTicket: fromUrl !== undefined },
    );
    if (flags.json) {
      printJson(io, { command: 'pull', ...result });
    } else {
      for (const session of result.sessions) {
        io.stderr(`  ${session.id}  ${session.action.padEnd(14)} ${String(session.messages).padStart(4)} msgs  ${session.parentID ? '└ ' : ''}${session.title}${session.reason ? `  (${session.reason})` : ''}\n`);
      }
      for (const upload of 'uploads' in result ? result.uploads : []) {
        io.stderr(`took in upload ${upload.ticket} from ${upload.from}: ${upload.sessions} session(s) → checkpoint ${upload.checkpoint}\n`);
      }
      if (result.backupDir) io.stderr(`local copies backed up in ${result.backupDir}\n`);
      io.stderr(`worktree ${result.worktree}: ${result.status === 'dry-run' ? 'would pull' : 'pulled'} checkpoint ${result.checkpoint}\n`);
    }
    done(pullExitCode(result));
  });
}
