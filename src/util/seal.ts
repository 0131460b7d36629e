import { Decrypter, Encrypter } from 'age-encryption';
import { createReadStream, createWriteStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { SessmigError } from './errors.js';

/**
 * age encryption of sessmig's objects (the age-encryption package: the age v1 format, X25519
 * recipients, ChaCha20-Poly1305 STREAM in 64 KiB chunks — authenticated, streaming). Documents
 * are sealed whole; blobs stream through, so memory stays flat with session size.
 */
export const AGE_MAGIC = Buffer.from('age-encryption.org/v1\n');
const CHUNK = 64 * 1024;
const TAG = 16;

export function isSealed(bytes: Buffer): boolean {
  return bytes.length >= AGE_MAGIC.length && bytes.subarray(0, AGE_MAGIC.length).equals(AGE_MAGIC);
}

export async function sealBytes(plain: Buffer, recipient: string): Promise<Buffer> {
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  return Buffer.from(await encrypter.encrypt(new Uint8Array(plain)));
}

/** Opens a sealed document; a wrong key or any changed byte is refused as `sealed-unreadable`. */
export async function openBytes(sealed: Buffer, identity: string, what: string): Promise<Buffer> {
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  try {
    return Buffer.from(await decrypter.decrypt(new Uint8Array(sealed)));
  } catch (error) {
    throw unreadable(what, error);
  }
}

/** Encrypts a file to another file, streaming; returns the sealed size. */
export async function sealFile(source: string, target: string, recipient: string): Promise<number> {
  const encrypter = new Encrypter();
  encrypter.addRecipient(recipient);
  const sealed = await encrypter.encrypt(Readable.toWeb(createReadStream(source)) as unknown as ReadableStream<Uint8Array>);
  let size = 0;
  const counted = Readable.fromWeb(sealed as unknown as WebReadableStream<Uint8Array>).on('data', (chunk: Buffer) => (size += chunk.length));
  await pipeline(counted, createWriteStream(target, { mode: 0o600 }));
  return size;
}

/** Decrypts a stream; authentication failures surface as `sealed-unreadable` errors while reading. */
export async function openStream(source: Readable, identity: string, what: string): Promise<Readable> {
  const decrypter = new Decrypter();
  decrypter.addIdentity(identity);
  let plain: ReadableStream<Uint8Array>;
  try {
    plain = await decrypter.decrypt(Readable.toWeb(source) as unknown as ReadableStream<Uint8Array>);
  } catch (error) {
    source.destroy();
    throw unreadable(what, error);
  }
  const out = Readable.fromWeb(plain as unknown as WebReadableStream<Uint8Array>);
  // Re-label failures in the payload (a flipped or cut ciphertext byte) as what they are.
  const relabeled = new PassThrough();
  out.on('error', (error) => relabeled.destroy(unreadable(what, error)));
  relabeled.on('close', () => out.destroy());
  return out.pipe(relabeled);
}

/**
 * The plaintext size of an age file of `sealedSize` bytes whose header (with the 16-byte payload
 * nonce) is `headerBytes` long: every 64 KiB chunk carries a 16-byte tag, and there is at least one.
 */
export function plainSize(sealedSize: number, headerBytes: number): number {
  const payload = sealedSize - headerBytes;
  if (payload < TAG) return -1;
  const chunks = Math.ceil(payload / (CHUNK + TAG));
  return payload - chunks * TAG;
}

/** The header length (with the payload nonce) of an age file for one recipient of this kind. */
export async function headerBytes(recipient: string): Promise<number> {
  return (await sealBytes(Buffer.alloc(0), recipient)).length - TAG;
}

function unreadable(what: string, error: unknown): SessmigError {
  const detail = (error as Error)?.message ?? String(error);
  const wrongKey = /no identity matched|incorrect|identity/i.test(detail);
  return new SessmigError(
    'sealed-unreadable',
    wrongKey
      ? `${what} cannot be decrypted with this key (it was encrypted for another key)`
      : `${what} failed authentication: the ciphertext was changed or cut short (${detail.slice(0, 120)})`,
    {
      hint: wrongKey
        ? 'use the key this worktree was encrypted with (sessmig key import, or SESSMIG_KEY); `sessmig status` shows its key id'
        : 'the remote copy is damaged or was tampered with: push again from the host that has the sessions, or pull another checkpoint with --checkpoint',
      remoteData: true,
    },
  );
}

/**
 * Seals a document so that the result is exactly `size` bytes, by padding the plaintext with
 * spaces (JSON whitespace): an upload slot signs one exact length. Undefined when no padding fits.
 */
export async function sealToSize(plain: Buffer, recipient: string, size: number): Promise<Buffer | undefined> {
  const header = await headerBytes(recipient);
  for (let chunks = 1; chunks <= Math.ceil(size / CHUNK) + 1; chunks++) {
    const length = size - header - chunks * TAG;
    if (length < plain.length) break;
    if (Math.max(1, Math.ceil(length / CHUNK)) !== chunks) continue;
    const sealed = await sealBytes(Buffer.concat([plain, Buffer.alloc(length - plain.length, 0x20)]), recipient);
    if (sealed.length === size) return sealed;
  }
  return undefined;
}
