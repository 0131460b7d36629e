import { z } from 'zod';
import { CHECKPOINT_ID, SHA256, WORKTREE_KEY } from './ids.js';
import { worktreePrefix } from './layout.js';
import { FORMAT_VERSION, Host } from './schema.js';
import { MAX_MANIFEST_BYTES } from './layout.js';

/**
 * Tickets (docs/FORMAT.md, "Tickets"): a document of presigned URLs that lets a host without
 * credentials read (direction "pull") one checkpoint of one worktree. The ticket itself is stored
 * under the worktree's reserved `tickets/` prefix and handed out as one presigned GET URL.
 *
 * `direction` leaves room for upload tickets ("push": presigned PUTs under `incoming/`); a reader
 * refuses a direction it does not know with its own message, before the schema check.
 */
export const TICKET_KIND = 'sessmig.ticket';
export const TICKET_DIRECTIONS = ['pull', 'push'] as const;

/** A ticket id: UTC creation time to the millisecond (sortable), then 16 random hex digits. */
export const TICKET_ID = /^\d{8}T\d{9}Z-[0-9a-f]{16}$/;

/** Size cap of a ticket document: larger ones are refused, never truncated. */
export const MAX_TICKET_BYTES = 4 * 1024 * 1024;

/** SigV4 presigned URLs live at most 7 days (S3's limit). */
export const MAX_TICKET_SECONDS = 7 * 24 * 3600;

const presignedUrl = z
  .string()
  .max(16_384)
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || url.protocol === 'http:';
    } catch {
      return false;
    }
  }, 'not an http(s) URL');

const ageIdentity = z.string().regex(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/, 'not an age identity');

export const PullTicket = z.looseObject({
  formatVersion: z.literal(FORMAT_VERSION),
  kind: z.literal(TICKET_KIND),
  direction: z.literal('pull'),
  id: z.string().regex(TICKET_ID, 'not a ticket id'),
  worktree: z.string().regex(WORKTREE_KEY, 'not a worktree key'),
  checkpoint: z.string().regex(CHECKPOINT_ID, 'not a checkpoint id'),
  createdAt: z.iso.datetime({ offset: true }),
  /** No URL of the ticket is valid after this time (each was signed for at least this long). */
  expiresAt: z.iso.datetime({ offset: true }),
  /** The remote the URLs point into, as `s3://bucket/prefix/` (no secrets): names this host's sync state. */
  remote: z.string().max(1100).regex(/^s3:\/\/[^\s?#]+$/, 'not an s3:// remote'),
  issuedBy: Host,
  urls: z.looseObject({
    /** Presigned GET of checkpoints/<checkpoint>.json. */
    manifest: presignedUrl,
    /** One presigned GET per blob of the checkpoint (children included), by sha256. */
    blobs: z.record(z.string().regex(SHA256, 'not a sha256 hex digest'), presignedUrl),
    /**
     * One presigned GET per file the checkpoint's sessions point at (docs/FORMAT-snapshots.md), by
     * `<sha256>.pack` / `<sha256>.out`. Optional: tickets of an older sessmig have none.
     */
    files: z.record(z.string().regex(/^[0-9a-f]{64}\.(?:pack|out)$/, 'not a carried file name'), presignedUrl).optional(),
    /**
     * One presigned GET per code bundle of the checkpoint's `code` part (docs/FORMAT-code.md), by
     * the bundle's sha256: `code/<sha256>.bundle`, or its sealed object on an encrypted worktree.
     * Optional: absent when the checkpoint carries no code, and in tickets of an older sessmig.
     */
    code: z.record(z.string().regex(SHA256, 'not a sha256 hex digest'), presignedUrl).optional(),
  }),
  /**
   * Encrypted worktrees only (the whole ticket document is then sealed to the key in the URL's
   * fragment): the checkpoint's manifest, and the age identity of each of its blobs (and carried files).
   */
  sealed: z
    .looseObject({
      manifest: z.unknown(),
      blobKeys: z.record(z.string().regex(SHA256, 'not a sha256 hex digest'), ageIdentity),
      /** The age identity of each code bundle in `urls.code`, by the bundle's sha256. Optional like `urls.code`. */
      codeKeys: z.record(z.string().regex(SHA256, 'not a sha256 hex digest'), ageIdentity).optional(),
    })
    .optional(),
});
export type PullTicket = z.infer<typeof PullTicket>;

/** Upload size classes start here and double up to the ticket's per-upload cap. */
export const MIN_SLOT_CLASS = 16 * 1024;
/** At most this many upload slots per ticket (`share --upload --max-sessions`). */
export const MAX_SLOTS = 1000;
/** Code slots per upload ticket: one capture uploads at most two new bundles (docs/FORMAT-code.md). */
export const MAX_CODE_SLOTS = 4;
/** Code slots a ticket is minted with (a capture's new chain is at most two bundles). */
export const CODE_SLOTS = 2;
/** The largest single upload (S3's single-PUT limit). */
export const MAX_UPLOAD_BYTES = 5 * 1024 ** 3;

/**
 * The sizes an upload slot accepts: a presigned PUT signs one exact Content-Length, so a slot holds
 * one URL per size class (16 KiB, doubling, capped by `max`); the uploader pads its object with zero
 * bytes (blobs) or spaces (the manifest) up to the smallest class that fits.
 */
export function sizeClasses(max: number): number[] {
  const classes: number[] = [];
  for (let size = MIN_SLOT_CLASS; size < max; size *= 2) classes.push(size);
  classes.push(max);
  return classes;
}

/** One upload slot: a presigned PUT per size class, keyed by the class in bytes (decimal). */
const slotUrls = z.record(z.string().regex(/^[1-9]\d{0,10}$/, 'not a size in bytes'), presignedUrl);

export const PushTicket = z.looseObject({
  formatVersion: z.literal(FORMAT_VERSION),
  kind: z.literal(TICKET_KIND),
  direction: z.literal('push'),
  id: z.string().regex(TICKET_ID, 'not a ticket id'),
  worktree: z.string().regex(WORKTREE_KEY, 'not a worktree key'),
  /** The checkpoint an upload through this ticket becomes, once verified by a host with credentials. */
  checkpoint: z.string().regex(CHECKPOINT_ID, 'not a checkpoint id'),
  /** The worktree's current checkpoint when the ticket was minted (null: nothing pushed yet). */
  parent: z.string().regex(CHECKPOINT_ID, 'not a checkpoint id').nullable(),
  createdAt: z.iso.datetime({ offset: true }),
  expiresAt: z.iso.datetime({ offset: true }),
  remote: z.string().max(1100).regex(/^s3:\/\/[^\s?#]+$/, 'not an s3:// remote'),
  issuedBy: Host,
  limits: z.looseObject({
    /** Upload slots: sessions (children included) one push through the ticket may carry. */
    maxSessions: z.number().int().min(1).max(MAX_SLOTS),
    /** The largest stored (gzip) blob one slot takes. */
    maxBytes: z.number().int().min(MIN_SLOT_CLASS).max(MAX_UPLOAD_BYTES),
    /** The largest code bundle one code slot takes (with `urls.code`; optional: older tickets carry no code). */
    maxCodeBytes: z.number().int().min(MIN_SLOT_CLASS).max(MAX_UPLOAD_BYTES).optional(),
  }),
  urls: z.looseObject({
    /** Presigned PUTs of incoming/<ticket>/manifest.json, one per size class. */
    manifest: slotUrls,
    /** Slot n: presigned PUTs of incoming/<ticket>/slots/<n>.json.gz, one per size class. */
    slots: z.array(slotUrls).max(MAX_SLOTS),
    /**
     * Code slot n: presigned PUTs of incoming/<ticket>/code/<n>.bundle, one per size class up to
     * `limits.maxCodeBytes` (docs/FORMAT-code.md, "Through tickets"). Optional: a ticket without
     * it (an older sessmig) takes sessions only.
     */
    code: z.array(slotUrls).max(MAX_CODE_SLOTS).optional(),
  }),
  /**
   * What the upload builds on (optional; inside the sealed document on an encrypted worktree):
   * `code` is the `code` part of the `parent` checkpoint, absent when it carries none. The
   * uploader captures its code incrementally against it.
   */
  base: z.looseObject({ code: z.unknown().optional() }).optional(),
  /** Encrypted worktrees only: seal every slot and the manifest to this age recipient. */
  sealed: z.looseObject({ recipient: z.string().regex(/^age1[0-9a-z]{58}$/, 'not an age recipient') }).optional(),
});
export type PushTicket = z.infer<typeof PushTicket>;

/** The size classes of an upload's manifest. */
export const MANIFEST_CLASSES = sizeClasses(MAX_MANIFEST_BYTES);

/** The first fields of any ticket, read before the full schema so each mismatch has its own message. */
export const TicketHeader = z.looseObject({
  formatVersion: z.number().int(),
  kind: z.string().max(100),
  direction: z.string().max(100).optional(),
});

export function ticketsPrefix(worktree: string): string {
  return `${worktreePrefix(worktree)}tickets/`;
}

export function ticketKey(worktree: string, id: string): string {
  if (!TICKET_ID.test(id)) throw new Error('internal: refusing to build a key from an invalid ticket id');
  return `${ticketsPrefix(worktree)}${id}.json`;
}

/** Uploads through push tickets: incoming/<ticket>/{manifest.json,slots/<n>.json.gz}. */
export function incomingPrefix(worktree: string): string {
  return `${worktreePrefix(worktree)}incoming/`;
}

export function uploadPrefix(worktree: string, id: string): string {
  if (!TICKET_ID.test(id)) throw new Error('internal: refusing to build a key from an invalid ticket id');
  return `${incomingPrefix(worktree)}${id}/`;
}

export function uploadManifestKey(worktree: string, id: string): string {
  return `${uploadPrefix(worktree, id)}manifest.json`;
}

export function uploadSlotKey(worktree: string, id: string, slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_SLOTS) throw new Error('internal: refusing to build a key from an invalid slot');
  return `${uploadPrefix(worktree, id)}slots/${slot}.json.gz`;
}

/** Code bundles uploaded through push tickets: incoming/<ticket>/code/<n>.bundle. */
export function uploadCodeKey(worktree: string, id: string, slot: number): string {
  if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_CODE_SLOTS) throw new Error('internal: refusing to build a key from an invalid code slot');
  return `${uploadPrefix(worktree, id)}code/${slot}.bundle`;
}
