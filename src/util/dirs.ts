import { realpathSync } from 'node:fs';
import path from 'node:path';

/**
 * Directories compared as directories, not as strings. opencode stores a session's directory as
 * the client spelled it (1.18.33 keeps the path given through the server's directory header, a
 * symlink included), and on Windows opencode ≥ 1.16 stores `C:/src/app` where Node says
 * `C:\src\app`. Every comparison of directories in sessmig (selection, planning, rebinding,
 * verification) goes through `DirComparer`.
 */
export interface DirStyle {
  /** Which path grammar: `/` only (posix) or `\` and `/` with drive letters (win32). */
  platform: 'posix' | 'win32';
  /** Compare case-insensitively (Windows and macOS file systems by default). */
  caseInsensitive: boolean;
}

/** This host's style: win32 and darwin compare case-insensitively (their default file systems). */
export function hostDirStyle(): DirStyle {
  return {
    platform: process.platform === 'win32' ? 'win32' : 'posix',
    caseInsensitive: process.platform === 'win32' || process.platform === 'darwin',
  };
}

/**
 * The spelling of `dir` used for comparison, without touching the file system: separators unified
 * (win32: `/` → `\`), `.`/`..` and repeated separators resolved, the trailing separator dropped
 * (except at a root: `/`, `C:\`), the drive letter upper-cased, and the whole lower-cased where the
 * style is case-insensitive. A relative `dir` is returned normalised but still relative.
 */
export function dirSpelling(dir: string, style: DirStyle): string {
  const p = style.platform === 'win32' ? path.win32 : path.posix;
  let out = p.normalize(style.platform === 'win32' ? dir.replace(/\//g, '\\') : dir);
  const root = p.parse(out).root;
  while (out.length > root.length && (out.endsWith(p.sep) || (style.platform === 'win32' && out.endsWith('/')))) out = out.slice(0, -1);
  if (style.platform === 'win32' && /^[a-z]:/.test(out)) out = out[0]!.toUpperCase() + out.slice(1);
  return style.caseInsensitive ? out.toLowerCase() : out;
}

/**
 * Compares directories of this host: each is resolved to its real path when it (or, for a folder
 * that is gone, its deepest existing ancestor) exists — so a symlinked spelling equals its
 * target — then spelled with `dirSpelling`. Real paths are memoised per comparer (one command).
 */
export class DirComparer {
  private readonly memo = new Map<string, string>();

  constructor(
    readonly style: DirStyle = hostDirStyle(),
    /** Resolves symlinks; throws when the path does not exist. Injected by unit tests. */
    private readonly realpath: (dir: string) => string = (dir) => realpathSync.native(dir),
  ) {}

  /** The form of `dir` that equal directories share. */
  key(dir: string): string {
    const cached = this.memo.get(dir);
    if (cached !== undefined) return cached;
    const key = dirSpelling(this.resolve(dir), this.style);
    this.memo.set(dir, key);
    return key;
  }

  /** Do `a` and `b` name the same directory? */
  same(a: string, b: string): boolean {
    return this.key(a) === this.key(b);
  }

  /** Is `dir` the directory `root` or inside it? */
  inside(root: string, dir: string): boolean {
    const p = this.style.platform === 'win32' ? path.win32 : path.posix;
    const rel = p.relative(this.key(root), this.key(dir));
    return rel === '' || (!rel.startsWith('..') && !p.isAbsolute(rel));
  }

  /** `dir` as the same place below `to` that it is below `from` (undefined: not below `from`). */
  rebase(dir: string, from: string, to: string): string | undefined {
    if (!this.inside(from, dir)) return undefined;
    const p = this.style.platform === 'win32' ? path.win32 : path.posix;
    const rel = p.relative(this.key(from), this.key(dir));
    // The relative part is taken from the original spelling when the case was folded.
    const original = p.relative(dirSpelling(this.resolve(from), { ...this.style, caseInsensitive: false }), dirSpelling(this.resolve(dir), { ...this.style, caseInsensitive: false }));
    const tail = original.toLowerCase() === rel.toLowerCase() ? original : rel;
    return tail === '' ? to : p.join(to, tail);
  }

  private resolve(dir: string): string {
    if (this.style.platform !== hostDirStyle().platform) return dir; // another host's path: spelling only
    const p = this.style.platform === 'win32' ? path.win32 : path.posix;
    if (!p.isAbsolute(dir)) return dir;
    const rest: string[] = [];
    let current = p.normalize(dir);
    for (;;) {
      try {
        const real = this.realpath(current);
        return rest.length === 0 ? real : p.join(real, ...rest.reverse());
      } catch {
        const parent = p.dirname(current);
        if (parent === current) return dir;
        rest.push(p.basename(current));
        current = parent;
      }
    }
  }
}
