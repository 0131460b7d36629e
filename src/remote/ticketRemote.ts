import type { Readable } from 'node:stream';
import { SessmigError } from '../util/errors.js';
import { blobKey, carriedFileKey, checkpointKey, type CarriedKind } from '../format/layout.js';
import { parseKey, PLAIN_BLOB_KINDS } from '../format/keys.js';
import type { PullTicket } from '../format/ticketSchema.js';
import { codeBundleKey } from '../format/codeLayout.js';
import { redact } from '../util/redact.js';
import { identityToRecipient } from 'age-encryption';
import { headerBytes, openStream, plainSize } from '../util/seal.js';
import { serializeDocument } from '../format/document.js';
import { getStreamFromUrl, httpError, readCapped } from './http.js';
import type { ListedObject, PutConditions, Remote, StoredObject } from './remote.js';
import { notFound, objectTooLarge } from './remoteErrors.js';

/**
 * A read-only remote made of a pull ticket's presigned URLs: the format's keys of the ticket's
 * checkpoint (its manifest, its blobs and carried files, its code bundles) map to their URLs; any other key is absent. Nothing
 * here needs credentials, and no URL is ever part of a message (only keys are).
 */
export class TicketRemote implements Remote {
  /** One ticket's objects only: no pointer, no uploads to take in. */
  readonly ticketOnly = true;
  readonly conditionalWrites = false;
  readonly display: string;
  private readonly urls = new Map<string, string>();

  constructor(readonly ticket: PullTicket) {
    // The remote the ticket points into: this host's sync state for it is the same as for a direct pull.
    this.display = ticket.remote;
    this.urls.set(checkpointKey(ticket.worktree, ticket.checkpoint), ticket.urls.manifest);
    for (const [sha256, url] of Object.entries(ticket.urls.blobs)) this.urls.set(blobKey(ticket.worktree, sha256), url);
    for (const [name, url] of Object.entries(ticket.urls.files ?? {})) {
      const [sha256, kind] = name.split('.') as [string, CarriedKind];
      this.urls.set(carriedFileKey(ticket.worktree, sha256, kind), url);
    }
    // The code leg's bundles (docs/FORMAT-code.md): read by the ordinary pull through codeBundleKey.
    for (const [sha256, url] of Object.entries(ticket.urls.code ?? {})) this.urls.set(codeBundleKey(ticket.worktree, sha256), url);
  }

  /** The keys this ticket can read. */
  keys(): string[] {
    return [...this.urls.keys()];
  }

  async get(key: string, maxBytes: number): Promise<StoredObject | undefined> {
    // An encrypted worktree's ticket carries its manifest (the checkpoint object is sealed to the user's key).
    if (this.ticket.sealed && key === checkpointKey(this.ticket.worktree, this.ticket.checkpoint)) {
      const body = serializeDocument(this.ticket.sealed.manifest);
      if (body.length > maxBytes) throw objectTooLarge(key, body.length, maxBytes);
      return { body, etag: '' };
    }
    const url = this.urls.get(key);
    if (url === undefined) return undefined;
    let stream: Readable;
    let etag = '';
    try {
      stream = await this.download(key, url);
    } catch (error) {
      if (error instanceof SessmigError && error.code === 'not-found') return undefined;
      throw error;
    }
    const body = await readCapped(stream, maxBytes, `remote object ${key}`);
    return { body, etag };
  }

  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    const url = this.urls.get(key);
    if (url === undefined) return undefined;
    // A presigned GET does not allow HEAD; a one-byte range GET tells the size instead.
    let response: Response;
    try {
      response = await fetch(url, { headers: { range: 'bytes=0-0' } });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new SessmigError('remote-unreachable', `stat of ${key}: cannot reach the S3 endpoint (${redact(String(cause?.code ?? cause?.message ?? (error as Error).message))})`, {
        hint: 'check the network, then re-run; nothing was changed',
      });
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    if (!response.ok) throw explainExpired(await httpError(response, `stat of ${key}`, 'download'), url);
    await response.body?.cancel();
    const range = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '')?.[1];
    let size = range !== undefined ? Number(range) : Number(response.headers.get('content-length') ?? 0);
    const identity = this.blobIdentity(key);
    if (identity) size = plainSize(size, await headerBytes(await identityToRecipient(identity)));
    return { size, etag: (response.headers.get('etag') ?? '').replace(/^W\//, '').replace(/^"|"$/g, '') };
  }

  async getStream(key: string): Promise<Readable> {
    const url = this.urls.get(key);
    if (url === undefined) throw notFound(key);
    const identity = this.blobIdentity(key);
    return identity ? openStream(await this.download(key, url), identity, `blob ${key}`) : this.download(key, url);
  }

  /** An encrypted ticket's key for the blob or code bundle at `key` (the format's key), if it has one. */
  private blobIdentity(key: string): string | undefined {
    const parsed = parseKey(key);
    if (!this.ticket.sealed || !parsed || parsed.worktree !== this.ticket.worktree) return undefined;
    if (PLAIN_BLOB_KINDS.includes(parsed.kind)) return this.ticket.sealed.blobKeys[parsed.id];
    return parsed.kind === 'bundle' ? this.ticket.sealed.codeKeys?.[parsed.id] : undefined;
  }

  private async download(key: string, url: string): Promise<Readable> {
    try {
      // No refresh: a host without credentials cannot re-sign an expired URL.
      return await getStreamFromUrl(url, { what: `download of ${key}` });
    } catch (error) {
      throw explainExpired(error, url);
    }
  }

  async put(key: string, _body?: Buffer, _conditions?: PutConditions): Promise<{ etag: string }> {
    throw readOnly(`write ${key}`);
  }

  async putFile(key: string): Promise<void> {
    throw readOnly(`upload ${key}`);
  }

  async delete(key: string): Promise<void> {
    throw readOnly(`delete ${key}`);
  }

  async touch(key: string): Promise<void> {
    throw readOnly(`touch ${key}`);
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    throw new SessmigError('ticket-read-only', `a pull ticket cannot list ${prefix}: it names one checkpoint's objects only`, {
      hint: 'run this command on a host with credentials for the remote',
    });
  }
}

/** When a SigV4 presigned URL stops working (X-Amz-Date + X-Amz-Expires), if it says so. */
export function presignedExpiry(url: URL): number | undefined {
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(url.searchParams.get('X-Amz-Date') ?? '');
  const expires = url.searchParams.get('X-Amz-Expires');
  if (!date || !expires || !/^\d{1,7}$/.test(expires)) return undefined;
  const signed = Date.parse(`${date[1]}-${date[2]}-${date[3]}T${date[4]}:${date[5]}:${date[6]}Z`);
  return Number.isFinite(signed) ? signed + Number(expires) * 1000 : undefined;
}

/**
 * Some stores (Ceph RGW) answer an expired presigned URL with a bare 403 AccessDenied: when the
 * URL's own expiry has passed, say that it expired.
 */
export function explainExpired(error: unknown, url: string, now = Date.now()): unknown {
  if (!(error instanceof SessmigError) || error.code !== 'access-denied') return error;
  let expiry: number | undefined;
  try {
    expiry = presignedExpiry(new URL(url));
  } catch {
    expiry = undefined;
  }
  if (expiry === undefined || expiry > now) return error;
  return new SessmigError('url-expired', `${error.message.replace(/: access denied.*$/, '')}: the presigned URL expired at ${new Date(expiry).toISOString()}`, {
    hint: 'ask the host that shared it for a new ticket (sessmig share there) and re-run',
    ...(error.data ? { data: error.data } : {}),
  });
}

function readOnly(action: string): SessmigError {
  return new SessmigError('ticket-read-only', `a pull ticket is read-only: cannot ${action}`, {
    hint: 'writing to the remote needs credentials; run this on a host that has them',
  });
}
