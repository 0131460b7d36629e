import { fetchSlot, readSlotObject } from './uploadSlot.js';
import { parseKey, uploadRejectedKey } from '../format/keys.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { parseDocument, serializeDocument } from '../format/document.js';
import { blobKey, checkpointKey, MAX_MANIFEST_BYTES } from '../format/layout.js';
import { Manifest, MANIFEST_FORMAT_VERSION, type ManifestSession } from '../format/schema.js';
import {
  incomingPrefix,
  MAX_TICKET_BYTES,
  sizeClasses,
  TICKET_ID,
  ticketKey,
  uploadManifestKey,
  uploadPrefix,
  uploadSlotKey,
  uploadCodeKey,
  type PushTicket,
} from '../format/ticketSchema.js';
import type { Remote } from '../remote/remote.js';
import { redact } from '../util/redact.js';
import type { Context } from './context.js';
import { SessmigError } from '../util/errors.js';
import { describeOwner } from './ownership.js';
import { mapPool } from './pool.js';
import { readManifest, writeManifest, writePointer, type PointerState } from './remoteStore.js';
import { orderParentsFirst } from './sessionTree.js';
import { parseTicket } from '../format/ticketDocument.js';
import { isSealed, openBytes } from '../util/seal.js';
import { readCodeState } from '../code/codeLeg.js';
import type { CodeState } from '../format/codeSchema.js';
import { readUploadedCode, sameCode, takeInCode, type UploadedCode } from './incomingCode.js';

/**
 * Taking in uploads (docs/FORMAT.md, "Upload tickets"): on a host with credentials, `sessmig pull`
 * looks under the worktree's `incoming/` for uploads that arrived through its upload tickets. An
 * upload counts once its manifest is there (uploaders write it last). Each is verified against the
 * ticket document this side wrote — manifest schema, worktree, checkpoint, slots within the ticket,
 * every blob's size and sha256, zero padding — then its blobs move under `blobs/`, its manifest
 * becomes a checkpoint and the pointer moves onto it (compare-and-swap). Nothing uploaded becomes
 * current without that verification; an upload that fails it is marked rejected and never read again.
 */

const UploadManifest = z.looseObject({
  ticket: z.string().regex(TICKET_ID, 'not a ticket id'),
  sessions: z.array(z.looseObject({ slot: z.number().int().nonnegative(), sealedBytes: z.number().int().positive().optional() })),
});

export interface TakenUpload {
  ticket: string;
  checkpoint: string;
  from: string;
  sessions: number;
  /** Sessions of the remote's checkpoint that the upload did not carry, kept in the new checkpoint. */
  carried: number;
}

export interface PendingUploads {
  /** Complete uploads not yet taken in, oldest first. */
  pending: string[];
  /** Uploads marked rejected earlier (ignored). */
  rejected: string[];
}

export async function findUploads(remote: Remote, worktree: string): Promise<PendingUploads> {
  const prefix = incomingPrefix(worktree);
  const manifests = new Set<string>();
  const rejected = new Set<string>();
  for await (const item of remote.list(prefix)) {
    const parsed = parseKey(item.key);
    if (parsed?.kind === 'upload-manifest') manifests.add(parsed.id);
    if (parsed?.kind === 'upload-rejected') rejected.add(parsed.id);
  }
  return { pending: [...manifests].filter((id) => !rejected.has(id)).sort(), rejected: [...rejected].sort() };
}

/**
 * Takes in every complete upload, oldest first; returns the pointer as it is afterwards. A failed
 * verification marks that upload rejected and throws: nothing of it is committed.
 */
export async function takeInUploads(
  ctx: Context,
  pointer: PointerState | undefined,
  options: { force: boolean; claiming: boolean },
): Promise<{ pointer: PointerState | undefined; taken: TakenUpload[] }> {
  const { remote, worktree, report } = ctx;
  const { pending, rejected } = await ctx.timing.time('list', () => findUploads(remote, worktree.key));
  if (rejected.length > 0) report.warn(`${rejected.length} upload(s) under ${incomingPrefix(worktree.key)} were rejected earlier and are ignored: ${rejected.join(', ')}`);
  const taken: TakenUpload[] = [];
  let current = pointer;
  for (const id of pending) {
    const owner = current?.pointer.owner ?? null;
    if (owner !== null && owner.hostId !== ctx.host.hostId && !options.claiming) {
      report.warn(`upload ${id} waits in ${uploadPrefix(worktree.key, id)}: worktree ${worktree.key} is owned by ${describeOwner(owner)}, and only its owner (or \`pull --migrate\`) takes uploads in`);
      continue;
    }
    const outcome = await takeIn(ctx, id, current, options.force);
    current = outcome.pointer;
    if (outcome.taken) taken.push(outcome.taken);
  }
  return { pointer: current, taken };
}

/** Why an upload is refused: marks it rejected (never read again) and throws `upload-rejected`. */
type Reject = (why: string) => Promise<never>;

function rejecter(ctx: Context, id: string): Reject {
  const { remote, worktree, report } = ctx;
  return async (why: string): Promise<never> => {
    const body = serializeDocument({ ticket: id, rejectedAt: new Date().toISOString(), by: ctx.host, reason: why });
    await remote.put(uploadRejectedKey(worktree.key, id), body).catch((error: unknown) =>
      report.warn(`could not mark upload ${id} rejected: ${redact((error as Error).message)}`),
    );
    throw new SessmigError('upload-rejected', `upload ${id} (through an upload ticket) was refused: ${why}; nothing of it was taken in`, {
      hint: 'it is marked rejected and will be ignored; on the uploading host, ask for a new ticket (sessmig share --upload) and push again',
    });
  };
}

/** An upload read and checked against its ticket, ready to be verified object by object. */
interface Upload {
  ticket: PushTicket;
  manifest: Manifest;
  /** Slot of each of `manifest.sessions`, in order. */
  slots: number[];
  /** Encrypted worktrees: each slot's sealed size, in order. */
  sealedSizes: (number | undefined)[];
  code: UploadedCode | undefined;
  /** Encrypted worktrees: the identity that opens what was uploaded. */
  uploadIdentity: string | undefined;
}

async function takeIn(
  ctx: Context,
  id: string,
  pointer: PointerState | undefined,
  force: boolean,
): Promise<{ pointer: PointerState | undefined; taken?: TakenUpload }> {
  const { remote, worktree, report } = ctx;
  const reject = rejecter(ctx, id);
  const ticket = await readUploadTicket(ctx, id, reject);
  const upload = await readUpload(ctx, id, ticket, reject);
  if (!upload) return { pointer };
  const { manifest, slots } = upload;
  const codeSlots = upload.code?.uploads.map((item) => item.slot) ?? [];

  // Already taken in (a run that stopped before cleaning up), or a second upload through a used ticket?
  const existing = await remote.head(checkpointKey(worktree.key, manifest.id));
  if (existing) {
    if (pointer?.pointer.checkpoint === manifest.id) {
      await cleanUp(remote, worktree.key, id, slots, codeSlots, report);
      return { pointer };
    }
    const written = await readManifest(remote, worktree.key, manifest.id);
    if (written.parent !== (pointer?.pointer.checkpoint ?? null)) return reject(`ticket ${id} was used already (checkpoint ${manifest.id} exists)`);
  }

  await ctx.timing.time('take-in', () => takeInBlobs(ctx, id, upload, reject));
  if (upload.code) {
    const why = await ctx.timing.time('take-in', () => takeInCode(ctx, id, ticket, upload.code!, upload.uploadIdentity));
    if (why !== undefined) return reject(why);
  }

  const { checkpoint, uploaded, carried } = await mergeCheckpoint(ctx, id, upload, pointer, force);
  if (!existing) await writeManifest(remote, checkpoint);
  const moveTo = await ctx.timing.time('pointer', () =>
    writePointer(remote, worktree.key, pointer, { checkpoint: manifest.id, owner: pointer ? pointer.pointer.owner : ctx.host }, ctx.host),
  );
  report.info(
    `took in upload ${id} from ${manifest.source.host.hostname}: ${uploaded} session(s)${upload.code ? ' and its code' : ''}${carried > 0 ? `, ${carried} kept from checkpoint ${pointer?.pointer.checkpoint}` : ''}; checkpoint ${manifest.id} is now current`,
  );
  await cleanUp(remote, worktree.key, id, slots, codeSlots, report);
  return { pointer: moveTo, taken: { ticket: id, checkpoint: manifest.id, from: manifest.source.host.hostname, sessions: uploaded, carried } };
}

/** The ticket document this side wrote: the trust anchor (the uploader cannot write it). */
async function readUploadTicket(ctx: Context, id: string, reject: Reject): Promise<PushTicket> {
  const { remote, worktree } = ctx;
  const stored = await remote.get(ticketKey(worktree.key, id), MAX_TICKET_BYTES);
  if (!stored) return reject(`its ticket document ${ticketKey(worktree.key, id)} is missing (not minted for this remote, or removed)`);
  const sealing = remote.sealing;
  let ticket: PushTicket;
  try {
    // An encrypted worktree's ticket is sealed to a key this side derives again from the user's key.
    const body = isSealed(stored.body)
      ? sealing
        ? await openBytes(stored.body, sealing.key.ticketIdentity(id), `ticket ${id}`)
        : await Promise.reject(new Error('it is sealed, but this worktree is not encrypted'))
      : stored.body;
    // Expiry does not matter here: S3 enforced it when the bytes were uploaded.
    ticket = parseTicket(body, new Date(0), 'push');
  } catch (error) {
    return reject(`its ticket document is unreadable (${(error as Error).message})`);
  }
  if (ticket.worktree !== worktree.key || ticket.id !== id) return reject(`its ticket document names worktree ${ticket.worktree}, ticket ${ticket.id}`);
  return ticket;
}

/** The upload's manifest (undefined: not complete yet), opened and checked against its ticket. */
async function readUpload(ctx: Context, id: string, ticket: PushTicket, reject: Reject): Promise<Upload | undefined> {
  const { remote, worktree } = ctx;
  const uploadIdentity = ticket.sealed ? remote.sealing?.key.uploadIdentity(id) : undefined;
  if (ticket.sealed && !uploadIdentity) return reject('its ticket is sealed, but this worktree is not encrypted');
  const where = `upload manifest ${uploadManifestKey(worktree.key, id)}`;
  const raw = await remote.get(uploadManifestKey(worktree.key, id), MAX_MANIFEST_BYTES + 65536);
  if (!raw) return undefined;
  let body = raw.body;
  if (uploadIdentity) {
    try {
      body = await openBytes(raw.body, uploadIdentity, where);
    } catch (error) {
      return reject(`its manifest cannot be opened: ${(error as Error).message}`);
    }
  }
  let manifest: Manifest;
  let upload: z.infer<typeof UploadManifest>;
  let code: UploadedCode | undefined;
  try {
    manifest = parseDocument(body, Manifest, where, MAX_MANIFEST_BYTES, MANIFEST_FORMAT_VERSION);
    upload = parseDocument(body, UploadManifest, where, MAX_MANIFEST_BYTES, MANIFEST_FORMAT_VERSION);
    if (upload.ticket !== id) throw new Error(`it names ticket ${upload.ticket}`);
    code = readUploadedCode(manifest, ticket);
  } catch (error) {
    return reject(`its manifest is invalid: ${(error as Error).message}`);
  }
  const slots = upload.sessions.map((session) => session.slot);
  if (manifest.worktree !== worktree.key) return reject(`its manifest names worktree ${manifest.worktree}`);
  if (manifest.id !== ticket.checkpoint) return reject(`its manifest names checkpoint ${manifest.id}, not the ticket's ${ticket.checkpoint}`);
  if (manifest.parent !== ticket.parent) return reject(`its manifest names parent ${String(manifest.parent)}, not the ticket's ${String(ticket.parent)}`);
  if (manifest.sessions.length > ticket.limits.maxSessions) return reject(`it holds ${manifest.sessions.length} sessions, the ticket ${ticket.limits.maxSessions} slots`);
  if (new Set(manifest.sessions.map((session) => session.id)).size !== manifest.sessions.length) return reject('its manifest names a session twice');
  if (new Set(slots).size !== slots.length || slots.some((slot) => slot >= ticket.limits.maxSessions)) return reject('its manifest names a slot twice or a slot outside the ticket');
  const oversized = manifest.sessions.find((session) => session.storedBytes > ticket.limits.maxBytes);
  if (oversized) return reject(`session ${oversized.id} is ${oversized.storedBytes} bytes, over the ticket's cap of ${ticket.limits.maxBytes}`);
  return { ticket, manifest, slots, sealedSizes: upload.sessions.map((session) => session.sealedBytes), code, uploadIdentity };
}

/** Verifies every slot and moves its blob under blobs/ (unless the remote has it already). */
async function takeInBlobs(ctx: Context, id: string, upload: Upload, reject: Reject): Promise<void> {
  const { remote, worktree } = ctx;
  const classes = new Set(sizeClasses(upload.ticket.limits.maxBytes));
  await mapPool(
    upload.manifest.sessions,
    ctx.jobs,
    async (session, index) => {
      const target = blobKey(worktree.key, session.sha256);
      const have = await remote.head(target);
      if (have && have.size === session.storedBytes) return remote.touch(target);
      const file = path.join(ctx.tempDir, `incoming-${index}.json.gz`);
      const sealed = upload.uploadIdentity ? { identity: upload.uploadIdentity, bytes: upload.sealedSizes[index] } : undefined;
      const why = await verifySlot(remote, uploadSlotKey(worktree.key, id, upload.slots[index]!), session, classes, file, sealed);
      if (why !== undefined) return reject(`session ${session.id} (slot ${upload.slots[index]}) ${why}`);
      await remote.putFile(target, file, session.storedBytes);
      await rm(file, { force: true });
    },
    ctx.signal,
  );
}

/**
 * The new checkpoint: the upload's sessions, plus the current checkpoint's others (never dropped).
 * Throws `upload-conflict` when a session (or the code) the upload changes also changed in the
 * remote since its ticket was minted, unless `force`.
 */
async function mergeCheckpoint(
  ctx: Context,
  id: string,
  upload: Upload,
  pointer: PointerState | undefined,
  force: boolean,
): Promise<{ checkpoint: Manifest; uploaded: number; carried: number }> {
  const { remote, worktree } = ctx;
  const { ticket, manifest } = upload;
  const current = pointer ? await readManifest(remote, worktree.key, pointer.pointer.checkpoint) : undefined;
  const moved = (pointer?.pointer.checkpoint ?? null) !== ticket.parent;
  const base = moved && ticket.parent ? await readManifest(remote, worktree.key, ticket.parent).catch(() => undefined) : undefined;
  const uploaded = new Map(manifest.sessions.map((session) => [session.id, stripSlot(session)]));
  const conflicts: string[] = [];
  const sessions: ManifestSession[] = [];
  for (const session of current?.sessions ?? []) {
    const incoming = uploaded.get(session.id);
    if (!incoming) {
      sessions.push(session);
      continue;
    }
    const changedHere = moved && incoming.contentHash !== session.contentHash && base?.sessions.find((item) => item.id === session.id)?.contentHash !== session.contentHash;
    if (changedHere && !force) conflicts.push(session.id);
  }
  // The code: the remote's current code moved away from the one the uploader started from.
  const currentCode = current ? readCodeState(current) : undefined;
  const baseCode = ticket.base?.code as CodeState | undefined;
  if (upload.code && moved && currentCode && !sameCode(currentCode, baseCode) && !sameCode(currentCode, upload.code.state) && !force) conflicts.push('the code');
  if (conflicts.length > 0) {
    throw new SessmigError(
      'upload-conflict',
      `upload ${id} from ${manifest.source.host.hostname} changes what also changed in the remote since its ticket was minted (${conflicts.map((item) => (item === 'the code' ? item : `session ${item}`)).join(', ')}); nothing was taken in`,
      {
        hint: `pull --force takes the uploaded copies (the remote's stay in checkpoint ${pointer?.pointer.checkpoint}); the upload waits in ${uploadPrefix(worktree.key, id)}`,
      },
    );
  }
  const carried = sessions.length;
  sessions.push(...uploaded.values());
  const { codeUploads: _codeUploads, ...kept } = manifest as Manifest & { codeUploads?: unknown };
  const checkpoint: Manifest = {
    // An upload carries no snapshot objects (docs/FORMAT-snapshots.md): the worktree keeps what it held.
    ...(current?.snapshots && !manifest.snapshots ? { snapshots: current.snapshots } : {}),
    ...kept,
    parent: pointer?.pointer.checkpoint ?? null,
    sessions: orderParentsFirst(sessions.map((session) => ({ ...session, parentID: session.parentID }))),
    // Deletions recorded in the remote travel on (an upload carries none of its own).
    ...(current?.deleted ? { deleted: current.deleted.filter((item) => !uploaded.has(item.id)) } : {}),
  };
  return { checkpoint, uploaded: uploaded.size, carried };
}

function stripSlot(session: ManifestSession): ManifestSession {
  const { slot: _slot, ...rest } = session as ManifestSession & { slot?: number };
  return rest as ManifestSession;
}

/**
 * Downloads one slot to `file` and checks it: a size class of the ticket, the blob's stored size
 * and sha256 (of the gunzipped bytes), then only zero bytes. Leaves the file cut to the blob.
 * Returns why it is refused, or undefined.
 */
async function verifySlot(
  remote: Remote,
  key: string,
  session: ManifestSession,
  classes: Set<number>,
  file: string,
  sealed?: { identity: string; bytes: number | undefined },
): Promise<string | undefined> {
  // The slot holds the blob (the gzip stream), or for an encrypted worktree the blob sealed; then zeros.
  const slotFile = `${file}.slot`;
  const content = sealed ? sealed.bytes : session.storedBytes;
  if (content === undefined) return 'has no sealed size in the manifest';
  try {
    const framing = await fetchSlot(remote, key, classes, content, slotFile, 'blob');
    if (framing !== undefined) return framing;
    const read = await readSlotObject(slotFile, content, file, { gzip: true, ...(sealed ? { sealed } : {}), what: `slot ${key}` });
    if ('why' in read) return `is not ${sealed ? 'an intact sealed ' : 'a '}gzip stream of ${content} bytes (${read.why})`;
    if (read.rawBytes !== session.rawBytes || read.rawSha256 !== session.sha256) return 'does not match its sha256 and size in the manifest';
    if (read.storedBytes !== session.storedBytes) return `holds a ${read.storedBytes}-byte gzip stream, not the manifest's ${session.storedBytes}`;
    return undefined;
  } finally {
    await rm(slotFile, { force: true });
  }
}

async function cleanUp(remote: Remote, worktree: string, id: string, slots: number[], codeSlots: number[], report: Context['report']): Promise<void> {
  try {
    for (const slot of slots) await remote.delete(uploadSlotKey(worktree, id, slot));
    for (const slot of codeSlots) await remote.delete(uploadCodeKey(worktree, id, slot));
    await remote.delete(uploadManifestKey(worktree, id));
  } catch (error) {
    report.warn(`could not remove upload ${id} after taking it in (harmless; the next pull retries): ${redact((error as Error).message)}`);
  }
}
