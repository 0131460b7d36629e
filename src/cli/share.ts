import type { Command } from 'commander';
import { usageError } from '../core/errors.js';
import { mintPullTicket, parseExpires } from '../core/ticket.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_SESSIONS, mintPushTicket, parseSize } from '../core/uploadTicket.js';
import { MAX_SLOTS, MAX_TICKET_SECONDS } from '../format/ticketSchema.js';
import { addCommonOptions, formatBytes, parsePositiveInt, withContext, type CommonOptions, type Io } from './options.js';

interface ShareFlags extends CommonOptions {
  checkpoint?: string;
  expires?: string;
  upload?: boolean;
  maxSessions?: string;
  maxBytes?: string;
}

export function registerShare(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('share')
      .description('mint a ticket: one URL with which a host without credentials runs `sessmig pull --from-url URL` (or, with --upload, `sessmig push --to-url URL`); s3:// remotes')
      .option('-c, --checkpoint <id>', 'share this checkpoint instead of the current one')
      .option('--expires <duration>', 'how long the URL works: 30s, 15m, 1h, 7d (at most 7 days)', '1h')
      .option('--upload', 'mint an upload ticket: the other host pushes its sessions through it; `sessmig pull` here takes them in after verifying them')
      .option('--max-sessions <n>', `upload ticket: how many sessions (subagent children included) it takes (default ${DEFAULT_MAX_SESSIONS}, at most ${MAX_SLOTS})`)
      .option('--max-bytes <size>', `upload ticket: the largest compressed session it takes, e.g. 256MiB (default ${formatBytes(DEFAULT_MAX_BYTES)}, at most 5GiB)`),
  ).action(async (flags: ShareFlags) => {
    const seconds = testSeconds(io.env) ?? parseExpires(flags.expires);
    if (flags.upload) {
      if (flags.checkpoint !== undefined) throw usageError('bad-flag', '--upload and --checkpoint contradict each other: an upload makes a new checkpoint', 'drop --checkpoint');
      const maxSessions = parsePositiveInt(flags.maxSessions, '--max-sessions', DEFAULT_MAX_SESSIONS, MAX_SLOTS);
      const maxBytes = parseSize(flags.maxBytes, '--max-bytes', DEFAULT_MAX_BYTES);
      const minted = await withContext(flags, io, (ctx) => mintPushTicket(ctx, { expiresInSeconds: seconds, maxSessions, maxBytes }), { remote: true, opencode: false });
      const { ticket } = minted;
      if (!flags.quiet) {
        io.stderr(
          `upload ticket ${ticket.id}: up to ${maxSessions} session(s) of at most ${formatBytes(maxBytes)} each into worktree ${ticket.worktree}, valid until ${ticket.expiresAt}\n` +
            'anyone with the URL can upload until then; on the other host: sessmig push --to-url "URL"; then here: sessmig pull (--migrate to take ownership)\n',
        );
      }
      if (flags.json) {
        io.stdout(`${JSON.stringify({ command: 'share', direction: 'push', url: minted.url, ticket: ticket.id, key: minted.key, remote: ticket.remote, worktree: ticket.worktree, checkpoint: ticket.checkpoint, parent: ticket.parent, maxSessions, maxBytes, bytes: minted.bytes, createdAt: ticket.createdAt, expiresAt: ticket.expiresAt }, null, 2)}\n`);
      } else {
        io.stdout(`${minted.url}\n`);
      }
      done(0);
      return;
    }
    if (flags.maxSessions !== undefined || flags.maxBytes !== undefined) {
      throw usageError('bad-flag', '--max-sessions and --max-bytes apply to upload tickets only', 'add --upload, or drop them');
    }
    const minted = await withContext(
      flags,
      io,
      (ctx) => mintPullTicket(ctx, { ...(flags.checkpoint !== undefined ? { checkpoint: flags.checkpoint } : {}), expiresInSeconds: seconds }),
      { remote: true, opencode: false },
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
            direction: 'pull',
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
