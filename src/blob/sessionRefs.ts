/**
 * What in an opencode export blob points outside the session: into opencode's snapshot repository
 * (tree ids) and at files (absolute paths that opencode acts on). Push collects these references;
 * pull rewrites the paths onto the destination, inside the same streaming pass as the rebase
 * (jsonScan.ts: only these scalars are decoded, every other byte passes through).
 *
 * Read from opencode's source (`packages/opencode/src/session/revert.ts`, `snapshot/index.ts`,
 * `tool/write.ts`, `tool/truncation.ts`) and measured on 1.3.2, 1.14.41, 1.17.19 and 1.18.33:
 *
 *   messages[i].parts[j].snapshot                 tree id (step-start, step-finish, snapshot parts)
 *   messages[i].parts[j].hash                     tree id (patch parts): revert checks files out of it
 *   info.revert.snapshot                          tree id of a pending revert: unrevert restores it
 *   messages[i].parts[j].files[k]                 absolute path (patch parts): what revert rewrites or deletes
 *   messages[i].parts[j].state.metadata.filepath  absolute path (write/edit tools)
 *   messages[i].parts[j].state.metadata.outputPath absolute path of a truncated tool output
 *                                                  (`<data>/tool-output/tool_<id>`)
 *
 * Rewritten on pull: `files[k]` and `filepath` when they lie under the source worktree (moved to the
 * same place under the destination worktree), `outputPath` when its file travelled (moved into the
 * destination's tool-output folder). Not rewritten: any other path (tool inputs, read previews, the
 * assistant's `path.cwd`/`path.root`, text), and paths outside the source worktree.
 */
import path from 'node:path';
import type { JsonPath, ScanHooks } from '../util/jsonScan.js';
import { pathIs } from '../util/jsonScan.js';

/** A git object id (sha1 or sha256 repositories). */
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** Deepest path these hooks read: messages[i].parts[j].state.metadata.outputPath. */
export const SESSION_REFS_PATH_DEPTH = 7;

type Where = 'tree' | 'file' | 'filepath' | 'outputPath' | 'partId';

/** What the value at `path` is to these hooks, if anything. */
export function classifyRef(path: JsonPath): Where | undefined {
  if (path[0] === 'info') return pathIs(path, 'info', 'revert', 'snapshot') ? 'tree' : undefined;
  if (path[0] !== 'messages' || path[2] !== 'parts' || typeof path[1] !== 'number' || typeof path[3] !== 'number') return undefined;
  if (path.length === 5) {
    if (path[4] === 'snapshot' || path[4] === 'hash') return 'tree';
    if (path[4] === 'id') return 'partId';
    return undefined;
  }
  if (path.length === 6) return path[4] === 'files' && typeof path[5] === 'number' ? 'file' : undefined;
  if (path.length === 7 && path[4] === 'state' && path[5] === 'metadata') {
    if (path[6] === 'filepath') return 'filepath';
    if (path[6] === 'outputPath') return 'outputPath';
  }
  return undefined;
}

/** The references one blob holds. */
export interface SessionRefs {
  /** Tree ids in opencode's snapshot repository, deduplicated, in order of appearance. */
  trees: string[];
  /** `state.metadata.outputPath` values (absolute paths on the source host). */
  outputPaths: string[];
}

/** Scanner hooks that collect a blob's SessionRefs (push side). */
export function sessionRefHooks(): { hooks: ScanHooks; refs: SessionRefs } {
  const refs: SessionRefs = { trees: [], outputPaths: [] };
  const trees = new Set<string>();
  return {
    refs,
    hooks: {
      pathDepth: SESSION_REFS_PATH_DEPTH,
      wants: (p) => {
        const where = classifyRef(p);
        return where === 'tree' || where === 'outputPath';
      },
      onScalar(p, value) {
        if (typeof value !== 'string') return;
        if (classifyRef(p) === 'tree') {
          if (OBJECT_ID.test(value) && !trees.has(value)) {
            trees.add(value);
            refs.trees.push(value);
          }
        } else if (path.isAbsolute(value) && !refs.outputPaths.includes(value)) {
          refs.outputPaths.push(value);
        }
      },
    },
  };
}

/** How pull moves the paths of one blob. */
export interface PathRebase {
  /** The source worktree's root (absolute, as the source opencode wrote it). */
  from: string;
  /** The destination worktree's root. */
  to: string;
  /** Source outputPath → destination path, for the tool outputs that travelled. */
  outputs: ReadonlyMap<string, string>;
  /** Filled by downloadRebasedBlob: session id → the values its blob's rebase rewrote. */
  rewritten?: Map<string, RebasedValue[]>;
}

/** One value the rebase rewrote, for the check after import: the part, the field, the new value. */
export interface RebasedValue {
  partId: string | undefined;
  field: 'files' | 'filepath' | 'outputPath';
  index?: number;
  value: string;
}

/** `p` moved from under `from` to the same place under `to`; undefined if it is not under `from`. */
export function rebasePath(p: string, from: string, to: string): string | undefined {
  if (!path.isAbsolute(p) || from === to) return undefined;
  const rel = path.relative(from, p);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return rel === '' ? to : undefined;
  // opencode writes forward slashes (snapshot/index.ts: replaceAll("\\", "/")).
  return path.join(to, rel).replaceAll('\\', '/');
}

/**
 * Scanner hooks that rewrite a blob's paths (pull side). `rewritten` lists every value changed, with
 * its part id (read later in the part: ids follow `files` in opencode's key order).
 */
export function pathRebaseHooks(rebase: PathRebase): { hooks: ScanHooks; rewritten: RebasedValue[] } {
  const rewritten: RebasedValue[] = [];
  /** Rewrites of the current part, waiting for its id: key "i/j". */
  const pending = new Map<string, RebasedValue[]>();
  const partKey = (p: JsonPath) => `${p[1]}/${p[3]}`;
  return {
    rewritten,
    hooks: {
      pathDepth: SESSION_REFS_PATH_DEPTH,
      wants: (p) => {
        const where = classifyRef(p);
        return where === 'file' || where === 'filepath' || where === 'outputPath' || where === 'partId';
      },
      onScalar(p, value) {
        if (classifyRef(p) !== 'partId' || typeof value !== 'string') return;
        for (const item of pending.get(partKey(p)) ?? []) item.partId = value;
        pending.delete(partKey(p));
      },
      replace(p, value) {
        const where = classifyRef(p);
        if (typeof value !== 'string' || where === undefined || where === 'partId' || where === 'tree') return undefined;
        const next = where === 'outputPath' ? rebase.outputs.get(value) : rebasePath(value, rebase.from, rebase.to);
        if (next === undefined || next === value) return undefined;
        const item: RebasedValue = { partId: undefined, field: where === 'file' ? 'files' : where, ...(where === 'file' ? { index: p[5] as number } : {}), value: next };
        rewritten.push(item);
        const key = partKey(p);
        pending.set(key, [...(pending.get(key) ?? []), item]);
        return JSON.stringify(next);
      },
    },
  };
}

/**
 * Several hook sets as one: every set sees what it asked for; for `replace` and `replaceValue` the
 * first set that answers wins. Paths are reported as deep as the deepest set asks.
 */
export function composeHooks(...sets: ScanHooks[]): ScanHooks {
  const depth = Math.max(0, ...sets.map((set) => set.pathDepth ?? 0));
  const some = <K extends keyof ScanHooks>(key: K) => sets.filter((set) => set[key] !== undefined);
  const wanting = some('wants');
  const scalar = some('onScalar');
  const replacing = some('replace');
  const volatile = some('volatile');
  const starting = some('onValueStart');
  const capturing = some('captureValue');
  const valueReplacing = some('replaceValue');
  return {
    ...(depth > 0 ? { pathDepth: depth } : {}),
    ...(wanting.length ? { wants: (p: JsonPath) => wanting.some((set) => set.wants!(p)) } : {}),
    ...(scalar.length
      ? {
          onScalar: (p: JsonPath, value: unknown) => {
            for (const set of scalar) if (!set.wants || set.wants(p)) set.onScalar!(p, value);
          },
        }
      : {}),
    ...(replacing.length
      ? {
          replace: (p: JsonPath, value: unknown) => {
            for (const set of replacing) {
              if (set.wants && !set.wants(p)) continue;
              const out = set.replace!(p, value);
              if (out !== undefined) return out;
            }
            return undefined;
          },
        }
      : {}),
    ...(volatile.length ? { volatile: (p: JsonPath) => volatile.some((set) => set.volatile!(p)) } : {}),
    ...(starting.length ? { onValueStart: (p: JsonPath) => starting.forEach((set) => set.onValueStart!(p)) } : {}),
    ...(capturing.length ? { captureValue: (p: JsonPath) => capturing.some((set) => set.captureValue!(p)) } : {}),
    ...(valueReplacing.length
      ? {
          replaceValue: (p: JsonPath, value: unknown) => {
            for (const set of valueReplacing) {
              if (set.captureValue && !set.captureValue(p)) continue;
              const out = set.replaceValue!(p, value);
              if (out !== undefined) return out;
            }
            return undefined;
          },
        }
      : {}),
  };
}
