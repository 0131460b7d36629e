import type { Command } from 'commander';
import { usageError } from '../core/errors.js';
import { mintPullTicket, parseExpires } from '../core/ticket.js';
import { MAX_TICKET_SECONDS } from '../format/ticketSchema.js';
import { addCommonOptions, withContext, type CommonOptions, type Io } from './options.js';

interface ShareFlags extends CommonOptions {
  checkpoint?: string;
  expires?: string;
}

export function registerShare(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('share')
      .description('mint a pull ticket: one URL with which a host without credentials runs `sessmig pull --from-url URL` (s3:// remotes)')
      .option('-c, --checkpoint <id>', 'share this checkpoint instead of the current one')
      .option('--expires <duration>', 'how long the URL works: 30s, 15m, 1h, 7d (at most 7 days)', '1h'),
  ).action(async (flags: ShareFlags) => {
    const seconds = testSeconds(io.env) ?? parseExpires(flags.expires);
    const minted = await withContext(flags, io, (ctx) =>
      mintPullTicket(ctx, { ...(flags.checkpoint !== undefined ? { checkpoint: flags.checkpoint } : {}), expiresInSeconds: seconds }),
    );
    const { ticket } = minted;
    if (!flags.quiet) {
      io.stderr(
        `ticket ${ticket.id}: checkpoint ${ticket.checkpoint} of worktree ${ticket.worktree} (${minted.sessions} session(s)), valid until ${ticket.expiresAt}\n` +
          'anyone with the URL can read these sessions until then; on the other host: sessmig pull --from-url "URL"\n',
      );
    }
    // The one place a URL's signature is printed: deliberately not redacted.
    if (flags.json) {
      io.stdout(
        `${JSON.stringify(
          {
            command: 'share',
            url: minted.url,
            ticket: ticket.id,
            key: minted.key,
            remote: ticket.remote,
            worktree: ticket.worktree,
            checkpoint: ticket.checkpoint,
            sessions: minted.sessions,
            blobs: Object.keys(ticket.urls.blobs).length,
            bytes: minted.bytes,
            createdAt: ticket.createdAt,
            expiresAt: ticket.expiresAt,
          },
          null,
          2,
        )}\n`,
      );
    } else {
      io.stdout(`${minted.url}\n`);
    }
    done(0);
  });
}

/** Tests only: SESSMIG_TEST_TICKET_SECONDS=N mints tickets that expire after N seconds (below --expires's 30 s floor). */
function testSeconds(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env.SESSMIG_TEST_TICKET_SECONDS;
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_TICKET_SECONDS) {
    throw usageError('bad-env', `SESSMIG_TEST_TICKET_SECONDS=${JSON.stringify(raw.slice(0, 20))} is not a number of seconds from 1 to ${MAX_TICKET_SECONDS}`, 'unset it');
  }
  return Number(raw);
}
