import { captureCode, type CapturedCode } from '../code/capture.js';
import { readCodeState } from '../code/codeLeg.js';
import { DEFAULT_CODE_MAX_BYTES } from '../format/codeLayout.js';
import type { PushTicket } from '../format/ticketSchema.js';
import { putFileToUrl } from '../remote/http.js';
import { explainExpired } from '../remote/ticketRemote.js';
import { SessmigError } from '../util/errors.js';
import { sealFile } from '../util/seal.js';
import type { Context } from './context.js';

/**
 * The code leg through an upload ticket (docs/FORMAT-code.md, "Through tickets"), on the host
 * without credentials: `captureForTicket` captures the checkout against the ticket's `base.code`
 * (the parent checkpoint's code part) and checks that the new bundles fit the ticket's code slots;
 * `uploadCodeBundles` puts each through its slot, padded with zero bytes to a size class. The
 * upload manifest then carries `code` (the new state) and `codeUploads` (which bundle is in which
 * slot), and the host with credentials verifies them when it takes the upload in (incomingCode.ts).
 */

/** One new bundle on its way through a code slot. */
export interface CodeUpload {
  slot: number;
  sha256: string;
  /** The file that goes up: the bundle, or on an encrypted worktree the bundle sealed to the ticket's recipient. */
  file: string;
  /** That file's size in bytes. */
  size: number;
  /** Encrypted worktrees: the sealed file's size (the manifest records it: the taker cuts the padding there). */
  sealedBytes?: number;
}

export interface TicketCode {
  captured: CapturedCode;
  uploads: CodeUpload[];
}

/** The entry of one uploaded bundle in the upload manifest's `codeUploads`. */
export interface CodeUploadEntry {
  slot: number;
  sha256: string;
  sealedBytes?: number;
}

/**
 * Captures the checkout for an upload through `ticket`; undefined (with a warning) when the ticket
 * has no code slots (minted by an older sessmig). Errors: captureCode's, `code-too-large` (exit 2)
 * when a new bundle is over the ticket's cap or there are more new bundles than code slots.
 */
export async function captureForTicket(ctx: Context, ticket: PushTicket, options: { maxBytes?: number }): Promise<TicketCode | undefined> {
  const slots = ticket.urls.code ?? [];
  if (slots.length === 0 || ticket.limits.maxCodeBytes === undefined) {
    ctx.report.warn(`upload ticket ${ticket.id} has no code slots (minted by an older sessmig): only the sessions are uploaded, the code does not travel; ask ${ticket.issuedBy.hostname} for a new ticket (sessmig share --upload) to hand the code back too`);
    return undefined;
  }
  const base = ticket.base?.code === undefined ? undefined : readCodeState({ id: ticket.parent ?? ticket.checkpoint, code: ticket.base.code });
  const captured = await ctx.timing.time('code', () =>
    captureCode(ctx.worktree.root, { tempDir: ctx.tempDir, base, maxBytes: options.maxBytes ?? DEFAULT_CODE_MAX_BYTES, env: ctx.env }),
  );
  for (const warning of captured.warnings) ctx.report.warn(warning);
  if (captured.newBundles.length > slots.length) {
    throw new SessmigError('code-too-large', `the code leg needs ${captured.newBundles.length} new bundles, but upload ticket ${ticket.id} has ${slots.length} code slot(s); nothing was uploaded`, {
      hint: 'ask for a new ticket (sessmig share --upload), or push with --no-code',
    });
  }
  const recipient = ticket.sealed?.recipient;
  const uploads: CodeUpload[] = [];
  for (const [slot, bundle] of captured.newBundles.entries()) {
    const sealedBytes = recipient ? await sealFile(bundle.file, `${bundle.file}.age`, recipient) : undefined;
    const size = sealedBytes ?? bundle.bytes;
    if (size > ticket.limits.maxCodeBytes || fitClass(slots[slot]!, size) === undefined) {
      throw new SessmigError('code-too-large', `a new code bundle is ${bundle.bytes} bytes, over upload ticket ${ticket.id}'s cap of ${ticket.limits.maxCodeBytes} bytes per bundle; nothing was uploaded`, {
        hint: `ask for a ticket with a larger cap (sessmig share --upload --code-max-bytes ${Math.ceil(size / 1024 ** 2) + 1}MiB), or push with --no-code`,
      });
    }
    uploads.push({ slot, sha256: bundle.sha256, file: sealedBytes === undefined ? bundle.file : `${bundle.file}.age`, size, ...(sealedBytes !== undefined ? { sealedBytes } : {}) });
  }
  return { captured, uploads };
}

/** Uploads each new bundle through its code slot (zero padding up to the smallest class that fits). Returns the bytes sent. */
export async function uploadCodeBundles(ctx: Context, ticket: PushTicket, uploads: readonly CodeUpload[]): Promise<number> {
  let sent = 0;
  for (const upload of uploads) {
    ctx.signal.throwIfAborted();
    const urls = ticket.urls.code![upload.slot]!;
    const size = fitClass(urls, upload.size)!;
    await ctx.timing.time('upload', () => putThroughTicket(urls[String(size)]!, upload.file, upload.size, size, 0, `upload of code bundle ${upload.sha256.slice(0, 12)} (code slot ${upload.slot})`));
    sent += size;
  }
  return sent;
}

/** The manifest's record of the uploaded bundles. */
export function codeUploadEntries(uploads: readonly CodeUpload[]): CodeUploadEntry[] {
  return uploads.map((upload) => ({ slot: upload.slot, sha256: upload.sha256, ...(upload.sealedBytes !== undefined ? { sealedBytes: upload.sealedBytes } : {}) }));
}

/** The smallest size class of a slot (its URLs keyed by class in bytes) that holds `size` bytes. */
export function fitClass(urls: Record<string, string>, size: number): number | undefined {
  return Object.keys(urls)
    .map(Number)
    .sort((a, b) => a - b)
    .find((candidate) => candidate >= size);
}

/** One presigned PUT of `file`, padded with `byte` to `padTo` bytes; an expired URL says the upload is incomplete. */
export async function putThroughTicket(url: string, file: string, size: number, padTo: number, byte: number, what: string): Promise<void> {
  try {
    // No refresh: a host without credentials cannot re-sign an expired URL.
    await putFileToUrl(url, file, size, { what, pad: { to: padTo, byte } });
  } catch (error) {
    const explained = explainExpired(error, url);
    if (explained instanceof SessmigError && explained.code === 'url-expired') {
      throw new SessmigError('url-expired', `${explained.message}; the upload is incomplete and will not be taken in`, {
        hint: 'ask the host with credentials for a new upload ticket (sessmig share --upload) and push again',
        ...(explained.data ? { data: explained.data } : {}),
      });
    }
    throw explained;
  }
}
