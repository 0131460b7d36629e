import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Meter } from '../blob/verifiedRead.js';
import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';

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
