import { bech32 } from '@scure/base';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SessmigError, usageError } from '../util/errors.js';

/**
 * The user's encryption key (issue 9; docs/FORMAT.md, "Encryption"): one age X25519 identity,
 * `AGE-SECRET-KEY-1…`, kept in `$XDG_CONFIG_HOME/sessmig/key` (mode 0600) or given as SESSMIG_KEY.
 * Everything else is derived from it with HMAC-SHA256 under fixed labels:
 * - the name key: blob object names are HMAC(name key, sha256 of the plaintext), so names do
 *   not reveal content hashes (as restic does);
 * - one age identity per blob, from its plaintext sha256: equal content gets equal ciphertext
 *   keys, so blobs are shared between checkpoints, and a ticket can carry the keys of exactly
 *   its checkpoint's blobs without the user's key;
 * - the key id: a short public fingerprint recorded in the remote, to tell a wrong key apart.
 * Keys are never printed, except by `sessmig key show`.
 */
export const IDENTITY = /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/;

export class UserKey {
  private constructor(private readonly identity: string) {}

  static parse(text: string, where: string): UserKey {
    const value = text.trim();
    if (!IDENTITY.test(value)) {
      throw usageError(
        'bad-key',
        `${where} is not a sessmig key (an age identity, AGE-SECRET-KEY-1 followed by 58 letters and digits)`,
        'copy it again from `sessmig key show` on the host that has it; never edit it by hand',
      );
    }
    try {
      bech32.decodeToBytes(value.toLowerCase());
    } catch {
      throw usageError('bad-key', `${where} is damaged (its checksum does not match)`, 'copy it again from `sessmig key show`');
    }
    return new UserKey(value);
  }

  static async generate(): Promise<UserKey> {
    return new UserKey(await generateX25519Identity());
  }

  /** The secret, for `key show` and the key file only. */
  reveal(): string {
    return this.identity;
  }

  recipient(): Promise<string> {
    return identityToRecipient(this.identity);
  }

  private mac(label: string, value = ''): Buffer {
    return createHmac('sha256', this.identity).update(`sessmig/v1 ${label}\0${value}`).digest();
  }

  /** A public fingerprint: the same key gives the same id; it reveals nothing about the key. */
  keyId(): string {
    return this.mac('key id').subarray(0, 8).toString('hex');
  }

  /** The object name of a blob: keyed, so the store cannot confirm a guessed content hash. */
  blobName(sha256: string): string {
    return this.mac('blob name', sha256).toString('hex');
  }

  /** The object name of a code bundle (docs/FORMAT-code.md): keyed like a blob's, under its own label. */
  codeName(sha256: string): string {
    return this.mac('code name', sha256).toString('hex');
  }

  /** The age identity that encrypts the code bundle with this plaintext sha256. */
  codeIdentity(sha256: string): string {
    return identityFromBytes(this.mac('code key', sha256));
  }

  /** The key an upload ticket's document is sealed to (its URL's fragment); this host can re-derive it. */
  ticketIdentity(ticketId: string): string {
    return identityFromBytes(this.mac('ticket key', ticketId));
  }

  /** The key what is uploaded through an upload ticket is sealed to. */
  uploadIdentity(ticketId: string): string {
    return identityFromBytes(this.mac('upload key', ticketId));
  }

  /** The age identity that encrypts the blob with this plaintext sha256. */
  blobIdentity(sha256: string): string {
    return identityFromBytes(this.mac('blob key', sha256));
  }
}

/** An age X25519 identity string from 32 secret bytes. */
export function identityFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 32) throw new Error('internal: an X25519 identity takes 32 bytes');
  return bech32.encode('AGE-SECRET-KEY-', bech32.toWords(bytes), false).toUpperCase();
}

export function keyFile(configDir: string): string {
  return path.join(configDir, 'key');
}

/** The user's key: SESSMIG_KEY, else the key file; undefined when there is none. */
export async function loadUserKey(configDir: string, env: NodeJS.ProcessEnv): Promise<UserKey | undefined> {
  if (env.SESSMIG_KEY !== undefined && env.SESSMIG_KEY !== '') return UserKey.parse(env.SESSMIG_KEY, 'SESSMIG_KEY');
  const file = keyFile(configDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SessmigError('key-unreadable', `cannot read the key file ${file}: ${(error as Error).message}`, { hint: `fix its permissions (it should be yours, mode 0600)` });
  }
  return UserKey.parse(text, `the key file ${file}`);
}

/** Writes the key file (0600, atomically); refuses to replace a different key unless `replace`. */
export async function saveUserKey(configDir: string, key: UserKey, replace: boolean): Promise<string> {
  const file = keyFile(configDir);
  const existing = await loadUserKey(configDir, {}).catch(() => undefined);
  if (existing && existing.keyId() !== key.keyId() && !replace) {
    throw usageError(
      'key-exists',
      `${file} already holds another key (key id ${existing.keyId()}); it was not replaced`,
      'sessions encrypted with it need it: keep a copy (sessmig key show) before you replace it with --force',
    );
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`; // unique per call: two commands may run in one process (main() as a library)
  await writeFile(temp, `${key.reveal()}\n`, { mode: 0o600 });
  await rename(temp, file);
  return file;
}
