import type { SessionRow } from '../opencode/opencode.js';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { exportToBlobFile, type ExportedBlob } from '../blob/blobFiles.js';
import { serializeDocument } from '../format/document.js';
import { assertSessionId, newCheckpointId } from '../format/ids.js';
import { FORMAT_VERSION, type Manifest, type ManifestSession } from '../format/schema.js';
import {
  MANIFEST_CLASSES,
  MAX_SLOTS,
  MAX_TICKET_BYTES,
  MAX_UPLOAD_BYTES,
  MIN_SLOT_CLASS,
  CODE_SLOTS,
  uploadCodeKey,
  PushTicket,
  sizeClasses,
  TICKET_KIND,
  ticketKey,
  uploadManifestKey,
  uploadSlotKey,
} from '../format/ticketSchema.js';
import { openExporter, parseExportVia } from '../opencode/exporter.js';
import { readTodos } from '../opencode/todos.js';
import { sealBytes, sealFile, sealToSize } from '../util/seal.js';
import { identityToRecipient } from 'age-encryption';
import { SESSMIG_VERSION } from '../version.js';
import type { Context } from './context.js';
import { SessmigError, usageError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { manifestEntry, selectSessions } from './push.js';
import { readManifest, readPointer } from './remoteStore.js';
import { captureForTicket, codeUploadEntries, putThroughTicket, uploadCodeBundles, type TicketCode } from './codeUpload.js';
import { readCodeState } from '../code/codeLeg.js';
import { DEFAULT_CODE_MAX_BYTES } from '../format/codeLayout.js';
import { loadSyncState, saveSyncState, syncStateFile } from './syncState.js';
import { assertTicketWorktree, fetchTicket, newTicketId, pruneExpiredTickets, ticketStore } from './ticket.js';

/**
 * Upload tickets (docs/FORMAT.md, "Upload tickets"): `mintPushTicket` runs on a host with
 * credentials and stores a document of presigned PUTs — a bounded set of slots, each with one URL
 * per size class, plus the upload's manifest — for one new checkpoint; `pushToTicket` runs on a host
 * without credentials and uploads its sessions through them. Nothing uploaded becomes current until
 * a host with credentials verifies it (src/core/incoming.ts, on `sessmig pull`).
 */

export const DEFAULT_MAX_SESSIONS = 100;
export const DEFAULT_MAX_BYTES = 1024 ** 3;

const SIZE = /^(\d{1,13})(?:\.(\d{1,3}))?\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const UNIT_BYTES: Record<string, number> = { b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3 };

/** Parses `--max-bytes`: bytes, or a number with a unit (k, KiB, MB, MiB, G, GB, GiB), 16 KiB to 5 GiB. */
export function parseSize(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const match = SIZE.exec(value.trim());
  const bytes = match ? Math.floor(Number(`${match[1]}.${match[2] ?? '0'}`) * UNIT_BYTES[(match[3] ?? 'b').toLowerCase()]!) : NaN;
  if (!(bytes >= MIN_SLOT_CLASS && bytes <= MAX_UPLOAD_BYTES)) {
    throw usageError(
      'bad-flag',
      `${flag} ${JSON.stringify(value.slice(0, 40))} is not a size from 16KiB to 5GiB`,
      `give bytes or a number with a unit: ${flag} 256MiB, ${flag} 2G (S3 takes at most 5 GiB in one PUT)`,
    );
  }
  return bytes;
}

export interface MintPushOptions {
  expiresInSeconds: number;
  maxSessions: number;
  maxBytes: number;
  /** The largest code bundle one code slot takes (default DEFAULT_CODE_MAX_BYTES). */
  maxCodeBytes?: number;
}

export interface MintedPushTicket {
  url: string;
  ticket: PushTicket;
  key: string;
  bytes: number;
}

type MintContext = Pick<Context, 'remote' | 'worktree' | 'host' | 'report' | 'env'>;

export async function mintPushTicket(ctx: MintContext, options: MintPushOptions): Promise<MintedPushTicket> {
  const { worktree } = ctx;
  // An encrypted worktree: the ticket is sealed to a key derived for it (in the URL's fragment),
  // and what is uploaded is sealed to another derived key that only this side can re-derive.
  const { sealing, remote, presigner } = ticketStore(ctx.remote, 'a host that can write the folder pushes to it directly (--remote file://…)');
  if (!Number.isInteger(options.maxSessions) || options.maxSessions < 1 || options.maxSessions > MAX_SLOTS) {
    throw usageError('bad-flag', `--max-sessions takes 1 to ${MAX_SLOTS}`, 'count the sessions with their subagent children');
  }
  const pointer = await readPointer(ctx.remote, worktree.key);
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const seconds = options.expiresInSeconds;
  const id = newTicketId(now);
  const classes = sizeClasses(options.maxBytes);
  const signSlot = async (key: string, sizes: number[]): Promise<Record<string, string>> => {
    const urls = await Promise.all(sizes.map((size) => presigner.presignPut(key, size, seconds)));
    return Object.fromEntries(sizes.map((size, index) => [String(size), urls[index]!]));
  };
  const slots: Record<string, string>[] = [];
  for (let slot = 0; slot < options.maxSessions; slot++) slots.push(await signSlot(uploadSlotKey(worktree.key, id, slot), classes));
  // The code leg (docs/FORMAT-code.md, "Through tickets"): the parent's code part to capture against, and code slots.
  const maxCodeBytes = options.maxCodeBytes ?? DEFAULT_CODE_MAX_BYTES;
  const codeClasses = sizeClasses(maxCodeBytes);
  const code: Record<string, string>[] = [];
  for (let slot = 0; slot < CODE_SLOTS; slot++) code.push(await signSlot(uploadCodeKey(worktree.key, id, slot), codeClasses));
  const parentCode = pointer ? readCodeState(await readManifest(ctx.remote, worktree.key, pointer.pointer.checkpoint)) : undefined;
  const ticket: PushTicket = {
    formatVersion: FORMAT_VERSION,
    kind: TICKET_KIND,
    direction: 'push',
    id,
    worktree: worktree.key,
    checkpoint: newCheckpointId(now),
    parent: pointer?.pointer.checkpoint ?? null,
    createdAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + seconds * 1000).toISOString(),
    remote: remote.display,
    issuedBy: { hostId: ctx.host.hostId, hostname: ctx.host.hostname },
    limits: { maxSessions: options.maxSessions, maxBytes: options.maxBytes, maxCodeBytes },
    urls: { manifest: await signSlot(uploadManifestKey(worktree.key, id), MANIFEST_CLASSES), slots, code },
    ...(parentCode ? { base: { code: parentCode } } : {}),
    ...(sealing ? { sealed: { recipient: await identityToRecipient(sealing.key.uploadIdentity(id)) } } : {}),
  };
  const body = sealing
    ? await sealBytes(serializeDocument(ticket), await identityToRecipient(sealing.key.ticketIdentity(id)))
    : serializeDocument(ticket);
  if (body.length > MAX_TICKET_BYTES) {
    throw new SessmigError(
      'ticket-too-large',
      `an upload ticket with ${options.maxSessions} slot(s) of ${classes.length} size classes would be ${body.length} bytes, which exceeds ${MAX_TICKET_BYTES} bytes`,
      { hint: 'lower --max-sessions or --max-bytes' },
    );
  }
  const key = ticketKey(worktree.key, id);
  await remote.put(key, body, { ifNoneMatch: true });
  const url = `${await presigner.presignGet(key, seconds)}${sealing ? `#${sealing.key.ticketIdentity(id)}` : ''}`;
  if (ctx.env.AWS_SESSION_TOKEN) {
    ctx.report.warn(`the URLs are signed with temporary credentials (AWS_SESSION_TOKEN): they stop working when those expire, which may be before ${ticket.expiresAt}`);
  }
  await pruneExpiredTickets(remote, worktree.key, now, ctx.report);
  return { url, ticket, key, bytes: body.length };
}

export interface TicketPushOptions {
  sessions?: string[];
  dryRun?: boolean;
  /** Hand the sessions over: recorded here; the host with credentials claims them with `pull --migrate`. */
  migrate?: boolean;
  /** Carry the checkout's code too (docs/FORMAT-code.md, "Through tickets"): default with --migrate. */
  code?: boolean;
  /** --code-max-bytes: cap on the new bundles' bytes (default 512 MiB). */
  codeMaxBytes?: number;
}

export interface TicketPushResult {
  worktree: string;
  remote: string;
  status: 'uploaded' | 'nothing' | 'dry-run';
  ticket: { id: string; expiresAt: string; issuedBy: { hostId: string; hostname: string } };
  /** The checkpoint the upload becomes once the host with credentials takes it in. */
  checkpoint: string;
  sessions: { id: string; parentID: string | null; title: string; messages: number; storedBytes: number; slot: number; uploadedBytes: number }[];
  /** The code leg, when it travelled: the commit and branch captured, the new bundles (count, exact bytes) and the bytes sent through code slots (padding included). */
  code?: { head: string; branch: string | null; bundle: 'none' | 'full' | 'incremental'; bundles: number; bundleBytes: number; uploadedBytes: number };
}

/** `sessmig push --to-url`: exports this worktree's sessions and uploads them through an upload ticket's slots. */
export async function pushToTicket(ctx: Context, url: string, options: TicketPushOptions = {}): Promise<TicketPushResult> {
  const { worktree, opencode, report, timing } = ctx;
  const only = options.sessions?.map((id) => assertSessionId(id, '--session'));
  const ticket = await timing.time('list', () => fetchTicket(url, undefined, 'push'));
  assertTicketWorktree(ctx, ticket, 'uploaded');
  const [opencodeVersion, rows] = await timing.time('list', () => Promise.all([opencode.version(), opencode.listSessions()]));
  const selected = selectSessions(rows, worktree.root, only);
  const result: TicketPushResult = {
    worktree: worktree.key,
    remote: ticket.remote,
    status: 'nothing',
    ticket: { id: ticket.id, expiresAt: ticket.expiresAt, issuedBy: ticket.issuedBy },
    checkpoint: ticket.checkpoint,
    sessions: [],
  };
  if (selected.length === 0 && !options.code) {
    report.info(`worktree ${worktree.key}: no opencode sessions in ${worktree.root}; nothing to upload`);
    return result;
  }
  const slots = Math.min(ticket.limits.maxSessions, ticket.urls.slots.length);
  if (selected.length > slots) {
    throw usageError(
      'ticket-too-small',
      `this worktree has ${selected.length} session(s) (subagent children included), but upload ticket ${ticket.id} holds ${slots} slot(s); nothing was uploaded`,
      `ask for a ticket with room for them (sessmig share --upload --max-sessions ${selected.length}), or upload some with --session ID`,
    );
  }
  if (options.dryRun) {
    report.info(`worktree ${worktree.key}: would upload ${selected.length} session(s) through ticket ${ticket.id}`);
    return { ...result, status: 'dry-run', sessions: selected.map((row, slot) => ({ id: row.id, parentID: row.parent_id, title: row.title, messages: 0, storedBytes: 0, slot, uploadedBytes: 0 })) };
  }
  report.info(`worktree ${worktree.key}: uploading ${selected.length} session(s) through ticket ${ticket.id} from ${ticket.issuedBy.hostname}`);
  // The code first: a checkout it cannot capture (too large, mid-merge) stops before any export. Its files stay in ctx.tempDir.
  const code: TicketCode | undefined = options.code ? await captureForTicket(ctx, ticket, { ...(options.codeMaxBytes !== undefined ? { maxBytes: options.codeMaxBytes } : {}) }) : undefined;
  if (code) report.info(`code: ${code.captured.state.branch ?? 'detached HEAD'} at ${code.captured.state.head.slice(0, 12)}, ${code.uploads.length === 0 ? 'no new bundle' : `${code.uploads.length} new bundle(s) of ${code.uploads.reduce((sum, upload) => sum + upload.size, 0)} bytes`}`);
  const exported = await exportForTicket(ctx, ticket, selected);
  const todos = selected.length === 0 ? new Map() : await timing.time('todos', () => readTodos(opencode, selected.map((row) => row.id)));
  const entries: (ManifestSession & { slot: number; sealedBytes?: number })[] = selected.map((row, slot) => ({
    ...manifestEntry(row, exported.blobs[slot]!, todos),
    slot,
    ...(exported.sealed ? { sealedBytes: exported.upload(slot).size } : {}),
  }));
  const manifest: Manifest & { ticket: string; code?: unknown; codeUploads?: unknown } = {
    formatVersion: FORMAT_VERSION,
    kind: 'sessmig.checkpoint',
    id: ticket.checkpoint,
    worktree: worktree.key,
    parent: ticket.parent,
    createdAt: new Date().toISOString(),
    source: { host: ctx.host, worktreeRoot: worktree.root, opencodeVersion, sessmigVersion: SESSMIG_VERSION },
    sessions: entries,
    skipped: [],
    ticket: ticket.id,
    // The code part as a direct push writes it, and which new bundle is in which code slot.
    ...(code ? { code: code.captured.state, codeUploads: codeUploadEntries(code.uploads) } : {}),
  };
  const manifestUpload = await fitManifest(ticket, manifest);
  const uploaded = await uploadSessions(ctx, ticket, selected, exported);
  const codeBytes = code ? await uploadCodeBundles(ctx, ticket, code.uploads) : 0;
  // The manifest last: its presence tells the host with credentials that the upload is complete.
  ctx.signal.throwIfAborted();
  const manifestFile = path.join(ctx.tempDir, 'upload-manifest.json');
  await writeFile(manifestFile, manifestUpload.body, { mode: 0o600 });
  await timing.time('manifest', () =>
    putThroughTicket(ticket.urls.manifest[String(manifestUpload.size)]!, manifestFile, manifestUpload.body.length, manifestUpload.size, 0x20, 'upload of the manifest'),
  );
  report.info(
    `uploaded ${selected.length} session(s) through ticket ${ticket.id}; on ${ticket.issuedBy.hostname} run \`sessmig pull${options.migrate ? ' --migrate' : ''}\` to take them in (checkpoint ${ticket.checkpoint})`,
  );
  await recordTicketSync(ctx, ticket, selected, exported.blobs, options);
  return {
    ...result,
    status: 'uploaded',
    ...(code ? { code: describeTicketCode(code, codeBytes) } : {}),
    sessions: entries.map((entry, index) => ({
      id: entry.id,
      parentID: entry.parentID,
      title: entry.title,
      messages: entry.messages,
      storedBytes: entry.storedBytes,
      slot: entry.slot,
      uploadedBytes: uploaded[index]!,
    })),
  };
}

/** The size classes of one upload slot's presigned PUTs, ascending (bytes). */
function classesOf(urls: Record<string, string>): number[] {
  return Object.keys(urls).map(Number).sort((a, b) => a - b);
}

/** The smallest size class of the slot that holds `size` bytes, if any. */
function fits(urls: Record<string, string>, size: number): number | undefined {
  return classesOf(urls).find((candidate) => candidate >= size);
}

/** The selected sessions exported (and sealed for an encrypted worktree's ticket), each checked against its slot. */
interface TicketExport {
  blobs: ExportedBlob[];
  sealed: boolean;
  /** What goes into slot `index`: the blob's file, or its sealed copy. */
  upload(index: number): { file: string; size: number };
}

/** Exports everything first: a blob over the ticket's cap is refused (`blob-too-large`) before any byte is uploaded. */
async function exportForTicket(ctx: Context, ticket: PushTicket, selected: SessionRow[]): Promise<TicketExport> {
  const { timing, worktree, opencode, report } = ctx;
  const exportAll = async (): Promise<ExportedBlob[]> => {
    const source = await timing.time('serve-start', () => openExporter(opencode, worktree.root, selected.length, parseExportVia(ctx.env.SESSMIG_EXPORT_VIA), report, selected.map((row) => row.id)));
    return mapPool(selected, ctx.jobs, (row, index) => exportToBlobFile(source.exporter, row.id, path.join(ctx.tempDir, `upload-${index}.json.gz`), { timing }), ctx.signal).finally(() => source.close());
  };
  // With the code leg a checkout without sessions still hands its code back.
  const blobs = selected.length === 0 ? [] : await exportAll();
  // An encrypted worktree's ticket: each blob goes up sealed (the slot then holds the age file).
  const recipient = ticket.sealed?.recipient;
  const sealedFiles = recipient
    ? await timing.time('seal', () => mapPool(blobs, ctx.jobs, async (blob) => ({ file: `${blob.file}.age`, size: await sealFile(blob.file, `${blob.file}.age`, recipient) }), ctx.signal))
    : undefined;
  const upload = (index: number) => sealedFiles?.[index] ?? { file: blobs[index]!.file, size: blobs[index]!.storedBytes };
  for (const [index, blob] of blobs.entries()) {
    if (fits(ticket.urls.slots[index]!, upload(index).size) === undefined || upload(index).size > ticket.limits.maxBytes) {
      throw new SessmigError(
        'blob-too-large',
        `session ${selected[index]!.id} is ${blob.storedBytes} bytes compressed, over upload ticket ${ticket.id}'s cap of ${ticket.limits.maxBytes} bytes per session; nothing was uploaded`,
        { hint: `ask for a ticket with a larger cap (sessmig share --upload --max-bytes ${Math.ceil(blob.storedBytes / 1024 ** 2)}MiB)` },
      );
    }
  }
  return { blobs, sealed: sealedFiles !== undefined, upload };
}

/**
 * The upload's manifest as it goes up, and the size class it fills: an encrypted worktree's is
 * sealed to exactly a class's size (the plaintext padded with spaces), the next class if a size
 * cannot be hit. `manifest-too-large` when no class holds it.
 */
async function fitManifest(ticket: PushTicket, manifest: Manifest): Promise<{ body: Buffer; size: number }> {
  const plain = serializeDocument(manifest);
  const recipient = ticket.sealed?.recipient;
  let body = plain;
  let size = fits(ticket.urls.manifest, plain.length);
  if (recipient) {
    const sealed = await sealBytes(plain, recipient);
    size = undefined;
    for (const candidate of classesOf(ticket.urls.manifest).filter((value) => value >= sealed.length)) {
      const exact = await sealToSize(plain, recipient, candidate);
      if (exact) {
        body = exact;
        size = candidate;
        break;
      }
    }
  }
  if (size === undefined) {
    throw new SessmigError('manifest-too-large', `the upload's manifest is ${body.length} bytes, larger than the ticket allows; nothing was uploaded`, {
      hint: 'upload fewer sessions at a time (--session ID)',
    });
  }
  return { body, size };
}

/** Puts each session's blob into its slot (padded to the slot's size class); returns the bytes sent per slot. */
async function uploadSessions(ctx: Context, ticket: PushTicket, selected: SessionRow[], exported: TicketExport): Promise<number[]> {
  const progress = { done: 0, bytes: 0 };
  return mapPool(
    exported.blobs,
    ctx.jobs,
    async (_blob: ExportedBlob, slot) => {
      ctx.signal.throwIfAborted();
      const urls = ticket.urls.slots[slot]!;
      const { file, size: length } = exported.upload(slot);
      const size = fits(urls, length)!;
      await ctx.timing.time('upload', () => putThroughTicket(urls[String(size)]!, file, length, size, 0, `upload of session ${selected[slot]!.id} (slot ${slot})`));
      progress.done++;
      progress.bytes += size;
      ctx.report.progress('uploaded', progress.done, exported.blobs.length, progress.bytes);
      return size;
    },
    ctx.signal,
  );
}

/** What this host pushed through the ticket is its sync base for the next pull through a ticket. */
async function recordTicketSync(ctx: Context, ticket: PushTicket, selected: SessionRow[], blobs: ExportedBlob[], options: TicketPushOptions): Promise<void> {
  const stateFile = syncStateFile(ctx.paths.state, ticket.remote, ctx.worktree.key);
  const state = await loadSyncState(stateFile, ticket.remote, ctx.worktree.key);
  state.checkpoint = ticket.checkpoint;
  for (const [index, row] of selected.entries()) {
    const blob = blobs[index]!;
    state.sessions[row.id] = { contentHash: blob.contentHash, sha256: blob.sha256, localTimeUpdated: blob.facts.timeUpdated ?? row.time_updated };
  }
  state.handedAway = options.migrate ? { checkpoint: ticket.checkpoint, at: new Date().toISOString() } : null;
  await saveSyncState(stateFile, state).catch((error: unknown) => ctx.report.warn(`could not save the sync state: ${(error as Error).message}`));
}

/** The code leg as `push --to-url --json` reports it (as push says it: a new chain starts with a bundle without prerequisites). */
function describeTicketCode(code: TicketCode, uploadedBytes: number) {
  return {
    head: code.captured.state.head,
    branch: code.captured.state.branch,
    bundle: code.captured.newBundles.length === 0 ? ('none' as const) : code.captured.newBundles[0]!.prerequisites.length === 0 ? ('full' as const) : ('incremental' as const),
    bundles: code.uploads.length,
    bundleBytes: code.captured.newBundles.reduce((sum, bundle) => sum + bundle.bytes, 0),
    uploadedBytes,
  };
}
