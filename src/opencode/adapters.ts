/**
 * Adapters: what pull changes in a blob so that the destination's opencode imports it faithfully,
 * and the check that refuses, before anything is imported, a blob that the destination would
 * reject half-way (opencode's import is not atomic: it leaves a partial session).
 *
 * Both run inside the streaming rebase (src/blob/jsonScan.ts): only the values they own are
 * buffered, one at a time, never the blob. Every field an adapter does not own passes through.
 *
 * So far one shape differs between versions (measured on real builds, see ../shared/OPENCODE.md):
 *
 *   `summary.diffs[]` entries (per user message, and optionally on the session) were
 *   `{file, before, after, additions, deletions, status?}` before opencode 1.4.0 and are
 *   `{file, patch, additions, deletions, status?}` from 1.4.0.
 *
 *   - legacy → patch (destination ≥ 1.4.0): `before`/`after` are replaced, at the place `before`
 *     held, by `patch`, a unified diff of the two texts in the format opencode itself writes
 *     (jsdiff's createTwoFilesPatch(file, file, before, after, "", "", full-file context), as read
 *     from 1.14.41 and 1.18.33). `file`, `additions`, `deletions`, `status` and any other key stay.
 *     Without it 1.4–1.14 and 1.17 reject the entry half-way, 1.15 and 1.18 drop the texts.
 *   - patch → legacy (destination < 1.4.0): refused. A patch need not hold the whole files (other
 *     producers use 3 lines of context), so the two texts cannot be rebuilt honestly.
 *
 * Each entry is converted by what it holds, whatever version exported the blob: the version pair
 * only decides what pull announces (versions.ts). Entries already in the destination's shape are
 * left byte for byte.
 */
import { createTwoFilesPatch, formatPatch } from 'diff';
import { type JsonPath, type ScanHooks } from '../util/jsonScan.js';
import { acceptanceFor, ACCEPTANCE_PATH_DEPTH } from './acceptance.js';
import { compareVersions, parseVersion } from './versions.js';

/** The summary.diffs entry shape a destination version takes. */
export type DiffShape = 'before-after' | 'patch';

/** First version whose summary.diffs entries carry `patch` instead of `before`/`after`. */
export const PATCH_SHAPE_FROM = '1.4.0';

export function diffShapeFor(destination: string): DiffShape {
  // An unreadable version is taken as a current one: every opencode of the last year writes patches.
  if (!parseVersion(destination)) return 'patch';
  return compareVersions(destination, PATCH_SHAPE_FROM) < 0 ? 'before-after' : 'patch';
}

/** A blob that the destination's opencode would reject or mangle; `fieldPath` says where. */
export class BlobUnfitError extends Error {
  constructor(
    message: string,
    readonly fieldPath: string,
  ) {
    super(message);
  }
}

/** `messages[3].info.summary.diffs[0]`, the way opencode's own errors name a field. */
export function formatPath(path: JsonPath): string {
  let out = '';
  for (const segment of path) out += typeof segment === 'number' ? `[${segment}]` : `${out ? '.' : ''}${segment}`;
  return out;
}

/** info.summary.diffs[j] or messages[i].info.summary.diffs[j]. */
export function isSummaryDiffEntry(path: JsonPath): boolean {
  if (path.length === 4) return path[0] === 'info' && path[1] === 'summary' && path[2] === 'diffs' && typeof path[3] === 'number';
  return (
    path.length === 6 &&
    path[0] === 'messages' &&
    typeof path[1] === 'number' &&
    path[2] === 'info' &&
    path[3] === 'summary' &&
    path[4] === 'diffs' &&
    typeof path[5] === 'number'
  );
}

/** Diffs that would take longer than this fall back to one hunk replacing the whole file (still exact). */
const DIFF_TIMEOUT_MS = 5_000;

/**
 * The unified diff opencode (≥ 1.4) stores for a file that went from `before` to `after`: jsdiff,
 * full-file context, empty headers (`--- file\t`). Identical texts give the header and no hunk.
 */
export function unifiedPatch(file: string, before: string, after: string): string {
  const patch = createTwoFilesPatch(file, file, before, after, '', '', { context: Number.MAX_SAFE_INTEGER, timeout: DIFF_TIMEOUT_MS });
  return patch ?? wholeFilePatch(file, before, after);
}

/** One hunk that removes every line of `before` and adds every line of `after`: a valid, exact diff. */
export function wholeFilePatch(file: string, before: string, after: string): string {
  const lines = (text: string) => {
    if (text === '') return [];
    const parts = text.split('\n');
    if (parts[parts.length - 1] === '') parts.pop();
    return parts;
  };
  const old = lines(before);
  const next = lines(after);
  if (before === after) return formatPatch({ oldFileName: file, newFileName: file, oldHeader: '', newHeader: '', hunks: [] });
  const hunkLines = [...old.map((line) => `-${line}`)];
  if (old.length > 0 && !before.endsWith('\n')) hunkLines.push('\\ No newline at end of file');
  hunkLines.push(...next.map((line) => `+${line}`));
  if (next.length > 0 && !after.endsWith('\n')) hunkLines.push('\\ No newline at end of file');
  return formatPatch({
    oldFileName: file,
    newFileName: file,
    oldHeader: '',
    newHeader: '',
    // jsdiff's structured hunks count from 1 even for an empty side (formatPatch prints `-0,0`).
    hunks: [{ oldStart: 1, oldLines: old.length, newStart: 1, newLines: next.length, lines: hunkLines }],
  });
}

type Entry = Record<string, unknown>;

function isEntry(value: unknown): value is Entry {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The legacy entry with `patch` in place of `before` and `after`; every other key kept in order. */
export function legacyEntryToPatch(entry: Entry & { file: string; before: string; after: string }): Entry {
  const out: Entry = {};
  for (const [key, value] of Object.entries(entry)) {
    if (key === 'before') out.patch = unifiedPatch(entry.file, entry.before, entry.after);
    else if (key !== 'after') out[key] = value;
  }
  return out;
}

export interface BlobAdaptation {
  /** Scanner hooks to merge into the rebase's hooks (they own captureValue / replaceValue / pathDepth only). */
  hooks: Pick<ScanHooks, 'captureValue' | 'replaceValue' | 'pathDepth'>;
  /** What was done, for the report: entries converted per adapter. */
  readonly counts: { legacyDiffsToPatch: number };
}

/**
 * The adapters and checks for importing into opencode `destination`. Throws BlobUnfitError (from
 * inside the scan) for an entry the destination cannot take and no adapter can carry honestly, and
 * for any value it would refuse half-way (acceptance.ts).
 */
export function adaptBlobFor(destination: string): BlobAdaptation {
  const wanted = diffShapeFor(destination);
  const acceptance = acceptanceFor(destination);
  const counts = { legacyDiffsToPatch: 0 };
  const unfit = (path: JsonPath, why: string): never => {
    const where = formatPath(path);
    throw new BlobUnfitError(`${where} ${why}`, where);
  };
  return {
    counts,
    hooks: {
      pathDepth: ACCEPTANCE_PATH_DEPTH,
      captureValue: (path) => isSummaryDiffEntry(path) || acceptance.captures(path),
      replaceValue(path, value) {
        if (!isSummaryDiffEntry(path)) {
          const refused = acceptance.check(path, value);
          return refused ? unfit(refused.path, refused.why) : undefined;
        }
        if (!isEntry(value)) return unfit(path, `is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}, not a file diff object`);
        if (typeof value.file !== 'string') return unfit(path, 'has no string "file"');
        const hasPatch = typeof value.patch === 'string';
        const hasTexts = typeof value.before === 'string' && typeof value.after === 'string';
        if (wanted === 'patch') {
          if (hasPatch) return undefined;
          if (hasTexts) {
            counts.legacyDiffsToPatch++;
            return JSON.stringify(legacyEntryToPatch(value as Entry & { file: string; before: string; after: string }));
          }
          return unfit(path, `has neither "patch" nor "before"/"after" (opencode ${destination} requires "patch")`);
        }
        if (hasTexts) return undefined;
        if (hasPatch) {
          return unfit(
            path,
            `holds a "patch" (opencode ≥ ${PATCH_SHAPE_FROM} format), but opencode ${destination} requires "before"/"after", which cannot be rebuilt honestly from a patch`,
          );
        }
        return unfit(path, `has no "before"/"after" (opencode ${destination} requires them)`);
      },
    },
  };
}
