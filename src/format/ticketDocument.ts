import { FORMAT_VERSION } from './schema.js';
import { MAX_TICKET_BYTES, PullTicket, PushTicket, TICKET_KIND, TicketHeader } from './ticketSchema.js';
import { SessmigError, usageError } from '../util/errors.js';
import { ago } from '../util/duration.js';
import { redact } from '../util/redact.js';

/**
 * The ticket document read back (docs/FORMAT.md, "Tickets"): parsing and its refusals. Kept
 * apart from core/ticket.ts (minting, fetching, pulling through one) so that taking in an upload
 * can read its ticket without depending on pull.
 */

/** When a ticket was minted, from its id. */
export function ticketTime(id: string): number {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  return match ? Date.parse(`${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}.${match[7]}Z`) : NaN;
}

/**
 * Reads a ticket document: refuses it when it is not JSON, not a ticket, from a future format,
 * not a pull ticket, off its schema, or expired — each with its own message.
 */
export function parseTicket(bytes: Buffer, now?: Date): PullTicket;
export function parseTicket(bytes: Buffer, now: Date | undefined, direction: 'push'): PushTicket;
export function parseTicket(bytes: Buffer, now: Date | undefined, direction: 'pull'): PullTicket;
export function parseTicket(bytes: Buffer, now = new Date(), direction: 'pull' | 'push' = 'pull'): PullTicket | PushTicket {
  const again = 'ask the host that shared it for a new ticket (sessmig share there) and re-run';
  if (bytes.length > MAX_TICKET_BYTES) {
    throw new SessmigError('document-too-large', `ticket is ${bytes.length} bytes, which exceeds ${MAX_TICKET_BYTES} bytes`, { hint: again });
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new SessmigError('ticket-malformed', 'the ticket is not valid JSON: the URL does not point at a sessmig ticket, or the document is truncated', { hint: again });
  }
  const header = TicketHeader.safeParse(value);
  if (!header.success || header.data.kind !== TICKET_KIND) {
    const kind = header.success ? ` (a ${JSON.stringify(header.data.kind)} document)` : '';
    throw new SessmigError('not-a-ticket', `the URL points at something that is not a sessmig ticket${kind}`, {
      hint: 'pass the URL printed by `sessmig share`, not the URL of a checkpoint or blob',
    });
  }
  if (header.data.formatVersion > FORMAT_VERSION) {
    throw new SessmigError(
      'format-too-new',
      `the ticket has format version ${header.data.formatVersion}, newer than this sessmig reads (${FORMAT_VERSION}): upgrade sessmig`,
      { hint: 'upgrade sessmig on this host (npm i -g sessmig@latest)' },
    );
  }
  if (header.data.direction !== direction) {
    const known = header.data.direction === 'pull' || header.data.direction === 'push';
    throw usageError(
      'ticket-wrong-direction',
      known
        ? `the URL is ${header.data.direction === 'push' ? 'an upload ticket (for `sessmig push --to-url`)' : 'a pull ticket (for `sessmig pull --from-url`)'}, not ${direction === 'push' ? 'an upload' : 'a pull'} ticket`
        : `the ticket has direction ${JSON.stringify(header.data.direction ?? null)}, which this sessmig does not know: upgrade sessmig`,
      direction === 'pull'
        ? 'sessmig pull --from-url takes the URL printed by `sessmig share`; an upload ticket (`sessmig share --upload`) goes to `sessmig push --to-url`'
        : 'sessmig push --to-url takes the URL printed by `sessmig share --upload`; a pull ticket (`sessmig share`) goes to `sessmig pull --from-url`',
    );
  }
  const parsed = (direction === 'pull' ? PullTicket : PushTicket).safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new SessmigError('ticket-invalid', `the ticket is malformed at ${redact(where)}: ${issue?.message ?? 'invalid'}`, { hint: again });
  }
  const ticket = parsed.data;
  const expires = Date.parse(ticket.expiresAt);
  if (!(expires > now.getTime())) {
    throw new SessmigError('ticket-expired', `ticket ${ticket.id} expired at ${ticket.expiresAt} (${ago(now.getTime() - expires)} ago); nothing was ${direction === 'push' ? 'uploaded' : 'downloaded'}`, {
      hint: again,
    });
  }
  return ticket;
}

