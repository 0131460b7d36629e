import { createHash, randomBytes } from 'node:crypto';

import { constants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, open, readFile, readdir, rename, rm, rmdir, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { SessmigError } from '../util/errors.js';
import { excessAccess, folderModes, PRIVATE_DIR, PRIVATE_FILE, wantedMode, type FolderModes } from './folderModes.js';
import type { ExposedObject, ListedObject, PutConditions, Remote, StoredObject } from './remote.js';
import { notFound, objectTooLarge, preconditionFailed } from './remoteErrors.js';

const LOCK_STALE_MS = 30_000;
const LOCK_WAIT_MS = 10_000;

/**
 * A remote in a local folder (file:///abs/path): the embedded default. Writes go to a temp file
 * and are renamed into place, so a reader sees a whole object or none. Conditional writes are
 * made atomic with a lock directory next to the object (mkdir is atomic on POSIX file systems).
 * Everything it creates gets its mode from folderModes.ts (private unless the root is group-shared)
 * before it is renamed into place, whatever the umask.
 */
export class LocalRemote implements Remote {
  readonly conditionalWrites = true;
  private policy: Promise<FolderModes> | undefined;

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
      // copyFile gives the copy the source's mode; the folder (ours, private) covers that instant.
      await copyFile(source, temp, constants.COPYFILE_EXCL);
      const written = (await this.settle(temp, 'file')).size;
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

  async exposed(prefix: string): Promise<ExposedObject[]> {
    let root;
    try {
      root = await stat(this.root);
    } catch (error) {
      if (isMissing(error)) return [];
      throw this.wrap(error, `read ${this.root}`);
    }
    const policy = folderModes(root);
    const found: ExposedObject[] = [];
    const consider = async (key: string): Promise<'file' | 'dir' | undefined> => {
      const info = await lstat(this.file(key)).catch(() => undefined);
      const kind = info?.isDirectory() ? 'dir' : info?.isFile() ? 'file' : undefined;
      if (!info || !kind) return undefined;
      const who = excessAccess(policy, kind, info.mode, info.gid);
      if (who) found.push({ key: kind === 'dir' ? `${key}/` : key, folder: kind === 'dir', mode: info.mode & 0o7777, who });
      return kind;
    };
    const visit = async (key: string): Promise<void> => {
      if ((await consider(key)) !== 'dir') return;
      const entries = await readdir(this.file(key)).catch(() => [] as string[]);
      for (const entry of entries.sort()) await visit(`${key}/${entry}`);
    };
    // The folders above it (a listing shows the names below), then the folder and all it holds.
    const parts = prefix.replace(/\/+$/, '').split('/');
    for (let depth = 1; depth < parts.length; depth++) await consider(parts.slice(0, depth).join('/'));
    await visit(parts.join('/'));
    return found;
  }

  /** The root's policy, read once; a root that does not exist yet is created private (and so are its missing parents). */
  private modes(): Promise<FolderModes> {
    this.policy ??= (async () => {
      try {
        const info = await stat(this.root);
        return folderModes(info);
      } catch (error) {
        if (!isMissing(error)) throw this.wrap(error, `read ${this.root}`);
      }
      await this.makeDirs(this.root, () => PRIVATE_DIR);
      return folderModes(undefined);
    })();
    return this.policy;
  }

  private async ensureDir(dir: string): Promise<void> {
    const policy = await this.modes();
    await this.makeDirs(dir, (gid) => wantedMode(policy, 'dir', gid));
  }

  /** mkdir -p, then each folder it created gets its mode (mkdir's mode is cut by the umask). */
  private async makeDirs(dir: string, modeFor: (gid: number) => number): Promise<void> {
    try {
      const first = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
      if (first === undefined) return;
      for (let current = dir; ; current = path.dirname(current)) {
        const info = await stat(current);
        const mode = modeFor(info.gid);
        if ((info.mode & 0o7777) !== mode) await chmod(current, mode);
        if (current === first || path.dirname(current) === current) break;
      }
    } catch (error) {
      throw this.wrap(error, `create ${dir}`);
    }
  }

  /** Gives a file or folder sessmig just created the mode the policy wants; returns its stat. */
  private async settle(target: string, kind: 'file' | 'dir'): Promise<{ size: number }> {
    const policy = await this.modes();
    const info = await stat(target);
    const mode = wantedMode(policy, kind, info.gid);
    if ((info.mode & 0o7777) !== mode) await chmod(target, mode);
    return info;
  }

  private async writeAtomic(file: string, body: Buffer): Promise<void> {
    const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      const handle = await open(temp, 'wx', PRIVATE_FILE);
      try {
        await handle.writeFile(body);
        const policy = await this.modes();
        const mode = wantedMode(policy, 'file', (await handle.stat()).gid);
        await handle.chmod(mode);
      } finally {
        await handle.close();
      }
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
        await mkdir(lock, PRIVATE_DIR);
        await this.settle(lock, 'dir').catch(() => undefined);
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

