import { randomBytes } from 'node:crypto';
import { serializeDocument } from '../format/document.js';
import { assertCheckpointId } from '../format/ids.js';
import { checkpointKey } from '../format/layout.js';
import { FORMAT_VERSION } from '../format/schema.js';
import {
  MAX_TICKET_BYTES,
  MAX_TICKET_SECONDS,
  PullTicket,
  PushTicket,
  TICKET_ID,
  TICKET_KIND,
  incomingPrefix,
  ticketKey,
  ticketsPrefix,
} from '../format/ticketSchema.js';
import { getBytesFromUrl } from '../remote/http.js';
import type { Remote } from '../remote/remote.js';
import { explainExpired, presignedExpiry, TicketRemote } from '../remote/ticketRemote.js';
import type { Presigner, Sealing } from '../remote/remote.js';
import { redact } from '../util/redact.js';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { isSealed, openBytes, sealBytes } from '../util/seal.js';
import type { Context } from './context.js';
import { SessmigError, usageError } from '../util/errors.js';
import { pull, type PullOptions, type PullResult } from './pull.js';
import { ago, parseDuration } from '../util/duration.js';
import { parseTicket, ticketTime } from '../format/ticketDocument.js';
export { ago, parseTicket, ticketTime };
import { readManifest, readPointer } from './remoteStore.js';
import { objectsOf, storedObjectKey } from './checkpointObjects.js';
import type { Manifest } from '../format/schema.js';

/**
 * Pull tickets (docs/FORMAT.md, "Tickets"): `mintPullTicket` runs on a host with credentials and
 * stores a document of presigned GETs (the checkpoint's manifest and every blob) under the
 * worktree's `tickets/`, returning one presigned GET of that document; `pullFromTicket` runs on a
 * host without credentials: it fetches and checks the ticket, then runs the ordinary pull with a
 * TicketRemote. No URL is ever put in a message: only `mintPullTicket`'s return value holds one.
 */

export const DEFAULT_TICKET_SECONDS = 3600;
export const MIN_TICKET_SECONDS = 30;
/** Parses `--expires` with the one duration grammar (util/duration.ts), from 30s to 7d. */
export function parseExpires(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TICKET_SECONDS;
  const seconds = parseDuration(value, '--expires') / 1000;
  if (!(seconds >= MIN_TICKET_SECONDS && seconds <= MAX_TICKET_SECONDS) || !Number.isInteger(seconds)) {
    throw usageError(
      'bad-flag',
      `--expires ${JSON.stringify(value.slice(0, 40))} is not a duration from 30s to 7d`,
      'give whole numbers with units (s, m, h, d, w): 30s, 15m, 1h (the default), 7d (or 1w, 1h30m: S3 presigned URLs last at most 7 days)',
    );
  }
  return seconds;
}

export interface MintOptions {
  /** The checkpoint to share; default: the worktree's current one. */
  checkpoint?: string;
  expiresInSeconds: number;
}

export interface MintedTicket {
  /** The presigned GET of the ticket document: the one secret this module hands out. */
  url: string;
  ticket: PullTicket;
  /** The ticket document's key in the remote. */
  key: string;
  sessions: number;
  bytes: number;
}

type MintContext = Pick<Context, 'remote' | 'worktree' | 'host' | 'report' | 'env'>;

export async function mintPullTicket(ctx: MintContext, options: MintOptions): Promise<MintedTicket> {
  const { worktree, report } = ctx;
  // An encrypted worktree: documents read through the key, URLs signed for the sealed objects.
  const { sealing, remote, presigner } = ticketStore(
    ctx.remote,
    'a host that can read the folder pulls from it directly (--remote file://…); to share with a host without access, push to an s3:// remote and share from there',
  );
  if (!Number.isInteger(options.expiresInSeconds) || options.expiresInSeconds < 1 || options.expiresInSeconds > MAX_TICKET_SECONDS) {
    throw usageError('bad-flag', `a ticket lives from 1 second to ${MAX_TICKET_SECONDS} seconds (7 days)`, 'pass --expires 30s … 7d');
  }
  let checkpoint = options.checkpoint === undefined ? undefined : assertCheckpointId(options.checkpoint);
  if (checkpoint === undefined) {
    const pointer = await readPointer(ctx.remote, worktree.key);
    if (!pointer) {
      throw new SessmigError('nothing-pushed', `nothing was pushed for worktree ${worktree.key} to ${remote.display}`, {
        hint: 'push first (sessmig push), or check --remote and --worktree (see `sessmig ls`)',
      });
    }
    checkpoint = pointer.pointer.checkpoint;
  }
  const manifest = await readManifest(ctx.remote, worktree.key, checkpoint);

  // SigV4 dates have whole seconds: starting from a whole second, every URL lives at least until expiresAt.
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const seconds = options.expiresInSeconds;
  const id = newTicketId(now);
  const { blobs, files, code, blobKeys, codeKeys } = await signObjects(ctx, manifest, seconds, presigner, sealing);
  const ticket: PullTicket = {
    formatVersion: FORMAT_VERSION,
    kind: TICKET_KIND,
    direction: 'pull',
    id,
    worktree: worktree.key,
    checkpoint: manifest.id,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + seconds * 1000).toISOString(),
    remote: remote.display,
    issuedBy: { hostId: ctx.host.hostId, hostname: ctx.host.hostname },
    urls: { manifest: await presigner.presignGet(checkpointKey(worktree.key, manifest.id), seconds), blobs, ...(Object.keys(files).length > 0 ? { files } : {}), ...(Object.keys(code).length > 0 ? { code } : {}) },
    ...(sealing ? { sealed: { manifest, blobKeys, ...(Object.keys(codeKeys).length > 0 ? { codeKeys } : {}) } } : {}),
  };
  // Sealed to a key of its own, which travels in the URL's fragment (never sent to a server).
  const ticketKeyPair = sealing ? await generateX25519Identity() : undefined;
  const body = ticketKeyPair ? await sealBytes(serializeDocument(ticket), await identityToRecipient(ticketKeyPair)) : serializeDocument(ticket);
  if (body.length > MAX_TICKET_BYTES) {
    throw new SessmigError(
      'ticket-too-large',
      `a ticket for checkpoint ${manifest.id} (${Object.keys(blobs).length} blobs) would be ${body.length} bytes, which exceeds ${MAX_TICKET_BYTES} bytes`,
      { hint: 'pull on a host with credentials instead, or push fewer sessions to a worktree of their own (push --session … --worktree NAME) and share that' },
    );
  }
  const key = ticketKey(worktree.key, id);
  await remote.put(key, body, { ifNoneMatch: true });
  const url = `${await presigner.presignGet(key, seconds)}${ticketKeyPair ? `#${ticketKeyPair}` : ''}`;
  if (ctx.env.AWS_SESSION_TOKEN) {
    report.warn(`the URLs are signed with temporary credentials (AWS_SESSION_TOKEN): they stop working when those expire, which may be before ${ticket.expiresAt}`);
  }
  await pruneExpiredTickets(remote, worktree.key, now, report);
  return { url, ticket, key, sessions: manifest.sessions.length, bytes: body.length };
}

/**
 * Presigned GETs of every object the checkpoint names (core/checkpointObjects.ts: blobs, tool
 * outputs, snapshot packs, code bundles), grouped as the ticket carries them (docs/FORMAT.md,
 * "Tickets"), each signed for its stored key; on an encrypted worktree also each object's age
 * identity, which travels inside the sealed ticket.
 */
async function signObjects(ctx: MintContext, manifest: Manifest, seconds: number, presigner: Presigner, sealing: Sealing | undefined) {
  const blobs: Record<string, string> = {};
  const files: Record<string, string> = {};
  const code: Record<string, string> = {};
  const blobKeys: Record<string, string> = {};
  const codeKeys: Record<string, string> = {};
  const unique = new Map(objectsOf(manifest).map((object) => [`${object.kind}:${object.sha256}`, object]));
  await Promise.all(
    [...unique.values()].map(async ({ kind, sha256 }) => {
      const url = await presigner.presignGet(storedObjectKey(ctx.remote, ctx.worktree.key, kind, sha256), seconds);
      if (kind === 'blob') blobs[sha256] = url;
      else if (kind === 'bundle') code[sha256] = url;
      else files[`${sha256}.${kind}`] = url;
      if (sealing && kind === 'bundle') codeKeys[sha256] = sealing.key.codeIdentity(sha256);
      else if (sealing) blobKeys[sha256] = sealing.key.blobIdentity(sha256);
    }),
  );
  return { blobs, files, code, blobKeys, codeKeys };
}

/**
 * Where tickets are signed: an s3:// remote (the store under an encrypted worktree's sealing,
 * which then seals the ticket too). A local folder has no presigned URLs.
 */
export function ticketStore(remote: Remote, folderHint: string): { sealing: Sealing | undefined; remote: Remote; presigner: Presigner } {
  const sealing = remote.sealing;
  const store = sealing ? sealing.inner : remote;
  const presigner = store.presigner;
  if (!presigner) {
    throw usageError('ticket-needs-s3', `tickets need an s3:// remote; ${store.display} is a local folder`, folderHint);
  }
  return { sealing, remote: store, presigner };
}

/** A ticket id: its UTC creation time to the millisecond (sortable), then 16 random hex digits. */
export function newTicketId(now: Date): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace('.', '')}-${randomBytes(8).toString('hex')}`;
}

/**
 * Removes ticket documents older than the longest lifetime (their names start with their creation
 * time), and what was uploaded through such tickets but never taken in. Failures only warn.
 */
export async function pruneExpiredTickets(remote: Remote, worktree: string, now: Date, report: Context['report']): Promise<number> {
  const cutoff = now.getTime() - MAX_TICKET_SECONDS * 1000 - 3600_000;
  const stale: string[] = [];
  try {
    for (const prefix of [ticketsPrefix(worktree), incomingPrefix(worktree)]) {
      for await (const item of remote.list(prefix)) {
        const name = item.key.slice(prefix.length);
        const id = /^(\d{8}T\d{9}Z-[0-9a-f]{16})(?:\.json$|\/)/.exec(name)?.[1];
        if (id === undefined || !TICKET_ID.test(id)) continue;
        if (ticketTime(id) < cutoff) stale.push(item.key);
      }
    }
    for (const key of stale) await remote.delete(key);
  } catch (error) {
    report.warn(`could not remove expired tickets: ${redact((error as Error).message)}`);
  }
  return stale.length;
}

/** Downloads a ticket document (at most MAX_TICKET_BYTES) from its presigned URL and parses it. */
export async function fetchTicket(url: string, now?: () => Date): Promise<PullTicket>;
export async function fetchTicket(url: string, now: (() => Date) | undefined, direction: 'push'): Promise<PushTicket>;
export async function fetchTicket(url: string, now?: () => Date, direction: 'pull' | 'push' = 'pull'): Promise<PullTicket | PushTicket> {
  const flag = direction === 'pull' ? '--from-url' : '--to-url';
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
    throw usageError('bad-ticket-url', `${flag} takes an http(s) URL (the one \`sessmig share${direction === 'push' ? ' --upload' : ''}\` printed)`, 'quote the URL in the shell: its & would split the command');
  }
  const clock = now ?? (() => new Date());
  const urlExpiry = presignedExpiry(parsed);
  if (urlExpiry !== undefined && urlExpiry <= clock().getTime()) {
    throw new SessmigError('ticket-expired', `the ticket URL expired at ${new Date(urlExpiry).toISOString()} (${ago(clock().getTime() - urlExpiry)} ago); nothing was ${direction === 'push' ? 'uploaded' : 'downloaded'}`, {
      hint: 'ask the host that shared it for a new ticket (sessmig share there) and re-run',
    });
  }
  // The fragment (an encrypted worktree's ticket key) is never sent: fetch the URL without it.
  const hash = url.indexOf('#');
  const fragment = hash >= 0 ? decodeURIComponent(url.slice(hash + 1)) : undefined;
  const bare = hash >= 0 ? url.slice(0, hash) : url;
  if (fragment !== undefined && fragment !== '' && !/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/.test(fragment)) {
    throw usageError('ticket-key-damaged', `the URL's #key part is damaged (it is not an age identity); nothing was ${direction === 'push' ? 'uploaded' : 'downloaded'}`, 'copy the whole URL again, with everything after the #');
  }
  let bytes: Buffer;
  try {
    bytes = await getBytesFromUrl(bare, MAX_TICKET_BYTES, { what: 'ticket' });
  } catch (caught) {
    const error = explainExpired(caught, url);
    if (error instanceof SessmigError && error.code === 'not-found') {
      throw new SessmigError('not-found', `${error.message} (the ticket was deleted, or the URL was cut short)`, {
        hint: 'copy the whole URL again, or ask the host that shared it for a new ticket (sessmig share)',
        ...(error.data ? { data: error.data } : {}),
      });
    }
    if (error instanceof SessmigError && error.code === 'access-denied') {
      throw new SessmigError('access-denied', error.message, {
        hint: 'the ticket may have been deleted or the URL cut short; copy the whole URL again, or ask for a new ticket (sessmig share)',
        ...(error.data ? { data: error.data } : {}),
      });
    }
    throw error;
  }
  if (isSealed(bytes)) {
    if (!fragment) {
      throw usageError(
        'ticket-key-missing',
        'the ticket is encrypted, and the URL has no #key part to open it with; nothing was downloaded',
        'copy the whole URL, with everything after the # (quote it in the shell)',
      );
    }
    try {
      bytes = await openBytes(bytes, fragment, 'the ticket');
    } catch (error) {
      throw new SessmigError('ticket-key-wrong', `the ticket cannot be opened with the URL's #key part (${(error as Error).message}); nothing was downloaded`, {
        hint: 'copy the whole URL again (the part after # belongs to this ticket), or ask for a new ticket',
      });
    }
  }
  return direction === 'push' ? parseTicket(bytes, clock(), 'push') : parseTicket(bytes, clock());
}

export interface TicketPullResult extends PullResult {
  ticket: { id: string; expiresAt: string; issuedBy: { hostId: string; hostname: string } };
}

/** `sessmig pull --from-url`: the ordinary pull of the ticket's checkpoint, read through its URLs. */
export async function pullFromTicket(
  ctx: Context,
  url: string,
  options: Omit<PullOptions, 'checkpoint'> = {},
): Promise<TicketPullResult> {
  const ticket = await ctx.timing.time('list', () => fetchTicket(url));
  // An empty folder (a fresh box) has no repository to key it by: the ticket names its worktree.
  if (ctx.worktree.keySource === 'ticket') ctx = { ...ctx, worktree: { ...ctx.worktree, key: ticket.worktree } };
  assertTicketWorktree(ctx, ticket, 'pulled');
  ctx.report.info(
    `ticket ${ticket.id} from ${ticket.issuedBy.hostname}: checkpoint ${ticket.checkpoint} of ${ticket.remote}, valid until ${ticket.expiresAt}`,
  );
  const remote = new TicketRemote(ticket);
  const { migrate, ...rest } = options;
  if (rest.code && ticket.urls.code === undefined) rest.code = await codeTravels(ctx, remote, ticket);
  const result = await pull({ ...ctx, remote }, { ...rest, checkpoint: ticket.checkpoint });
  if (migrate) {
    // The pointer needs credentials: ownership stays where the host that shared the ticket left it.
    ctx.report.info(
      `took the sessions over through a ticket; the remote's ownership is left to ${ticket.issuedBy.hostname}, which shared it: hand them back with \`sessmig push --to-url URL --migrate\` (URL from \`sessmig share --upload\` there), then \`sessmig pull --migrate\` there`,
    );
  }
  return { ...result, ticket: { id: ticket.id, expiresAt: ticket.expiresAt, issuedBy: ticket.issuedBy } };
}

/**
 * A ticket without `urls.code` (minted by an older sessmig) cannot carry the code: false, with a
 * warning when the checkpoint has code that therefore stays behind (pull.ts then pulls sessions only).
 */
async function codeTravels(ctx: Context, remote: TicketRemote, ticket: PullTicket): Promise<boolean> {
  const manifest = await readManifest(remote, ticket.worktree, ticket.checkpoint);
  if (manifest.code !== undefined) {
    ctx.report.warn(
      `checkpoint ${ticket.checkpoint} carries code, but ticket ${ticket.id} has no URLs for it (minted by an older sessmig): only the sessions are pulled, the code did not travel; ask ${ticket.issuedBy.hostname} for a new ticket (sessmig share) to get the code too`,
    );
  }
  return false;
}

/** A ticket works for the worktree it was minted for only. */
export function assertTicketWorktree(ctx: Pick<Context, 'worktree'>, ticket: { worktree: string }, done: 'pulled' | 'uploaded'): void {
  if (ticket.worktree === ctx.worktree.key) return;
  throw usageError(
    'ticket-other-worktree',
    `the ticket is for worktree ${ticket.worktree}, but this worktree's key is ${ctx.worktree.key}; nothing was ${done}`,
    ctx.worktree.keySource === 'flag'
      ? `run it with --worktree ${ticket.worktree}, or ask for a ticket of worktree ${ctx.worktree.key}`
      : `run it inside a clone of the repository it was shared from, or pass --worktree ${ticket.worktree}`,
  );
}

