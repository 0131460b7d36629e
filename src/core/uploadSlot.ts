import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Meter } from '../blob/verifiedRead.js';
import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { openStream } from '../util/seal.js';

/**
 * Downloads one upload slot (docs/FORMAT.md, "Upload tickets": the object, then zero bytes up to
 * a size class of the ticket) to `slotFile` and checks that frame: the slot's size is one of
 * `classes`, holds at least `content` bytes, and only zero bytes follow them. Returns why the slot
 * is refused ("is missing from its slot", …: completes "session X …" / "code bundle X …"), or
 * undefined: then the first `content` bytes of `slotFile` are the uploaded object. Errors other
 * than a missing slot are thrown (SessmigError from the remote).
 */
export async function fetchSlot(remote: Remote, key: string, classes: Set<number>, content: number, slotFile: string, noun: 'blob' | 'bundle'): Promise<string | undefined> {
  let source;
  try {
    source = await remote.getStream(key);
  } catch (error) {
    if (error instanceof SessmigError && (error.code === 'not-found' || error.code === 'access-denied')) return 'is missing from its slot';
    throw error;
  }
  const whole = new Meter();
  await pipeline(source, whole, createWriteStream(slotFile, { mode: 0o600 }));
  if (!classes.has(whole.bytes) || whole.bytes < content) return `is ${whole.bytes} bytes in its slot, not a size the ticket allows for ${content} bytes`;
  if (content < whole.bytes) {
    for await (const chunk of createReadStream(slotFile, { start: content })) {
      if ((chunk as Buffer).some((byte) => byte !== 0)) return `has bytes other than zero padding after its ${noun}`;
    }
  }
  return undefined;
}

/** What the object in a slot holds: the stored object's bytes and sha256, and (gzip) those of what it gunzips to. */
export interface SlotObject {
  storedBytes: number;
  storedSha256: string;
  rawBytes: number;
  rawSha256: string;
}

/**
 * Reads the object framed in a fetched slot (fetchSlot said it is well framed): its first
 * `content` bytes, opened with `sealed.identity` for an encrypted worktree, are the stored object —
 * written to `file` and metered — and, with `gzip`, gunzipped and metered again. Returns what it
 * holds for the caller to compare with its manifest, or `{ why }` when it does not open or gunzip.
 */
export async function readSlotObject(slotFile: string, content: number, file: string, how: { gzip: boolean; sealed?: { identity: string }; what: string }): Promise<SlotObject | { why: string }> {
  const stored = new Meter();
  const raw = new Meter();
  try {
    const head = content === 0 ? new PassThrough().end() : createReadStream(slotFile, { start: 0, end: content - 1 });
    const object = how.sealed ? await openStream(head, how.sealed.identity, how.what) : head;
    await pipeline(object, stored, createWriteStream(file, { mode: 0o600 }));
    if (how.gzip) await pipeline(createReadStream(file), createGunzip(), raw, devNull());
  } catch (error) {
    return { why: (error as Error).message };
  }
  return { storedBytes: stored.bytes, storedSha256: stored.digest(), rawBytes: raw.bytes, rawSha256: raw.digest() };
}

function devNull(): Writable {
  return new Writable({ write: (_chunk, _encoding, callback) => callback() });
}
