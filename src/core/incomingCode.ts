import { fetchSlot, readSlotObject } from './uploadSlot.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readCodeState } from '../code/codeLeg.js';
import { codeBundleKey } from '../format/codeLayout.js';
import type { CodeBundle, CodeState } from '../format/codeSchema.js';
import { SHA256 } from '../format/ids.js';
import { MAX_CODE_SLOTS, sizeClasses, uploadCodeKey, type PushTicket } from '../format/ticketSchema.js';
import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import type { Context } from './context.js';

/**
 * Taking in the code leg of an upload (docs/FORMAT-code.md, "Through tickets"), on the host with
 * credentials, before the upload's checkpoint becomes current: the upload manifest's `code` part
 * is checked like a pulled one; every bundle it uploaded through a code slot is verified (a size
 * class of the ticket, only zero padding after it, its exact size and sha256, opened with the
 * upload key on an encrypted worktree) and stored as an ordinary `code/<sha256>.bundle` object
 * (sealed by the remote when the worktree is encrypted); every other bundle of its chain must be
 * in the remote already. Any failure is a reason to refuse the whole upload.
 */

/** The upload manifest's record of its uploaded bundles (codeUpload.ts writes it). */
export const CodeUploads = z
  .array(
    z.looseObject({
      slot: z.number().int().nonnegative().max(MAX_CODE_SLOTS - 1),
      sha256: z.string().regex(SHA256, 'not a sha256 hex digest'),
      sealedBytes: z.number().int().positive().optional(),
    }),
  )
  .max(MAX_CODE_SLOTS)
  .default([]);
export type CodeUploads = z.infer<typeof CodeUploads>;

/** An upload's code, read from its manifest. */
export interface UploadedCode {
  state: CodeState;
  uploads: CodeUploads;
}

/**
 * Reads `code` and `codeUploads` of an upload manifest (loose fields). Returns the code (undefined:
 * the upload carries none), or throws an Error whose message says why the upload is refused.
 */
export function readUploadedCode(manifest: { id: string } & Record<string, unknown>, ticket: PushTicket): UploadedCode | undefined {
  const parsedUploads = CodeUploads.safeParse(manifest.codeUploads);
  if (!parsedUploads.success) throw new Error(`its codeUploads are invalid: ${parsedUploads.error.issues[0]?.message ?? 'invalid'}`);
  const uploads = parsedUploads.data;
  let state: CodeState | undefined;
  try {
    state = readCodeState(manifest);
  } catch (error) {
    throw new Error(`its code part is unreadable: ${(error as Error).message}`);
  }
  if (!state) {
    if (uploads.length > 0) throw new Error('it uploaded code bundles but carries no code part');
    return undefined;
  }
  const slots = ticket.urls.code?.length ?? 0;
  const inChain = new Set(state.bundles.map((bundle) => bundle.sha256));
  if (new Set(uploads.map((upload) => upload.slot)).size !== uploads.length || uploads.some((upload) => upload.slot >= slots)) {
    throw new Error('its manifest names a code slot twice or a code slot outside the ticket');
  }
  if (new Set(uploads.map((upload) => upload.sha256)).size !== uploads.length) throw new Error('its manifest names a code bundle twice');
  const stray = uploads.find((upload) => !inChain.has(upload.sha256));
  if (stray) throw new Error(`it uploaded code bundle ${stray.sha256}, which its code part does not name`);
  const cap = ticket.limits.maxCodeBytes ?? 0;
  const oversized = state.bundles.find((bundle) => uploads.some((upload) => upload.sha256 === bundle.sha256) && bundle.bytes > cap);
  if (oversized) throw new Error(`code bundle ${oversized.sha256} is ${oversized.bytes} bytes, over the ticket's cap of ${cap}`);
  return { state, uploads };
}

/**
 * Verifies and stores the upload's code bundles; returns why the upload is refused, or undefined.
 * `uploadIdentity`: the age identity of an encrypted worktree's upload.
 */
export async function takeInCode(ctx: Context, id: string, ticket: PushTicket, code: UploadedCode, uploadIdentity: string | undefined): Promise<string | undefined> {
  const { remote, worktree } = ctx;
  const bySha = new Map(code.uploads.map((upload) => [upload.sha256, upload]));
  const classes = new Set(sizeClasses(ticket.limits.maxCodeBytes ?? 0));
  for (const [index, bundle] of code.state.bundles.entries()) {
    const key = codeBundleKey(worktree.key, bundle.sha256);
    const have = await remote.head(key);
    if (have && have.size === bundle.bytes) {
      await remote.touch(key);
      continue;
    }
    const upload = bySha.get(bundle.sha256);
    if (!upload) return `code bundle ${bundle.sha256} of its chain is neither uploaded nor in the remote`;
    if (uploadIdentity && upload.sealedBytes === undefined) return `code bundle ${bundle.sha256} has no sealed size in the manifest`;
    const file = path.join(ctx.tempDir, `incoming-code-${index}.bundle`);
    try {
      const sealed = uploadIdentity ? { identity: uploadIdentity, bytes: upload.sealedBytes! } : undefined;
      const why = await verifyCodeSlot(remote, uploadCodeKey(worktree.key, id, upload.slot), bundle, classes, file, sealed);
      if (why !== undefined) return `code bundle ${bundle.sha256} (code slot ${upload.slot}) ${why}`;
      await remote.putFile(key, file, bundle.bytes);
      const check = await remote.head(key);
      if (!check || check.size !== bundle.bytes) throw new SessmigError('upload-unverified', `code bundle ${key} is not in the remote after its upload`, { hint: 're-run the pull; nothing was made current' });
    } finally {
      await rm(file, { force: true });
    }
  }
  return undefined;
}

/**
 * Downloads one code slot and checks it: a size class of the ticket, the bundle (or its sealed
 * file) followed by zero bytes only, then the bundle's exact size and sha256. Leaves the bundle's
 * bytes in `file`. Returns why it is refused, or undefined.
 */
async function verifyCodeSlot(
  remote: Remote,
  key: string,
  bundle: CodeBundle,
  classes: Set<number>,
  file: string,
  sealed: { identity: string; bytes: number } | undefined,
): Promise<string | undefined> {
  const slotFile = `${file}.slot`;
  const content = sealed ? sealed.bytes : bundle.bytes;
  try {
    const framing = await fetchSlot(remote, key, classes, content, slotFile, 'bundle');
    if (framing !== undefined) return framing;
    const read = await readSlotObject(slotFile, content, file, { gzip: false, ...(sealed ? { sealed } : {}), what: `code slot ${key}` });
    if ('why' in read) return `is not ${sealed ? 'an intact sealed bundle' : 'readable'} (${read.why})`;
    if (read.storedBytes !== bundle.bytes || read.storedSha256 !== bundle.sha256) return 'does not match its sha256 and size in the manifest';
    return undefined;
  } finally {
    await rm(slotFile, { force: true });
  }
}

/** Two code parts describe the same checkout state (HEAD, index tree, working tree); two absent ones count as equal. */
export function sameCode(a: Pick<CodeState, 'head' | 'indexTree' | 'worktreeTree'> | undefined, b: Pick<CodeState, 'head' | 'indexTree' | 'worktreeTree'> | undefined): boolean {
  if (!a || !b) return a === b;
  return a.head === b.head && a.indexTree === b.indexTree && a.worktreeTree === b.worktreeTree;
}
