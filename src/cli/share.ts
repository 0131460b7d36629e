import type { Command } from 'commander';
import { usageError } from '../util/errors.js';
import { mintPullTicket, parseExpires } from '../core/ticket.js';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_SESSIONS, mintPushTicket, parseSize } from '../core/uploadTicket.js';
import { MAX_SLOTS, MAX_TICKET_SECONDS } from '../format/ticketSchema.js';
import path from 'node:path';
import { DEFAULT_CODE_MAX_BYTES } from '../format/codeLayout.js';
import { assertOutputFree, writeTicketFile } from './ticketUrl.js';
import { addCommonOptions, formatBytes, parsePositiveInt, withContext, type CommonOptions, type Io } from './options.js';

interface ShareFlags extends CommonOptions {
  checkpoint?: string;
  expires?: string;
  upload?: boolean;
  maxSessions?: string;
  maxBytes?: string;
  codeMaxBytes?: string;
  output?: string;
  overwrite?: boolean;
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
      .option('--max-bytes <size>', `upload ticket: the largest compressed session it takes, e.g. 256MiB (default ${formatBytes(DEFAULT_MAX_BYTES)}, at most 5GiB)`)
      .option('--code-max-bytes <size>', `upload ticket: the largest code bundle it takes (the code leg of push --to-url --migrate), e.g. 1GiB (default ${formatBytes(DEFAULT_CODE_MAX_BYTES)}, at most 5GiB)`)
      .option('-o, --output <file>', 'write the URL to this file, created readable by this user only (0600), instead of stdout')
      .option('--overwrite', 'with --output: replace an existing file'),
  ).action(async (flags: ShareFlags) => {
    const seconds = testSeconds(io.env) ?? parseExpires(flags.expires);
    if (flags.overwrite && flags.output === undefined) throw usageError('bad-flag', '--overwrite applies to --output only', 'add --output FILE, or drop --overwrite');
    const output = flags.output === undefined ? undefined : path.resolve(io.cwd, flags.output);
    if (output !== undefined) await assertOutputFree(output, flags.overwrite === true);
    /** The URL goes to --output (then stdout never holds it), else to stdout. */
    const deliver = async (url: string, pickUp: string): Promise<Record<string, string>> => {
      if (output === undefined) return { url };
      await writeTicketFile(output, url, flags.overwrite === true);
      if (!flags.quiet) io.stderr(`wrote the URL to ${output} (mode 0600); on the other host: ${pickUp} < ${path.basename(output)}\n`);
      return { output };
    };
    if (flags.upload) {
      if (flags.checkpoint !== undefined) throw usageError('bad-flag', '--upload and --checkpoint contradict each other: an upload makes a new checkpoint', 'drop --checkpoint');
      const maxSessions = parsePositiveInt(flags.maxSessions, '--max-sessions', DEFAULT_MAX_SESSIONS, MAX_SLOTS);
      const maxBytes = parseSize(flags.maxBytes, '--max-bytes', DEFAULT_MAX_BYTES);
      const maxCodeBytes = parseSize(flags.codeMaxBytes, '--code-max-bytes', DEFAULT_CODE_MAX_BYTES);
      const minted = await withContext(flags, io, (ctx) => mintPushTicket(ctx, { expiresInSeconds: seconds, maxSessions, maxBytes, maxCodeBytes }), { remote: true, opencode: false });
      const { ticket } = minted;
      if (!flags.quiet) {
        io.stderr(
          `upload ticket ${ticket.id}: up to ${maxSessions} session(s) of at most ${formatBytes(maxBytes)} each into worktree ${ticket.worktree}, valid until ${ticket.expiresAt}\n` +
            'anyone with the URL can upload until then; on the other host: sessmig push --to-url - (the URL on standard input); then here: sessmig pull (--migrate to take ownership)\n',
        );
      }
      const where = await deliver(minted.url, 'sessmig push --to-url -');
      if (flags.json) {
        io.stdout(`${JSON.stringify({ command: 'share', direction: 'push', ...where, ticket: ticket.id, key: minted.key, remote: ticket.remote, worktree: ticket.worktree, checkpoint: ticket.checkpoint, parent: ticket.parent, maxSessions, maxBytes, maxCodeBytes, bytes: minted.bytes, createdAt: ticket.createdAt, expiresAt: ticket.expiresAt }, null, 2)}\n`);
      } else if (output === undefined) {
        io.stdout(`${minted.url}\n`);
      }
      done(0);
      return;
    }
    if (flags.maxSessions !== undefined || flags.maxBytes !== undefined || flags.codeMaxBytes !== undefined) {
      throw usageError('bad-flag', '--max-sessions, --max-bytes and --code-max-bytes apply to upload tickets only', 'add --upload, or drop them');
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
          'anyone with the URL can read these sessions until then; on the other host: sessmig pull --from-url - (the URL on standard input)\n',
      );
    }
    const where = await deliver(minted.url, 'sessmig pull --from-url -');
    // The one place a URL's signature is printed: deliberately not redacted.
    if (flags.json) {
      io.stdout(
        `${JSON.stringify(
          {
            command: 'share',
            direction: 'pull',
            ...where,
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
    } else if (output === undefined) {
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
