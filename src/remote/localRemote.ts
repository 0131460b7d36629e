import { createHash, randomBytes } from 'node:crypto';

import { copyFile, mkdir, open, readFile, readdir, rename, rm, rmdir, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SessmigError } from '../core/errors.js';
import type { ListedObject, PutConditions, Remote, StoredObject } from './remote.js';
import { notFound, objectTooLarge, preconditionFailed } from './remoteErrors.js';

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/**
 * A remote in a local folder (file:///abs/path): the embedded default. Writes go to a temp file
 * and are renamed into place, so a reader sees a whole object or none. Conditional writes are
 * made atomic with a lock directory next to the object (mkdir is atomic on POSIX file systems).
 */
export class LocalRemote implements Remote {
  readonly conditionalWrites = true;

  constructor(
    readonly root: string,
    readonly display: string,
  ) {}

  private file(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '.' || part === '')) {
      throw new Error(`internal: unsafe key ${key}`);
    }
    return path.join(this.root, ...key.split('/'));
  }

  async get(key: string, maxBytes: number): Promise<StoredObject | undefined> {
    const file = this.file(key);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.wrap(error, `read ${key}`);
    }
    if (size > maxBytes) throw objectTooLarge(key, size, maxBytes);
    try {
      const body = await readFile(file);
      if (body.length > maxBytes) throw objectTooLarge(key, body.length, maxBytes);
      return { body, etag: etagOf(body) };
    } catch (error) {
      if (isMissing(error)) return undefined;
      if (error instanceof SessmigError) throw error;
      throw this.wrap(error, `read ${key}`);
    }
  }

  async put(key: string, body: Buffer, conditions: PutConditions = {}): Promise<{ etag: string }> {
    const file = this.file(key);
    await this.ensureDir(path.dirname(file));
    if (!conditions.ifMatch && !conditions.ifNoneMatch) {
      await this.writeAtomic(file, body);
      return { etag: etagOf(body) };
    }
    return this.withLock(file, async () => {
      const current = await readFile(file).catch((error: unknown) => {
        if (isMissing(error)) return undefined;
        throw this.wrap(error, `read ${key}`);
      });
      if (conditions.ifNoneMatch && current !== undefined) throw preconditionFailed(key);
      if (conditions.ifMatch !== undefined && (current === undefined || etagOf(current) !== conditions.ifMatch)) {
        throw preconditionFailed(key);
      }
      await this.writeAtomic(file, body);
      return { etag: etagOf(body) };
    });
  }

  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    const file = this.file(key);
    try {
      const info = await stat(file);
      if (info.size <= 1024 * 1024) return { size: info.size, etag: etagOf(await readFile(file)) };
      return { size: info.size, etag: `${info.size}-${Math.floor(info.mtimeMs)}` };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw this.wrap(error, `stat ${key}`);
    }
  }

  async putFile(key: string, source: string, size: number): Promise<void> {
    const file = this.file(key);
    await this.ensureDir(path.dirname(file));
    const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await copyFile(source, temp);
      const written = (await stat(temp)).size;
      if (written !== size) throw new Error(`copied ${written} bytes, expected ${size}`);
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw this.wrap(error, `write ${key}`);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const file = this.file(key);
    const handle = await open(file, 'r').catch((error: unknown) => {
      if (isMissing(error)) throw notFound(key);
      throw this.wrap(error, `read ${key}`);
    });
    return handle.createReadStream();
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : '';
    const base = dirKey ? this.file(dirKey) : this.root;
    const found: ListedObject[] = [];
    await walk(base, dirKey, async (key, full) => {
      if (!key.startsWith(prefix)) return;
      const name = key.slice(key.lastIndexOf('/') + 1);
      if (name.includes('.tmp-') || name.endsWith('.lock')) return;
      const info = await stat(full).catch(() => undefined);
      if (info?.isFile()) found.push({ key, size: info.size, lastModified: info.mtime });
    });
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    yield* found;
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }

  async touch(key: string): Promise<void> {
    const now = new Date();
    await utimes(this.file(key), now, now).catch((error: unknown) => {
      if (isMissing(error)) throw notFound(key);
      throw this.wrap(error, `touch ${key}`);
    });
  }

  private async ensureDir(dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      throw this.wrap(error, `create ${dir}`);
    }
  }

  private async writeAtomic(file: string, body: Buffer): Promise<void> {
    const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(temp, body, { flag: 'wx' });
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw this.wrap(error, `write ${path.relative(this.root, file)}`);
    }
  }

  private async withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const lock = `${file}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        await mkdir(lock);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw this.wrap(error, 'lock');
        const info = await stat(lock).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > LOCK_STALE_MS) {
          await rmdir(lock).catch(() => undefined);
          continue;
        }
        if (Date.now() > deadline) {
          throw new SessmigError('remote-locked', `${lock} is held by another sessmig`, {
            hint: `wait for the other sessmig to finish; if none is running, remove ${lock}`,
          });
        }
        await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
      }
    }
    try {
      return await fn();
    } finally {
      await rmdir(lock).catch(() => undefined);
    }
  }

  private wrap(error: unknown, action: string): SessmigError {
    const code = (error as NodeJS.ErrnoException).code;
    const hint =
      code === 'EACCES' || code === 'EPERM'
        ? `make ${this.root} writable by this user, or pick another folder with --remote file:///path`
        : code === 'ENOSPC'
          ? `free disk space under ${this.root}`
          : `check that ${this.root} exists and is a folder you can write`;
    return new SessmigError('remote-io', `local remote ${this.display}: cannot ${action}: ${(error as Error).message}`, {
      hint,
      cause: error,
    });
  }
}

export function etagOf(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 32);
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function walk(dir: string, key: string, visit: (key: string, full: string) => Promise<void>): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  for (const entry of entries) {
    const childKey = key ? `${key}/${entry.name}` : entry.name;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name.endsWith('.lock')) continue;
      await walk(full, childKey, visit);
    } else if (entry.isFile()) {
      await visit(childKey, full);
    }
  }
}

