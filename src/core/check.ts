import { markerKey } from '../crypto/sealedRemote.js';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Meter } from '../blob/blobFiles.js';
import { JsonScanError, JsonScanner } from '../util/jsonScan.js';
import { blobHooks, type BlobFacts } from '../blob/sessionBlob.js';
import { CHECKPOINT_ID, SHA256, WORKTREE_KEY } from '../format/ids.js';
import { blobKey, checkpointKey, FORMAT_ROOT, pointerKey, worktreePrefix, worktreesPrefix } from '../format/layout.js';
import type { Manifest, ManifestSession } from '../format/schema.js';
import type { ExposedObject, Remote } from '../remote/remote.js';
import { SessmigError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { readManifest, readPointer } from './remoteStore.js';

/**
 * `sessmig check`: verifies what a remote holds against docs/FORMAT.md, like `restic check`.
 * Reads every pointer and manifest, checks every referenced blob with a HEAD (presence and stored
 * size) and, with readData, downloads and verifies each one (gunzip, raw size, sha256, JSON, session
 * id, content hash). It writes nothing. Problems are returned, not thrown: only a failure to reach
 * the remote at all is an exception.
 */

export type Severity = 'error' | 'warning';

export interface CheckProblem {
  severity: Severity;
  /** Stable kind, e.g. blob-missing, blob-size, blob-corrupt, orphan-blob, pointer-dangling, document-invalid. */
  code: string;
  /** The worktree, or null for an object outside every worktree. */
  worktree: string | null;
  /** The remote object the problem is about (its key relative to the remote's root). */
  key: string;
  /** The checkpoint concerned: the one named, or the current (else newest) one referencing the object. */
  checkpoint: string | null;
  /** The session concerned, for blobs. */
  session: string | null;
  /** Every checkpoint that references the object (blob problems); otherwise empty. */
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
  blobs: {
    /** Objects under blobs/ with a valid name. */
    stored: number;
    /** Distinct blobs named by the readable manifests. */
    referenced: number;
    missing: number;
    orphaned: number;
    /** Blobs downloaded and verified whole (readData). */
    verified: number;
    /** Stored (compressed) bytes downloaded by readData. */
    bytesRead: number;
  };
  /** Objects under the worktree's reserved prefixes (tickets/, incoming/, ENCRYPTION.json), not checked by format v1. */
  reserved: number;
  errors: number;
  warnings: number;
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

/** SessmigError codes that mean "the remote holds bad data" (a finding), not "the remote cannot be reached" (a failure). */
const DATA_ERRORS = new Set([
  'document-too-large',
  'document-malformed',
  'document-invalid',
  'format-too-new',
  'pointer-mismatch',
  'manifest-mismatch',
  'checkpoint-missing',
  // Encrypted worktrees: a sealed document that fails authentication, a plaintext checkpoint.
  'sealed-unreadable',
  'not-encrypted',
]);

const DAMAGED_HINT = 'push again from the host that has the sessions (it writes a new checkpoint), or pull an older checkpoint with --checkpoint';

export async function checkRemote(remote: Remote, options: CheckOptions): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  const worktrees: WorktreeCheck[] = [];
  const byWorktree = new Map<string, Listed[]>();
  if (options.worktrees === undefined) {
    // Everything under sessmig/v1/: each worktree's objects, and strays that belong to none.
    const root = `${FORMAT_ROOT}/`;
    const wtRoot = worktreesPrefix();
    for await (const item of remote.list(root)) {
      const rest = item.key.startsWith(wtRoot) ? item.key.slice(wtRoot.length) : undefined;
      const slash = rest === undefined ? -1 : rest.indexOf('/');
      const name = rest !== undefined && slash > 0 ? rest.slice(0, slash) : undefined;
      if (name !== undefined && WORKTREE_KEY.test(name)) {
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
          exitCode: 2,
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

interface Ref {
  checkpoint: string;
  session: ManifestSession;
}

async function checkWorktree(remote: Remote, worktree: string, listed: Listed[], options: CheckOptions, problems: CheckProblem[]): Promise<WorktreeCheck> {
  const prefix = worktreePrefix(worktree);
  const add = (severity: Severity, code: string, key: string, message: string, extra: Partial<CheckProblem> = {}) =>
    problems.push(problem(severity, code, worktree, key, message, extra));
  const summary: WorktreeCheck = {
    worktree,
    pointer: null,
    sessions: null,
    checkpoints: { total: 0, readable: 0 },
    blobs: { stored: 0, referenced: 0, missing: 0, orphaned: 0, verified: 0, bytesRead: 0 },
    reserved: 0,
    errors: 0,
    warnings: 0,
  };

  // 1. Sort the listing into the names the format knows.
  const checkpointIds: string[] = [];
  const storedBlobs = new Map<string, Listed>();
  for (const item of listed) {
    const name = item.key.slice(prefix.length);
    const cp = /^checkpoints\/([^/]+)\.json$/.exec(name);
    const blob = /^blobs\/([^/]+)\.json\.gz$/.exec(name);
    if (name === 'HEAD.json') continue;
    if (cp && CHECKPOINT_ID.test(cp[1]!)) checkpointIds.push(cp[1]!);
    else if (blob && SHA256.test(blob[1]!)) storedBlobs.set(blob[1]!, item);
    else if (name.startsWith('tickets/') || name.startsWith('incoming/') || name === 'ENCRYPTION.json') summary.reserved++;
    // Code bundles (docs/FORMAT-code.md): written by the code leg; not verified here yet.
    else if (/^code\/[0-9a-f]{64}\.(bundle|age)$/.test(name)) summary.reserved++;
    // A sealed blob (encrypted worktree): checked through the manifests that name it (the name is keyed).
    else if (/^blobs\/[0-9a-f]{64}\.age$/.test(name)) summary.reserved++;
    // What sessions point at (snapshot packs, tool outputs: docs/FORMAT-snapshots.md); not verified by check yet.
    else if (/^blobs\/[0-9a-f]{64}\.(?:pack|out)\.gz$/.test(name)) summary.reserved++;
    else {
      add('warning', 'unknown-object', item.key, `object ${item.key} matches no name of the remote format; no sessmig reads it`, {
        hint: 'it was not written by this version of sessmig; delete it if nobody needs it',
      });
    }
  }
  checkpointIds.sort();
  summary.checkpoints.total = checkpointIds.length;
  summary.blobs.stored = storedBlobs.size;
  options.progress?.(`checking worktree ${worktree}: ${checkpointIds.length} checkpoint(s), ${storedBlobs.size} blob(s)`);

  // 2. The pointer.
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

  // 3. Every manifest.
  // Read in parallel; problems are reported in checkpoint order, whatever the timing.
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
    add(leftover ? 'warning' : 'error', read.code, checkpointKey(worktree, id), `${read.message}${isCurrent ? ' (the current checkpoint: pull fails)' : ''}`, {
      checkpoint: id,
      hint: isCurrent ? DAMAGED_HINT : 'pull --checkpoint of this checkpoint fails; the current checkpoint is not affected',
    });
  });
  const refs = new Map<string, Ref[]>();
  const known = new Set(checkpointIds);
  for (const manifest of manifests) {
    summary.checkpoints.readable++;
    if (manifest.id === current) summary.sessions = manifest.sessions.length;
    const key = checkpointKey(worktree, manifest.id);
    const seen = new Set<string>();
    for (const session of manifest.sessions) {
      if (seen.has(session.id)) {
        add('error', 'duplicate-session', key, `checkpoint ${manifest.id} lists session ${session.id} more than once (${key})`, {
          checkpoint: manifest.id,
          session: session.id,
          hint: DAMAGED_HINT,
        });
      }
      seen.add(session.id);
      let list = refs.get(session.sha256);
      if (!list) refs.set(session.sha256, (list = []));
      list.push({ checkpoint: manifest.id, session });
    }
    if (manifest.parent !== null && !known.has(manifest.parent)) {
      add('warning', 'parent-missing', key, `checkpoint ${manifest.id} names parent checkpoint ${manifest.parent}, which is not in the remote`, {
        checkpoint: manifest.id,
        hint: 'harmless for pull; the history before this checkpoint is gone',
      });
    }
  }
  summary.blobs.referenced = refs.size;

  // 4. Every referenced blob: HEAD (exists, stored size), then with readData the content.
  const shas = [...refs.keys()].sort();
  if (options.readData && shas.length > 0) options.progress?.(`reading ${shas.length} blob(s) of worktree ${worktree}`);
  const blobProblems = await mapPool(
    shas,
    options.jobs,
    async (sha): Promise<CheckProblem[]> => {
      const found: CheckProblem[] = [];
      const add = (severity: Severity, code: string, key: string, message: string, extra: Partial<CheckProblem> = {}) =>
        found.push(problem(severity, code, worktree, key, message, extra));
      await checkBlob(sha, add);
      return found;
    },
    options.signal,
  );
  problems.push(...blobProblems.flat());
  async function checkBlob(sha: string, add: (severity: Severity, code: string, key: string, message: string, extra?: Partial<CheckProblem>) => void): Promise<void> {
    const key = blobKey(worktree, sha);
    const blobRefs = refs.get(sha)!;
    const head = await remote.head(key);
    if (!head) {
      summary.blobs.missing++;
      for (const group of groupRefs(blobRefs, (r) => r.session.id)) {
        add('error', 'blob-missing', key, `${where(group, current)}: blob ${key} is missing`, { ...refFields(group, current), hint: DAMAGED_HINT });
      }
      return;
    }
    let sizeOk = true;
    for (const group of groupRefs(blobRefs, (r) => `${r.session.id}\n${r.session.storedBytes}`)) {
      const expected = group[0]!.session.storedBytes;
      if (head.size !== expected) {
        sizeOk = false;
        add('error', 'blob-size', key, `${where(group, current)}: blob ${key} is ${head.size} bytes, the manifest records ${expected}${head.size < expected ? ' (truncated?)' : ''}`, {
          ...refFields(group, current),
          hint: DAMAGED_HINT,
        });
      }
    }
    if (!options.readData || !sizeOk) return;
    const read = await readBlob(remote, key);
    if ('missing' in read) {
      summary.blobs.missing++;
      add('error', 'blob-missing', key, `${where(blobRefs, current)}: blob ${key} is missing (deleted during the check?)`, { ...refFields(blobRefs, current), hint: DAMAGED_HINT });
      return;
    }
    summary.blobs.bytesRead += read.storedBytes;
    if ('corrupt' in read) {
      add('error', 'blob-corrupt', key, `${where(blobRefs, current)}: blob ${key} ${read.corrupt}`, { ...refFields(blobRefs, current), hint: DAMAGED_HINT });
      return;
    }
    if (read.sha256 !== sha) {
      add('error', 'blob-corrupt', key, `${where(blobRefs, current)}: blob ${key} does not match its checksum (sha256 ${read.sha256.slice(0, 12)}…, expected ${sha.slice(0, 12)}…)`, {
        ...refFields(blobRefs, current),
        hint: DAMAGED_HINT,
      });
      return;
    }
    let good = true;
    for (const group of groupRefs(blobRefs, (r) => JSON.stringify([r.session.id, r.session.parentID, r.session.rawBytes, r.session.storedBytes, r.session.contentHash]))) {
      const wanted = group[0]!.session;
      const wrong: string[] = [];
      if (read.storedBytes !== wanted.storedBytes) wrong.push(`is ${read.storedBytes} bytes stored, the manifest records ${wanted.storedBytes}`);
      if (read.rawBytes !== wanted.rawBytes) wrong.push(`is ${read.rawBytes} bytes uncompressed, the manifest records ${wanted.rawBytes}`);
      if (read.facts.id !== wanted.id) wrong.push(`holds session ${read.facts.id === undefined ? '(no info.id)' : read.facts.id}`);
      else if ((read.facts.parentID ?? null) !== wanted.parentID) wrong.push(`has parent ${String(read.facts.parentID ?? null)}, the manifest records ${String(wanted.parentID)}`);
      if (read.contentHash !== wanted.contentHash) wrong.push(`has content hash ${read.contentHash.slice(0, 12)}…, the manifest records ${wanted.contentHash.slice(0, 12)}…`);
      if (wrong.length > 0) {
        good = false;
        add('error', 'blob-mismatch', key, `${where(group, current)}: blob ${key} ${wrong.join('; ')}`, { ...refFields(group, current), hint: DAMAGED_HINT });
      }
    }
    if (good) summary.blobs.verified++;
  }

  // 5. Blobs no manifest references.
  const unreadable = summary.checkpoints.total - summary.checkpoints.readable;
  for (const [sha, item] of [...storedBlobs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (refs.has(sha)) continue;
    summary.blobs.orphaned++;
    add(
      'warning',
      'orphan-blob',
      item.key,
      `blob ${item.key} (${item.size} bytes) is not referenced by any checkpoint${unreadable > 0 ? ` that could be read (${unreadable} could not; it may belong to one of them)` : ''}: an interrupted push leaves such blobs; they are harmless, and a push of the same session version reuses them`,
      { hint: 'nothing to do; it only takes space' },
    );
  }

  summary.errors = problems.filter((p) => p.severity === 'error').length;
  summary.warnings = problems.length - summary.errors;
  return summary;
}

type BlobRead =
  | { missing: true }
  | { corrupt: string; storedBytes: number }
  | { storedBytes: number; rawBytes: number; sha256: string; contentHash: string; facts: BlobFacts };

/** Streams a blob through gunzip, the sha256 and the JSON scanner (no rebase), discarding the bytes. */
async function readBlob(remote: Remote, key: string): Promise<BlobRead> {
  const { hooks, facts } = blobHooks();
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  const stored = new Meter();
  const raw = new Meter();
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  let source;
  try {
    source = await remote.getStream(key);
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'not-found') return { missing: true };
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return { corrupt: `cannot be opened: ${error.message}`, storedBytes: 0 };
    throw error;
  }
  try {
    await pipeline(source, stored, createGunzip(), raw, scanner, sink);
  } catch (error) {
    if (error instanceof JsonScanError) return { corrupt: `is not valid JSON after gunzip: ${error.message}`, storedBytes: stored.bytes };
    if (error instanceof SessmigError && error.code === 'sealed-unreadable') return { corrupt: `cannot be opened: ${error.message}`, storedBytes: stored.bytes };
    const code = (error as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('Z_')) return { corrupt: `is not valid gzip: ${(error as Error).message}`, storedBytes: stored.bytes };
    if (error instanceof SessmigError) throw error;
    throw new SessmigError('remote-io', `cannot read ${key}: ${(error as Error).message}`, { hint: 're-run the check', cause: error });
  }
  return { storedBytes: stored.bytes, rawBytes: raw.bytes, sha256: raw.digest(), contentHash: scanner.normalizedDigest(), facts };
}

async function exposedObjects(remote: Remote, worktrees: string[] | undefined): Promise<ExposedObject[]> {
  if (!remote.exposed) return [];
  if (worktrees === undefined) return remote.exposed(`${FORMAT_ROOT}/`);
  const seen = new Map<string, ExposedObject>();
  for (const worktree of worktrees) for (const item of await remote.exposed(worktreePrefix(worktree))) seen.set(item.key, item);
  return [...seen.values()];
}

function worktreeOfKey(key: string): string | null {
  const rest = key.startsWith(worktreesPrefix()) ? key.slice(worktreesPrefix().length) : '';
  const name = rest.slice(0, rest.indexOf('/'));
  return rest.includes('/') && WORKTREE_KEY.test(name) ? name : null;
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

function isDataError(error: unknown): error is SessmigError {
  return error instanceof SessmigError && DATA_ERRORS.has(error.code);
}

function problem(severity: Severity, code: string, worktree: string | null, key: string, message: string, extra: Partial<CheckProblem> = {}): CheckProblem {
  return { severity, code, worktree, key, checkpoint: null, session: null, checkpoints: [], message, hint: null, ...extra };
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
  return { checkpoint: main.checkpoint, session: main.session.id, checkpoints: [...new Set(refs.map((ref) => ref.checkpoint))].sort() };
}

/** "checkpoint X (current), session S" or "checkpoint X (current) and 3 older, session S". */
function where(refs: Ref[], current: string | undefined): string {
  const main = primary(refs, current);
  const others = new Set(refs.map((ref) => ref.checkpoint)).size - 1;
  const sessions = [...new Set(refs.map((ref) => ref.session.id))];
  return `checkpoint ${main.checkpoint}${main.checkpoint === current ? ' (current)' : ''}${others > 0 ? ` and ${others} other${others > 1 ? 's' : ''}` : ''}, session ${sessions.join(', ')}`;
}
