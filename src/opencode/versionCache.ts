/**
 * What `opencode --version` printed, remembered per binary: starting opencode costs about a
 * second of CPU (measured here: 1.0–1.1 s user for `--version`), and every sessmig command needs
 * the version. An entry holds only while the binary file is the same one — same real path, inode,
 * size and modification time — so an upgrade (npm, brew, the installer all write a new file) is
 * seen at once. The cache is a convenience: any problem reading or writing it means "ask opencode".
 *
 * Facts learnt of the same file ride along (`facts`: e.g. that its server has the replay routes, which
 * costs a GET /doc of 1.5–5 s to learn), valid by the same rule and dropped with a new version.
 *
 * File: $XDG_CACHE_HOME/sessmig/opencode-versions.json, `{ "<real path>": {ino, size, mtimeMs, version, facts?} }`.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

interface Entry {
  ino: number;
  size: number;
  mtimeMs: number;
  version: string;
  /** What else was learnt of this very file (e.g. `replayRoutes`: its server has the replay routes), by name. */
  facts?: Record<string, string>;
}

/** At most this many binaries are remembered (the newest writes win). */
const MAX_ENTRIES = 16;

/** The executable file `bin` runs: itself when it names a path, else the first match on PATH. */
export async function resolveBinary(bin: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const candidates = bin.includes('/') ? [bin] : (env.PATH ?? '').split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, bin));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return await realpath(candidate);
    } catch {
      // not here
    }
  }
  return undefined;
}

export class VersionCache {
  constructor(private readonly file: string) {}

  private async read(): Promise<Record<string, Entry>> {
    try {
      const value = JSON.parse(await readFile(this.file, 'utf8')) as unknown;
      return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, Entry>) : {};
    } catch {
      return {};
    }
  }

  /** The remembered version of the binary at real path `binary`, if the file is unchanged since. */
  async get(binary: string): Promise<string | undefined> {
    const entry = (await this.read())[binary];
    if (!entry || typeof entry.version !== 'string') return undefined;
    try {
      const now = await stat(binary);
      return now.ino === entry.ino && now.size === entry.size && now.mtimeMs === entry.mtimeMs ? entry.version : undefined;
    } catch {
      return undefined;
    }
  }

  /** A fact remembered of the binary at `binary` (setFact), if the file is unchanged since. */
  async getFact(binary: string, name: string): Promise<string | undefined> {
    const entry = (await this.read())[binary];
    if (!entry || (await this.get(binary)) === undefined) return undefined;
    const value = entry.facts?.[name];
    return typeof value === 'string' ? value : undefined;
  }

  /** Remembers a fact of the binary beside its version (only where its version is remembered and the file unchanged). */
  async setFact(binary: string, name: string, value: string): Promise<void> {
    try {
      const entries = await this.read();
      const entry = entries[binary];
      if (!entry || (await this.get(binary)) === undefined) return;
      entry.facts = { ...entry.facts, [name]: value };
      await this.write(entries);
    } catch {
      // as for set(): only costs the next command the work the fact saves
    }
  }

  private async write(entries: Record<string, Entry>): Promise<void> {
    const kept = Object.fromEntries(Object.entries(entries).slice(-MAX_ENTRIES));
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const temp = `${this.file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`; // unique per call: two commands may run in one process
    await writeFile(temp, `${JSON.stringify(kept, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, this.file);
  }

  async set(binary: string, version: string): Promise<void> {
    try {
      const now = await stat(binary);
      const entries = await this.read();
      delete entries[binary];
      // a new version (or a new file): what was learnt of the old one goes with it
      entries[binary] = { ino: now.ino, size: now.size, mtimeMs: now.mtimeMs, version };
      await this.write(entries);
    } catch {
      // a cache that cannot be written only costs the next command one `opencode --version`
    }
  }
}
