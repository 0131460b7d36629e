import { identityToRecipient } from 'age-encryption';
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { SessmigError, usageError } from '../util/errors.js';
import { parseDocument, serializeDocument } from '../format/document.js';
import { checkpointTime, HOST_ID } from '../format/ids.js';
import { ENCRYPTION_MARKER, markerKey, parseKey, sealedBlobKey, sealedBundleKey } from '../format/keys.js';
import { FORMAT_VERSION } from '../format/schema.js';
import type { ListedObject, PutConditions, Remote, StoredObject, Sealing } from '../remote/remote.js';
import { objectTooLarge } from '../remote/remoteErrors.js';
import { headerBytes, isSealed, openBytes, openStream, plainSize, sealBytes, sealFile } from '../util/seal.js';
import type { UserKey } from './keys.js';

/**
 * An encrypted worktree (docs/FORMAT.md, "Encryption"): a Remote that seals what sessmig writes
 * under one worktree and opens what it reads, so push, pull and every other command work
 * unchanged on top of it.
 * - `checkpoints/<id>.json`: sealed whole to the user's recipient.
 * - `blobs/<sha256>.json.gz` is stored as `blobs/<HMAC name>.age`, sealed (streaming) to the
 *   blob's own derived recipient; sizes read back as the plaintext's.
 * - `HEAD.json` stays readable (ownership and compare-and-swap need it) but without host names.
 * - `ENCRYPTION.json` (the marker) is written before the first sealed checkpoint.
 * A plaintext checkpoint in an encrypted worktree is refused: it predates encryption or was planted.
 */
export { ENCRYPTION_MARKER, markerKey };
export const MAX_MARKER_BYTES = 16 * 1024;

export const EncryptionMarker = z.looseObject({
  formatVersion: z.literal(FORMAT_VERSION),
  kind: z.literal('sessmig.encryption'),
  scheme: z.literal('age-x25519-v1'),
  /** A public fingerprint of the key (see UserKey.keyId). */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  createdAt: z.iso.datetime({ offset: true }),
  createdBy: z.looseObject({ hostId: z.string().regex(HOST_ID) }),
});
export type EncryptionMarker = z.infer<typeof EncryptionMarker>;

export async function readMarker(remote: Remote, worktree: string): Promise<EncryptionMarker | undefined> {
  const stored = await remote.get(markerKey(worktree), MAX_MARKER_BYTES);
  return stored ? parseDocument(stored.body, EncryptionMarker, `encryption marker ${markerKey(worktree)}`, MAX_MARKER_BYTES) : undefined;
}

export class SealedRemote implements Remote, Sealing {
  readonly display: string;
  /** This remote is its own sealing capability. */
  get sealing(): Sealing {
    return this;
  }
  readonly conditionalWrites: boolean;
  private marked: boolean;
  /** Objects this run stored sealed (blobs, tool outputs, snapshot packs, code bundles), by their plaintext key: those copies go once it commits. */
  private readonly sealedHere = new Set<string>();
  /** The writeId of the pointer this run wrote, until it is read back. */
  private pointerWriteId: string | undefined;
  /** Opened before the worktree was encrypted: this run is the first sealed push. */
  private readonly firstSealing: boolean;
  /** When the worktree was encrypted (the marker's createdAt), if it was when this remote opened. */
  private readonly markedAt: string | undefined;

  private constructor(
    readonly inner: Remote,
    readonly key: UserKey,
    readonly worktree: string,
    private readonly recipient: string,
    private readonly header: number,
    private readonly tempDir: string,
    private readonly hostId: string,
    marker: EncryptionMarker | undefined,
  ) {
    this.display = inner.display;
    this.conditionalWrites = inner.conditionalWrites;
    this.marked = marker !== undefined;
    this.firstSealing = marker === undefined;
    this.markedAt = marker?.createdAt;
  }

  /** A checkpoint whose id (its UTC creation time) is older than the marker predates encryption. */
  private predatesEncryption(key: string): boolean {
    const parsed = parseKey(key);
    const created = parsed?.kind === 'checkpoint' ? checkpointTime(parsed.id) : undefined;
    if (created === undefined || !this.markedAt) return false;
    return created < Date.parse(this.markedAt);
  }

  static async open(inner: Remote, key: UserKey, worktree: string, options: { tempDir: string; hostId: string; marker: EncryptionMarker | undefined }): Promise<SealedRemote> {
    const recipient = await key.recipient();
    return new SealedRemote(inner, key, worktree, recipient, await headerBytes(recipient), options.tempDir, options.hostId, options.marker);
  }

  /**
   * Keys of this worktree's checkpoints, blobs and code bundles (docs/FORMAT-code.md); anything
   * else passes through unchanged. A code bundle is sealed like a blob, under its own keyed name
   * and derived identity: `code/<HMAC code name>.age`.
   */
  private classify(key: string): { kind: 'checkpoint' } | { kind: 'blob'; sha256: string; stored: string; identity: () => string } | { kind: 'pointer' } | { kind: 'other' } {
    const parsed = parseKey(key);
    if (!parsed || parsed.worktree !== this.worktree) return { kind: 'other' };
    const { kind, id } = parsed;
    if (kind === 'pointer') return { kind: 'pointer' };
    if (kind === 'checkpoint') return { kind: 'checkpoint' };
    // Session blobs (.json.gz) and what sessions point at (.pack.gz, .out.gz: docs/FORMAT-snapshots.md) alike.
    if (kind === 'blob' || kind === 'pack' || kind === 'out') return { kind: 'blob', sha256: id, stored: this.storedBlobKey(id), identity: () => this.key.blobIdentity(id) };
    if (kind === 'bundle') {
      return { kind: 'blob', sha256: id, stored: this.storedCodeKey(id), identity: () => this.key.codeIdentity(id) };
    }
    return { kind: 'other' };
  }

  /** Where the blob with this plaintext sha256 is stored: its keyed name, never the hash itself. */
  storedBlobKey(sha256: string): string {
    return sealedBlobKey(this.worktree, this.key.blobName(sha256));
  }

  storedKey(key: string): string {
    const kind = this.classify(key);
    return kind.kind === 'blob' ? kind.stored : key;
  }

  /** Where the code bundle with this plaintext sha256 is stored: its keyed name, never the hash itself. */
  storedCodeKey(sha256: string): string {
    return sealedBundleKey(this.worktree, this.key.codeName(sha256));
  }

  async get(key: string, maxBytes: number): Promise<StoredObject | undefined> {
    const kind = this.classify(key).kind;
    if (kind === 'pointer') {
      const pointer = await this.inner.get(key, maxBytes);
      if (pointer) await this.afterPointerRead(pointer.body);
      return pointer;
    }
    if (kind !== 'checkpoint') return this.inner.get(key, maxBytes);
    const stored = await this.inner.get(key, maxBytes + this.header + 16 * Math.ceil(maxBytes / 65536 + 1));
    if (!stored) return undefined;
    if (!isSealed(stored.body)) {
      // The first sealed push of a worktree reads its plaintext checkpoint (the sessions it carries
      // on, the blobs it seals): until the marker is written the worktree is not encrypted yet.
      if (!this.marked) return stored;
      const predates = this.predatesEncryption(key);
      throw new SessmigError(
        'not-encrypted',
        predates
          ? `checkpoint ${key} is not encrypted, but worktree ${this.worktree} is: it was written before encryption was turned on (on ${this.markedAt})`
          : `checkpoint ${key} is not encrypted, but worktree ${this.worktree} is, and it claims to be newer than the encryption (${this.markedAt}): it was planted`,
        {
          hint: predates ? 'pull the current checkpoint instead; `sessmig prune` removes old checkpoints' : 'do not pull it; delete it from the remote, and push again from a host you trust',
          data: { predatesEncryption: predates },
          remoteData: true,
        },
      );
    }
    const body = await openBytes(stored.body, this.key.reveal(), `checkpoint ${key}`);
    // The sealed object may exceed maxBytes by the age overhead only: the plaintext must not.
    if (body.length > maxBytes) throw objectTooLarge(key, body.length, maxBytes);
    return { body, etag: stored.etag };
  }

  async put(key: string, body: Buffer, conditions?: PutConditions): Promise<{ etag: string }> {
    const kind = this.classify(key).kind;
    if (kind === 'checkpoint') {
      await this.ensureMarker();
      return this.inner.put(key, await sealBytes(body, this.recipient), conditions);
    }
    if (kind === 'pointer') {
      const written = withoutHostNames(body);
      this.pointerWriteId = (JSON.parse(written.toString('utf8')) as { writeId?: string }).writeId;
      return this.inner.put(key, written, conditions);
    }
    return this.inner.put(key, body, conditions);
  }

  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    const kind = this.classify(key);
    if (kind.kind !== 'blob') return this.inner.head(key);
    const stored = await this.inner.head(kind.stored);
    return stored ? { size: plainSize(stored.size, this.header), etag: stored.etag } : undefined;
  }

  async putFile(key: string, file: string, size: number): Promise<void> {
    const kind = this.classify(key);
    if (kind.kind !== 'blob') return this.inner.putFile(key, file, size);
    const sealed = path.join(this.tempDir, `${path.basename(file)}.age`);
    try {
      const sealedSize = await sealFile(file, sealed, await identityToRecipient(kind.identity()));
      await this.inner.putFile(kind.stored, sealed, sealedSize);
      this.sealedHere.add(key);
    } finally {
      await rm(sealed, { force: true });
    }
  }

  /**
   * The pointer read back after this remote wrote it (writePointer's check): once it names the
   * write, the sealed checkpoint is current, and the plaintext copies of the objects sealed by this
   * run (blobs, tool outputs, snapshot packs, code bundles) are deleted — the content the checkpoint names is then readable only with the key. Only
   * plaintext checkpoints name them, and those are refused in an encrypted worktree anyway.
   */
  private async afterPointerRead(body: Buffer): Promise<void> {
    if (!this.firstSealing || this.pointerWriteId === undefined || this.sealedHere.size === 0) return;
    let writeId: unknown;
    try {
      writeId = (JSON.parse(body.toString('utf8')) as { writeId?: unknown }).writeId;
    } catch {
      return;
    }
    if (writeId !== this.pointerWriteId) return;
    const keys = [...this.sealedHere];
    this.sealedHere.clear();
    for (const plainKey of keys) {
      // Best effort: a copy left behind only costs space (and is what FORMAT.md allows).
      if (await this.inner.head(plainKey).catch(() => undefined)) await this.inner.delete(plainKey).catch(() => undefined);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const kind = this.classify(key);
    if (kind.kind !== 'blob') return this.inner.getStream(key);
    return openStream(await this.inner.getStream(kind.stored), kind.identity(), `blob ${kind.stored}`);
  }

  list(prefix: string): AsyncIterable<ListedObject> {
    return this.inner.list(prefix);
  }

  async delete(key: string): Promise<void> {
    const kind = this.classify(key);
    return this.inner.delete(kind.kind === 'blob' ? kind.stored : key);
  }

  async touch(key: string): Promise<void> {
    const kind = this.classify(key);
    return this.inner.touch(kind.kind === 'blob' ? kind.stored : key);
  }

  /** Records that the worktree is encrypted, before its first sealed checkpoint. */
  private async ensureMarker(): Promise<void> {
    if (this.marked) return;
    const marker: EncryptionMarker = {
      formatVersion: FORMAT_VERSION,
      kind: 'sessmig.encryption',
      scheme: 'age-x25519-v1',
      keyId: this.key.keyId(),
      createdAt: new Date().toISOString(),
      createdBy: { hostId: this.hostId },
    };
    try {
      await this.inner.put(markerKey(this.worktree), serializeDocument(marker), { ifNoneMatch: true });
    } catch (error) {
      if (!(error instanceof SessmigError && error.code === 'precondition-failed')) throw error;
      const other = await readMarker(this.inner, this.worktree);
      if (other && other.keyId !== marker.keyId) throw wrongKey(this.worktree, other.keyId, marker.keyId);
    }
    this.marked = true;
  }

  /** Seals a plaintext object of this worktree (blob, output, pack, bundle) under its keyed name (the first encrypted push of a worktree). */
  async adoptPlain(plainKey: string, tempName: string): Promise<boolean> {
    const stored = this.storedKey(plainKey);
    if (stored === plainKey) return false; // not an object sealed by name
    if (await this.inner.head(stored)) return false;
    const plain = await this.inner.head(plainKey);
    if (!plain) return false;
    const file = path.join(this.tempDir, tempName);
    try {
      await pipeline(await this.inner.getStream(plainKey), createWriteStream(file, { mode: 0o600 }));
      await this.putFile(plainKey, file, (await stat(file)).size);
    } finally {
      await rm(file, { force: true });
    }
    return true;
  }
}

export function wrongKey(worktree: string, expected: string, actual: string): SessmigError {
  return new SessmigError('wrong-key', `worktree ${worktree} is encrypted with key ${expected}; this host's key is ${actual}`, {
    hint: 'import the key it was encrypted with (on a host that has it: sessmig key show; here: sessmig key import), or set SESSMIG_KEY',
  });
}

export function missingKey(worktree: string, keyId: string): SessmigError {
  return usageError(
    'no-key',
    `worktree ${worktree} is encrypted (key ${keyId}) and this host has no key; nothing was read or written`,
    'copy the key from a host that has it (sessmig key show there, then here: sessmig key import) or set SESSMIG_KEY',
  );
}

/** The pointer of an encrypted worktree names hosts by id only. */
function withoutHostNames(body: Buffer): Buffer {
  const value = JSON.parse(body.toString('utf8')) as { owner?: { hostname?: string } | null; updatedBy?: { hostname?: string } };
  if (value.owner) value.owner.hostname = '';
  if (value.updatedBy) value.updatedBy.hostname = '';
  return serializeDocument(value);
}

