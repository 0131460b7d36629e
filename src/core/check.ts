import { markerKey } from '../crypto/sealedRemote.js';
import { readVerified } from '../blob/verifiedRead.js';
import { JsonScanner } from '../util/jsonScan.js';
import { blobHooks, type BlobFacts } from '../blob/sessionBlob.js';
import { checkpointKey, FORMAT_ROOT, pointerKey, worktreePrefix } from '../format/layout.js';
import { parseKey, worktreeOfKey as worktreeFolderOf } from '../format/keys.js';
import type { Manifest } from '../format/schema.js';
import { LISTED_KINDS, LISTED_NOUN, listedKind, OBJECT_KINDS, OBJECT_NOUN, objectKey, objectsOf, type ListedKind, type ObjectKind, type ObjectRef } from './checkpointObjects.js';
import type { ExposedObject, Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { readManifest, readPointer } from './remoteStore.js';

/**
 * `sessmig check`: verifies what a remote holds against docs/FORMAT.md, like `restic check`.
 * Reads every pointer and manifest, checks every object a manifest names (session blobs, tool
 * outputs, snapshot packs, code bundles: core/checkpointObjects.ts) with a HEAD (presence and stored
 * size) and, with readData, downloads and verifies each one (blobs: gunzip, raw size, sha256, JSON,
 * session id, content hash; outputs and packs: gunzip, raw size, sha256; bundles: size, sha256), and
 * reports stored objects no manifest names as orphans. Encrypted worktrees are read through their
 * SealedRemote (keyed names mapped with Sealing.storedKey). It writes nothing. Problems are returned, not thrown: only a failure to reach
 * the remote at all is an exception.
 */

export type Severity = 'error' | 'warning';

export interface CheckProblem {
  severity: Severity;
  /**
   * Stable code, e.g. pointer-dangling, document-invalid; for objects `<stem>-missing`, `-size`,
   * `-corrupt`, `-mismatch` and `orphan-<stem>`, stem blob, output (tool output), pack (snapshot
   * pack), bundle (code bundle) or sealed (an encrypted worktree's unnamed object).
   */
  code: string;
  /** What `key` names: blob, out, pack, bundle, sealed, checkpoint, pointer, marker, ticket, upload; null when unknown. */
  kind: string | null;
  /** The worktree, or null for an object outside every worktree. */
  worktree: string | null;
  /** The remote object the problem is about (its key relative to the remote's root). */
  key: string;
  /** The checkpoint concerned: the one named, or the current (else newest) one referencing the object. */
  checkpoint: string | null;
  /** The session concerned, for blobs. */
  session: string | null;
  /** Every checkpoint that references the object (object problems: the checkpoints that need it); otherwise empty. */
  checkpoints: string[];
  message: string;
  hint: string | null;
}

export interface WorktreeCheck {
  worktree: string;
  /** The pointer as read, or null (absent or unreadable). */
  pointer: { checkpoint: string; generation: number; owner: string | null } | null;
  /** Sessions in the current checkpoint, when it could be read. */
  sessions: number | null;
  checkpoints: { total: number; readable: number };
  /** Session blobs: the same as objects.blob. */
  blobs: ObjectCheck;
  /** Per kind of object (core/checkpointObjects.ts): blob, out (tool outputs), pack (snapshot packs), bundle (code bundles), sealed (unnamed, unreferenced). */
  objects: Record<ListedKind, ObjectCheck>;
  /** Tickets, uploads and the encryption marker: read by the commands that use them, not checked here. */
  reserved: number;
  errors: number;
  warnings: number;
}

export interface ObjectCheck {
  /** Objects of this kind in the listing (an encrypted worktree's `.age` objects count under the kind that names them). */
  stored: number;
  /** Distinct objects of this kind named by the readable manifests. */
  referenced: number;
  missing: number;
  orphaned: number;
  /** Downloaded and verified whole (readData). */
  verified: number;
  /** Stored bytes downloaded by readData. */
  bytesRead: number;
}

export interface CheckResult {
  remote: string;
  readData: boolean;
  worktrees: WorktreeCheck[];
  /** Every problem found, in worktree order. */
  problems: CheckProblem[];
  errors: number;
  warnings: number;
  /** No errors (warnings such as orphan blobs do not count). */
  ok: boolean;
}

export interface CheckOptions {
  /** The worktrees to check; undefined: every worktree in the remote (and stray objects under sessmig/v1/). */
  worktrees?: string[];
  readData: boolean;
  jobs: number;
  signal?: AbortSignal;
  /** Progress lines (for stderr). */
  progress?: (line: string) => void;
  /** The remote to read one worktree through (an encrypted worktree opens with this host's key). */
  remoteFor?: (worktree: string) => Promise<Remote>;
}

const DAMAGED_HINT = 'push again from the host that has the sessions (it writes a new checkpoint), or pull an older checkpoint with --checkpoint';

export async function checkRemote(remote: Remote, options: CheckOptions): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  const worktrees: WorktreeCheck[] = [];
  const byWorktree = new Map<string, Listed[]>();
  if (options.worktrees === undefined) {
    // Everything under sessmig/v1/: each worktree's objects, and strays that belong to none.
    const root = `${FORMAT_ROOT}/`;
    for await (const item of remote.list(root)) {
      const name = worktreeFolderOf(item.key);
      if (name !== undefined) {
        let list = byWorktree.get(name);
        if (!list) byWorktree.set(name, (list = []));
        list.push(item);
      } else {
        problems.push(
          problem('warning', 'unknown-object', null, item.key, `object ${item.key} is under ${root} but not in a valid worktree folder; no sessmig reads it`, {
            hint: 'it was not written by sessmig; delete it if nobody needs it',
          }),
        );
      }
    }
  } else {
    for (const worktree of options.worktrees) {
      const list: Listed[] = [];
      for await (const item of remote.list(worktreePrefix(worktree))) list.push(item);
      if (list.length === 0) {
        throw new SessmigError('worktree-not-found', `worktree ${worktree} is not in ${remote.display}: nothing to check`, {
          hint: 'list the worktrees with `sessmig ls`, check --remote, or check them all with `sessmig check --all`',
        });
      }
      byWorktree.set(worktree, list);
    }
  }
  // Local folders: objects other users can get into (docs/FORMAT.md, Remotes). Read before the
  // worktrees are checked, so a check that fails half-way has still said it.
  const exposure = await exposedObjects(remote, options.worktrees);
  const exposureOf = (worktree: string | null) =>
    exposure.filter((item) => worktreeOfKey(item.key) === worktree).map((item) => exposedProblem(item, worktree, remote.display));
  problems.push(...exposureOf(null));
  for (const worktree of [...byWorktree.keys()].sort()) {
    options.signal?.throwIfAborted();
    const found: CheckProblem[] = [];
    let reader = remote;
    try {
      if (options.remoteFor) reader = await options.remoteFor(worktree);
    } catch (error) {
      if (!(error instanceof SessmigError)) throw error;
      // An encrypted worktree without this host's key: nothing in it can be checked here.
      problems.push(problem('error', error.code, worktree, markerKey(worktree), error.message, error.hint ? { hint: error.hint } : {}), ...exposureOf(worktree));
      continue;
    }
    const summary = await checkWorktree(reader, worktree, byWorktree.get(worktree)!, options, found);
    const exposed = exposureOf(worktree);
    summary.warnings += exposed.length;
    worktrees.push(summary);
    problems.push(...found, ...exposed);
  }
  const errors = problems.filter((p) => p.severity === 'error').length;
  return { remote: remote.display, readData: options.readData, worktrees, problems, errors, warnings: problems.length - errors, ok: errors === 0 };
}

interface Listed {
  key: string;
  size: number;
}

/** One checkpoint's reference to an object. */
interface Ref {
  checkpoint: string;
  object: ObjectRef;
}

/** A referenced object: its names and every reference to it. */
interface Referenced {
  kind: ObjectKind;
  sha256: string;
  /** The key the format names it by (what problems report). */
  key: string;
  /** The key it is stored under (differs on an encrypted worktree: its keyed `.age` name). */
  stored: string;
  refs: Ref[];
}

type Add = (severity: Severity, code: string, key: string, message: string, extra?: Partial<CheckProblem>) => void;

/** What the steps of one worktree's check share. */
interface Scope {
  remote: Remote;
  worktree: string;
  options: CheckOptions;
  summary: WorktreeCheck;
  add: Add;
  /** The pointer's checkpoint, once read. */
  current: string | undefined;
}

/** Problem codes per object kind: `<stem>-missing`, `<stem>-size`, `<stem>-corrupt`, `orphan-<stem>`. */
const CODE_STEM: Record<ListedKind, string> = { blob: 'blob', out: 'output', pack: 'pack', bundle: 'bundle', sealed: 'sealed' };

function emptyCounts(): ObjectCheck {
  return { stored: 0, referenced: 0, missing: 0, orphaned: 0, verified: 0, bytesRead: 0 };
}

async function checkWorktree(remote: Remote, worktree: string, listed: Listed[], options: CheckOptions, problems: CheckProblem[]): Promise<WorktreeCheck> {
  const objects = Object.fromEntries(LISTED_KINDS.map((kind) => [kind, emptyCounts()])) as Record<ListedKind, ObjectCheck>;
  const summary: WorktreeCheck = {
    worktree,
    pointer: null,
    sessions: null,
    checkpoints: { total: 0, readable: 0 },
    blobs: objects.blob,
    objects,
    reserved: 0,
    errors: 0,
    warnings: 0,
  };
  const add: Add = (severity, code, key, message, extra = {}) => problems.push(problem(severity, code, worktree, key, message, extra));
  const scope: Scope = { remote, worktree, options, summary, add, current: undefined };

  const { checkpointIds, stored } = sortListing(scope, listed);
  options.progress?.(`checking worktree ${worktree}: ${checkpointIds.length} checkpoint(s), ${stored.size} other object(s)`);
  scope.current = await checkPointer(scope, checkpointIds);
  const manifests = await readManifests(scope, checkpointIds);
  const referenced = collectRefs(scope, manifests, new Set(checkpointIds));
  for (const [key, entry] of stored) objects[referenced.get(key)?.kind ?? entry.kind].stored++;
  problems.push(...(await checkObjects(scope, referenced)));
  reportOrphans(scope, stored, referenced);

  summary.errors = problems.filter((p) => p.severity === 'error').length;
  summary.warnings = problems.length - summary.errors;
  return summary;
}

/** 1. Sorts the listing into the names the format knows (format/keys.ts parseKey); warns of the rest. */
function sortListing(scope: Scope, listed: Listed[]): { checkpointIds: string[]; stored: Map<string, { item: Listed; kind: ListedKind }> } {
  const checkpointIds: string[] = [];
  const stored = new Map<string, { item: Listed; kind: ListedKind }>();
  for (const item of listed) {
    const parsed = parseKey(item.key);
    const kind = listedKind(parsed);
    if (parsed?.kind === 'pointer') continue;
    if (parsed?.kind === 'checkpoint') checkpointIds.push(parsed.id);
    else if (kind !== undefined) stored.set(item.key, { item, kind });
    // Tickets, uploads and the encryption marker: read by the commands that use them, not checked here.
    else if (parsed !== undefined) scope.summary.reserved++;
    else {
      scope.add('warning', 'unknown-object', item.key, `object ${item.key} matches no name of the remote format; no sessmig reads it`, {
        hint: 'it was not written by this version of sessmig; delete it if nobody needs it',
      });
    }
  }
  checkpointIds.sort();
  scope.summary.checkpoints.total = checkpointIds.length;
  return { checkpointIds, stored };
}

/** 2. The pointer: readable, and naming a checkpoint that exists. Returns its checkpoint. */
async function checkPointer(scope: Scope, checkpointIds: string[]): Promise<string | undefined> {
  const { remote, worktree, add, summary } = scope;
  const headKey = pointerKey(worktree);
  let current: string | undefined;
  try {
    const state = await readPointer(remote, worktree);
    if (state) {
      current = state.pointer.checkpoint;
      summary.pointer = { checkpoint: current, generation: state.pointer.generation, owner: state.pointer.owner?.hostname ?? null };
    } else {
      add('warning', 'no-pointer', headKey, `worktree ${worktree} has no pointer (${headKey}): no push to it has completed, so there is nothing to pull`, {
        hint: 'an interrupted first push leaves this state; push again to make a checkpoint current',
      });
    }
  } catch (error) {
    if (!isDataError(error)) throw error;
    add('error', error.code, headKey, error.message, { hint: 'push again to write a new pointer; until then pull fails (pull an existing checkpoint with --checkpoint)' });
  }
  if (current !== undefined && !checkpointIds.includes(current)) {
    add('error', 'pointer-dangling', headKey, `pointer ${headKey} names checkpoint ${current}, which is not in the remote (${checkpointKey(worktree, current)} is missing)`, {
      checkpoint: current,
      hint: 'pull fails until the pointer is fixed: push again from the host that has the sessions, or pull another checkpoint with --checkpoint',
    });
  }
  return current;
}

/** 3. Every manifest, read in parallel; problems in checkpoint order, whatever the timing. Returns the readable ones. */
async function readManifests(scope: Scope, checkpointIds: string[]): Promise<Manifest[]> {
  const { remote, worktree, options, current } = scope;
  const reads = await mapPool(
    checkpointIds,
    options.jobs,
    async (id): Promise<Manifest | SessmigError> => {
      try {
        return await readManifest(remote, worktree, id);
      } catch (error) {
        if (!isDataError(error)) throw error;
        return error;
      }
    },
    options.signal,
  );
  const manifests: Manifest[] = [];
  reads.forEach((read, index) => {
    if (!(read instanceof SessmigError)) return void manifests.push(read);
    const id = checkpointIds[index]!;
    const isCurrent = id === current;
    // A plaintext checkpoint from before encryption was turned on is expected until pruned.
    const leftover = read.code === 'not-encrypted' && read.data?.predatesEncryption === true && !isCurrent;
    scope.add(leftover ? 'warning' : 'error', read.code, checkpointKey(worktree, id), `${read.message}${isCurrent ? ' (the current checkpoint: pull fails)' : ''}`, {
      checkpoint: id,
      hint: isCurrent ? DAMAGED_HINT : 'pull --checkpoint of this checkpoint fails; the current checkpoint is not affected',
    });
  });
  return manifests;
}

/** 3b. What the readable manifests name (core/checkpointObjects.ts), by stored key; duplicate sessions and missing parents. */
function collectRefs(scope: Scope, manifests: Manifest[], known: Set<string>): Map<string, Referenced> {
  const { remote, worktree, summary, add, current } = scope;
  const referenced = new Map<string, Referenced>();
  for (const manifest of manifests) {
    summary.checkpoints.readable++;
    if (manifest.id === current) summary.sessions = manifest.sessions.length;
    const key = checkpointKey(worktree, manifest.id);
    const seen = new Set<string>();
    for (const session of manifest.sessions) {
      if (seen.has(session.id)) add('error', 'duplicate-session', key, `checkpoint ${manifest.id} lists session ${session.id} more than once (${key})`, { checkpoint: manifest.id, session: session.id, hint: DAMAGED_HINT });
      seen.add(session.id);
    }
    let objects: ObjectRef[];
    try {
      objects = objectsOf(manifest);
    } catch (error) {
      if (!isDataError(error)) throw error;
      // The code part cannot be read: its bundles are unknown (they show as orphans), the sessions are still checked.
      add(error.code === 'code-format-newer' ? 'warning' : 'error', error.code, key, error.message, { checkpoint: manifest.id, ...(error.hint ? { hint: error.hint } : {}) });
      objects = objectsOf({ ...manifest, code: undefined } as Manifest);
    }
    for (const object of objects) {
      const logical = objectKey(worktree, object.kind, object.sha256);
      const stored = remote.sealing ? remote.sealing.storedKey(logical) : logical;
      let entry = referenced.get(stored);
      if (!entry) referenced.set(stored, (entry = { kind: object.kind, sha256: object.sha256, key: logical, stored, refs: [] }));
      entry.refs.push({ checkpoint: manifest.id, object });
    }
    if (manifest.parent !== null && !known.has(manifest.parent)) {
      add('warning', 'parent-missing', key, `checkpoint ${manifest.id} names parent checkpoint ${manifest.parent}, which is not in the remote`, {
        checkpoint: manifest.id,
        hint: 'harmless for pull; the history before this checkpoint is gone',
      });
    }
  }
  for (const entry of referenced.values()) summary.objects[entry.kind].referenced++;
  return referenced;
}

/** 4. Every referenced object, in parallel: HEAD (exists, stored size), then with readData its content. Problems in kind, then name order. */
async function checkObjects(scope: Scope, referenced: Map<string, Referenced>): Promise<CheckProblem[]> {
  const entries = [...referenced.values()].sort((a, b) => OBJECT_KINDS.indexOf(a.kind) - OBJECT_KINDS.indexOf(b.kind) || (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : 0));
  if (scope.options.readData && entries.length > 0) scope.options.progress?.(`reading ${entries.length} object(s) of worktree ${scope.worktree}`);
  const found = await mapPool(
    entries,
    scope.options.jobs,
    async (entry): Promise<CheckProblem[]> => {
      const problems: CheckProblem[] = [];
      const add: Add = (severity, code, key, message, extra = {}) => problems.push(problem(severity, code, scope.worktree, key, message, { kind: entry.kind, ...extra }));
      await checkObject(scope, entry, add);
      return problems;
    },
    scope.options.signal,
  );
  return found.flat();
}

async function checkObject(scope: Scope, entry: Referenced, add: Add): Promise<void> {
  const { remote, current } = scope;
  const counts = scope.summary.objects[entry.kind];
  const { key, refs } = entry;
  const stem = CODE_STEM[entry.kind];
  const name = `${OBJECT_NOUN[entry.kind]} ${key}${entry.stored !== key ? ` (stored as ${entry.stored})` : ''}`;
  const fields = (group: Ref[]) => ({ ...refFields(group, current), hint: DAMAGED_HINT });
  const absent = (group: Ref[]) => ({ ...refFields(group, current), hint: missingSeverity(entry.kind) === 'error' ? DAMAGED_HINT : 'nothing to do: later pushes do not bring it back; hosts that pull lack it' });
  const head = await remote.head(key);
  if (!head) {
    counts.missing++;
    for (const group of groupRefs(refs, (r) => r.object.session?.id ?? '')) add(missingSeverity(entry.kind), `${stem}-missing`, key, `${where(group, current)}: ${name} is missing${missingEffect(entry.kind)}`, absent(group));
    return;
  }
  let sizeOk = true;
  for (const group of groupRefs(refs, (r) => `${r.object.session?.id ?? ''}\n${r.object.storedBytes}`)) {
    const expected = group[0]!.object.storedBytes;
    if (head.size === expected) continue;
    sizeOk = false;
    add('error', `${stem}-size`, key, `${where(group, current)}: ${name} is ${head.size} bytes, the manifest records ${expected}${head.size < expected ? ' (truncated?)' : ''}`, fields(group));
  }
  if (!scope.options.readData || !sizeOk) return;
  const read = await readObject(remote, key, entry.kind);
  if ('missing' in read) {
    counts.missing++;
    add(missingSeverity(entry.kind), `${stem}-missing`, key, `${where(refs, current)}: ${name} is missing (deleted during the check?)${missingEffect(entry.kind)}`, absent(refs));
    return;
  }
  counts.bytesRead += read.storedBytes;
  if ('corrupt' in read) return void add('error', `${stem}-corrupt`, key, `${where(refs, current)}: ${name} ${read.corrupt}`, fields(refs));
  if (read.sha256 !== entry.sha256) {
    add('error', `${stem}-corrupt`, key, `${where(refs, current)}: ${name} does not match its checksum (sha256 ${read.sha256.slice(0, 12)}…, expected ${entry.sha256.slice(0, 12)}…)`, fields(refs));
    return;
  }
  let good = true;
  for (const group of groupRefs(refs, (r) => JSON.stringify([r.object.session?.id, r.object.session?.parentID, r.object.session?.contentHash, r.object.rawBytes, r.object.storedBytes]))) {
    const wrong = mismatches(group[0]!.object, read);
    if (wrong.length === 0) continue;
    good = false;
    add('error', `${stem}-mismatch`, key, `${where(group, current)}: ${name} ${wrong.join('; ')}`, fields(group));
  }
  if (good) counts.verified++;
}

/**
 * A missing object is as bad as pull makes it: a blob or a code bundle fails the pull (error); a
 * snapshot pack or a tool output is a warning there, the sessions import without that undo history
 * or output (docs/FORMAT-snapshots.md) — a warning here. A damaged one is an error whatever its kind.
 */
function missingSeverity(kind: ObjectKind): Severity {
  return kind === 'pack' || kind === 'out' ? 'warning' : 'error';
}

function missingEffect(kind: ObjectKind): string {
  if (kind === 'pack') return ' (pull still imports the sessions, without this part of their undo history)';
  if (kind === 'out') return ' (pull still imports the session; the part keeps the source\'s path)';
  return '';
}

/** How a whole, checksum-correct object differs from what one reference records (empty: it matches). */
function mismatches(wanted: ObjectRef, read: WholeRead): string[] {
  const wrong: string[] = [];
  if (read.storedBytes !== wanted.storedBytes) wrong.push(`is ${read.storedBytes} bytes stored, the manifest records ${wanted.storedBytes}`);
  if (read.rawBytes !== wanted.rawBytes) wrong.push(`is ${read.rawBytes} bytes uncompressed, the manifest records ${wanted.rawBytes}`);
  const session = wanted.kind === 'blob' ? wanted.session : null;
  if (session && read.blob) {
    const facts = read.blob.facts;
    if (facts.id !== session.id) wrong.push(`holds session ${facts.id === undefined ? '(no info.id)' : facts.id}`);
    else if ((facts.parentID ?? null) !== session.parentID) wrong.push(`has parent ${String(facts.parentID ?? null)}, the manifest records ${String(session.parentID)}`);
    if (read.blob.contentHash !== session.contentHash) wrong.push(`has content hash ${read.blob.contentHash.slice(0, 12)}…, the manifest records ${session.contentHash.slice(0, 12)}…`);
  }
  return wrong;
}

/** 5. Stored objects no readable manifest names: what `sessmig prune` removes (after its grace period). */
function reportOrphans(scope: Scope, stored: Map<string, { item: Listed; kind: ListedKind }>, referenced: Map<string, Referenced>): void {
  const { summary } = scope;
  const unreadable = summary.checkpoints.total - summary.checkpoints.readable;
  // On an encrypted worktree prune keeps a plaintext copy of a named object too (core/prune.ts Named): not an orphan.
  const copies = new Set([...referenced.values()].map((entry) => entry.key));
  for (const [key, { item, kind }] of [...stored].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (referenced.has(key) || copies.has(key)) continue;
    summary.objects[kind].orphaned++;
    scope.add(
      'warning',
      `orphan-${CODE_STEM[kind]}`,
      item.key,
      `${LISTED_NOUN[kind]} ${item.key} (${item.size} bytes) is not referenced by any checkpoint${unreadable > 0 ? ` that could be read (${unreadable} could not; it may belong to one of them)` : ''}: an interrupted push leaves such ${LISTED_NOUN[kind]}s (so did a prune before sessmig collected every kind); they are harmless, and a push of the same content reuses them`,
      { kind, hint: '`sessmig prune` removes it once it is older than the grace period; nothing else to do, it only takes space' },
    );
  }
}

/** An object read whole: stored and raw sizes, the sha256 of what its name covers, and for a blob its facts. */
interface WholeRead {
  storedBytes: number;
  rawBytes: number;
  sha256: string;
  blob?: { contentHash: string; facts: BlobFacts };
}

type ObjectRead = { missing: true } | { corrupt: string; storedBytes: number } | WholeRead;

/**
 * Reads an object through the one verifying pipeline (blob/verifiedRead.ts), discarding the bytes:
 * a blob through gunzip and the JSON scanner (its facts and content hash); a tool output or
 * snapshot pack through gunzip (the sha256 covers the uncompressed bytes, docs/FORMAT-snapshots.md);
 * a code bundle as stored (the sha256 covers the stored bytes, docs/FORMAT-code.md).
 */
async function readObject(remote: Remote, key: string, kind: ObjectKind): Promise<ObjectRead> {
  const blob = kind === 'blob' ? blobHooks() : undefined;
  const scanner = blob ? new JsonScanner(blob.hooks, { normalizedHash: true }) : undefined;
  const read = await readVerified(remote, key, { gzip: kind !== 'bundle', ...(scanner ? { through: [scanner] } : {}) });
  if (read.status === 'missing') return { missing: true };
  if (read.status === 'damaged') return { corrupt: read.why, storedBytes: read.storedBytes };
  return { storedBytes: read.storedBytes, rawBytes: read.rawBytes, sha256: read.sha256, ...(blob && scanner ? { blob: { contentHash: scanner.normalizedDigest(), facts: blob.facts } } : {}) };
}

async function exposedObjects(remote: Remote, worktrees: string[] | undefined): Promise<ExposedObject[]> {
  if (!remote.exposed) return [];
  if (worktrees === undefined) return remote.exposed(`${FORMAT_ROOT}/`);
  const seen = new Map<string, ExposedObject>();
  for (const worktree of worktrees) for (const item of await remote.exposed(worktreePrefix(worktree))) seen.set(item.key, item);
  return [...seen.values()];
}

function worktreeOfKey(key: string): string | null {
  return worktreeFolderOf(key) ?? null;
}

function exposedProblem(item: ExposedObject, worktree: string | null, display: string): CheckProblem {
  const mode = item.mode.toString(8).padStart(4, '0');
  const who = item.who === 'others' ? 'any user of this machine' : "members of its group (the remote's root is not shared with that group)";
  const bits = item.mode & (item.who === 'others' ? 0o007 : 0o070);
  const can = [bits & 0o444 ? (item.folder ? 'list' : 'read') : '', bits & 0o222 ? 'write' : '', item.folder && bits & 0o111 ? 'enter' : ''].filter(Boolean);
  const verbs = can.length > 1 ? `${can.slice(0, -1).join(', ')} and ${can.at(-1)}` : can[0];
  const fix = item.who === 'others' ? 'go-rwx' : 'g-rwx';
  return problem('warning', 'readable-by-others', worktree, item.key, `${item.folder ? 'folder' : 'object'} ${item.key} of ${display} has mode ${mode}: ${who} can ${verbs} it`, {
    hint: `an older sessmig (0644 files, 0755 folders) or a hand wrote it so; chmod -R ${fix} the remote's sessmig/ folder`,
  });
}

/** "The remote holds bad data" (a finding), not "the remote cannot be reached" (a failure): the error says so itself (util/errors.ts remoteData). */
function isDataError(error: unknown): error is SessmigError {
  return error instanceof SessmigError && error.remoteData;
}

function problem(severity: Severity, code: string, worktree: string | null, key: string, message: string, extra: Partial<CheckProblem> = {}): CheckProblem {
  return { severity, code, kind: kindOfKey(key), worktree, key, checkpoint: null, session: null, checkpoints: [], message, hint: null, ...extra };
}

/** The kind of object a key names, as format/keys.ts parses it (null outside every worktree or unknown). */
function kindOfKey(key: string): string | null {
  const parsed = parseKey(key);
  return parsed ? (listedKind(parsed) ?? parsed.kind) : null;
}

function groupRefs(refs: Ref[], by: (ref: Ref) => string): Ref[][] {
  const groups = new Map<string, Ref[]>();
  for (const ref of refs) {
    const key = by(ref);
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(ref);
  }
  return [...groups.values()];
}

/** The checkpoint to name for a group of references: the current one if among them, else the newest. */
function primary(refs: Ref[], current: string | undefined): Ref {
  return refs.find((ref) => ref.checkpoint === current) ?? [...refs].sort((a, b) => (a.checkpoint < b.checkpoint ? 1 : -1))[0]!;
}

function refFields(refs: Ref[], current: string | undefined): Partial<CheckProblem> {
  const main = primary(refs, current);
  return { checkpoint: main.checkpoint, session: main.object.session?.id ?? null, checkpoints: [...new Set(refs.map((ref) => ref.checkpoint))].sort() };
}

/** "checkpoint X (current), session S" or "checkpoint X (current) and 3 others" (packs and bundles belong to no session). */
function where(refs: Ref[], current: string | undefined): string {
  const main = primary(refs, current);
  const others = new Set(refs.map((ref) => ref.checkpoint)).size - 1;
  const sessions = [...new Set(refs.flatMap((ref) => (ref.object.session ? [ref.object.session.id] : [])))];
  return `checkpoint ${main.checkpoint}${main.checkpoint === current ? ' (current)' : ''}${others > 0 ? ` and ${others} other${others > 1 ? 's' : ''}` : ''}${sessions.length > 0 ? `, session ${sessions.join(', ')}` : ''}`;
}
