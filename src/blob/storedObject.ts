import type { Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { readVerified } from './verifiedRead.js';

/**
 * gzip level of every object sessmig compresses (session blobs, tool outputs, snapshot packs).
 * Not part of the format: a reader takes any gzip stream. Measured here (typescript.js + lib.dom.d.ts
 * as one JSON document, 11.3 MB, node 20): level 6 1.92 MB in 172 ms, level 4 2.05 MB (+7 %) in
 * 72 ms (2.4× faster), level 1 2.43 MB (+27 %) in 50 ms. Level 4 keeps the bytes on a slow link
 * and most of the speed.
 */
export const GZIP_LEVEL = 4;

/** What the manifest records of a content-addressed object: the sha256 and size of what its name covers, and the stored size. */
export interface StoredObjectFacts {
  sha256: string;
  rawBytes: number;
  storedBytes: number;
}

/**
 * Stores the object at `key` from `file` unless the remote has it: content-addressed objects
 * (blobs, tool outputs, snapshot packs; code bundles with `gzip: false`, whose name covers the
 * stored bytes: another size there is always damage) are reused when present. Present with the size of `file`:
 * reused (touched, so a concurrent prune's grace period covers it). Present with another size: the
 * same content compressed otherwise (another gzip level, an older sessmig) is reused as it is —
 * verified whole first, gunzip and sha256 — so manifests that name it keep their stored size;
 * anything else there (damaged) is replaced. Returns whether it uploaded, and the stored size the
 * manifest must record. Errors: `upload-unverified` when the upload is not there after it, the
 * remote's own.
 */
export async function storeObject(remote: Remote, key: string, file: string, facts: StoredObjectFacts, stages: { gzip: boolean } = { gzip: true }): Promise<{ uploaded: boolean; storedBytes: number }> {
  const existing = await remote.head(key);
  if (existing && existing.size === facts.storedBytes) {
    await remote.touch(key);
    return { uploaded: false, storedBytes: existing.size };
  }
  if (existing) {
    const read = await readVerified(remote, key, stages);
    if (read.status === 'ok' && read.sha256 === facts.sha256 && read.rawBytes === facts.rawBytes) {
      await remote.touch(key);
      return { uploaded: false, storedBytes: read.storedBytes };
    }
  }
  await remote.putFile(key, file, facts.storedBytes);
  const check = await remote.head(key);
  if (!check || check.size !== facts.storedBytes) {
    throw new SessmigError('upload-unverified', `${key} is not in the remote after its upload`, { hint: 're-run the push; nothing was made current' });
  }
  return { uploaded: true, storedBytes: facts.storedBytes };
}
