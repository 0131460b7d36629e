/**
 * The encryption primitives on the real age-encryption library: sizes, keyed names, tamper and
 * wrong-key refusals. No server needed.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromBytes, UserKey } from '../../src/crypto/keys.js';
import { headerBytes, isSealed, openBytes, openStream, plainSize, sealBytes, sealFile } from '../../src/util/seal.js';
import { redact } from '../../src/util/redact.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-seal-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('user key', () => {
  it('derives stable, keyed names and per-blob identities; another key derives others', async () => {
    const a = await UserKey.generate();
    const b = await UserKey.generate();
    const sha = 'ab'.repeat(32);
    expect(a.blobName(sha)).toMatch(/^[0-9a-f]{64}$/);
    expect(a.blobName(sha)).not.toBe(sha);
    expect(a.blobName(sha)).toBe(UserKey.parse(a.reveal(), 'x').blobName(sha));
    expect(a.blobName(sha)).not.toBe(b.blobName(sha));
    expect(a.blobIdentity(sha)).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    expect(a.blobIdentity(sha)).not.toBe(a.blobIdentity('cd'.repeat(32)));
    expect(a.keyId()).toMatch(/^[0-9a-f]{16}$/);
    expect(a.keyId()).not.toBe(b.keyId());
    expect(identityFromBytes(new Uint8Array(32))).toMatch(/^AGE-SECRET-KEY-1/);
  });

  it('refuses what is not a key, and a key with a broken checksum', async () => {
    expect(() => UserKey.parse('hello', 'SESSMIG_KEY')).toThrow(/SESSMIG_KEY is not a sessmig key/);
    const good = (await UserKey.generate()).reveal();
    const broken = `${good.slice(0, -1)}${good.endsWith('Q') ? 'P' : 'Q'}`;
    expect(() => UserKey.parse(broken, 'the key on stdin')).toThrow(/damaged \(its checksum does not match\)/);
  });

  it('redact() removes age secret keys from any text', async () => {
    const key = (await UserKey.generate()).reveal();
    expect(redact(`oops ${key} here`)).toBe('oops AGE-SECRET-KEY-REDACTED here');
  });
});

describe('sealing', () => {
  it('round-trips documents and refuses another key and a flipped byte', async () => {
    const key = await UserKey.generate();
    const other = await UserKey.generate();
    const sealed = await sealBytes(Buffer.from('{"secret":"MARK"}'), await key.recipient());
    expect(isSealed(sealed)).toBe(true);
    expect(sealed.includes(Buffer.from('MARK'))).toBe(false);
    expect((await openBytes(sealed, key.reveal(), 'checkpoint x')).toString()).toBe('{"secret":"MARK"}');
    await expect(openBytes(sealed, other.reveal(), 'checkpoint x')).rejects.toThrow(/checkpoint x cannot be decrypted with this key/);
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 3]! ^= 1;
    await expect(openBytes(flipped, key.reveal(), 'checkpoint x')).rejects.toThrow(/checkpoint x failed authentication/);
  });

  it('streams files; the plaintext size follows from the sealed size (0 B to several chunks)', async () => {
    const key = await UserKey.generate();
    const recipient = await key.recipient();
    const header = await headerBytes(recipient);
    for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536 + 5]) {
      const plain = Buffer.alloc(size, 7);
      const source = path.join(dir, `p-${size}`);
      const target = path.join(dir, `s-${size}`);
      await writeFile(source, plain);
      const sealedSize = await sealFile(source, target, recipient);
      expect((await readFile(target)).length).toBe(sealedSize);
      expect(plainSize(sealedSize, header), `size ${size}`).toBe(size);
      const back = await drain(await openStream(Readable.from([await readFile(target)]), key.reveal(), 'blob'));
      expect(back.equals(plain)).toBe(true);
    }
  });

  it('a stream cut short or changed mid-way fails with a clear error, never short data', async () => {
    const key = await UserKey.generate();
    const source = path.join(dir, 'big');
    await writeFile(source, Buffer.alloc(200_000, 3));
    const target = path.join(dir, 'big.age');
    await sealFile(source, target, await key.recipient());
    const sealed = await readFile(target);
    const cut = sealed.subarray(0, sealed.length - 1000);
    await expect(drain(await openStream(Readable.from([cut]), key.reveal(), 'blob b'))).rejects.toThrow(/blob b failed authentication/);
    const changed = Buffer.from(sealed);
    changed[100_000]! ^= 0x40;
    await expect(drain(await openStream(Readable.from([changed]), key.reveal(), 'blob b'))).rejects.toThrow(/blob b failed authentication/);
  });
});
