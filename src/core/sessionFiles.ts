/**
 * What a session points at outside its export blob, carried beside it (docs/FORMAT-snapshots.md):
 *  - the objects of opencode's snapshot repository that its parts name (undo / revert history), as
 *    git packs, incrementally per worktree;
 *  - the whole files of its truncated tool outputs.
 * Push calls `carrySessionFiles` once, before writing the manifest; pull calls `bringSessionFiles`
 * once, before downloading the blobs, hands `paths` to the streaming rebase, and calls `verify` after
 * the imports. Everything goes through the `Remote` interface (so a sealed remote encrypts it).
 */
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { Meter, readVerified, type VerifiedRead } from '../blob/verifiedRead.js';
import { GZIP_LEVEL, storeObject } from '../blob/storedObject.js';
import { JsonScanner } from '../util/jsonScan.js';
import { sessionRefHooks, type PathRebase, type RebasedValue, type SessionRefs } from '../blob/sessionRefs.js';
import { blobKey, carriedFileKey, type CarriedKind } from '../format/layout.js';
import type { CarriedFile, CarriedSnapshots, CarriedToolOutput, Manifest, ManifestSession } from '../format/schema.js';
import { partFields } from '../opencode/sessionQueries.js';
import {
  addSnapshotPack,
  ensureSnapshotRepo,
  isGitDir,
  opencodeDataDir,
  packSnapshotObjects,
  presentObjects,
  snapshotGitDirs,
  toolOutputDir,
  worktreeHash,
} from '../opencode/snapshots.js';
import type { Context } from './context.js';
import { SessmigError } from '../util/errors.js';
import { mapPool } from './pool.js';
import { findWorktree } from './worktree.js';

/** The environment opencode runs with (its XDG_DATA_HOME decides where its data lives). */
function opencodeEnv(ctx: Context): NodeJS.ProcessEnv {
  return ctx.opencode.options.env ?? ctx.env;
}

/** Gzips `file` into the temp dir, names it by the sha256 of its bytes and stores it unless the remote has its content. */
async function storeCarried(ctx: Context, file: string, kind: CarriedKind, tempName: string): Promise<CarriedFile> {
  const gz = path.join(ctx.tempDir, `${tempName}.gz`);
  const raw = new Meter();
  const stored = new Meter();
  await pipeline(createReadStream(file), raw, createGzip({ level: GZIP_LEVEL }), stored, createWriteStream(gz, { mode: 0o600 }));
  const entry: CarriedFile = { sha256: raw.digest(), rawBytes: raw.bytes, storedBytes: stored.bytes };
  try {
    const kept = await storeObject(ctx.remote, carriedFileKey(ctx.worktree.key, entry.sha256, kind), gz, entry);
    return { ...entry, storedBytes: kept.storedBytes };
  } finally {
    await rm(gz, { force: true });
  }
}

/**
 * Downloads a carried file to `file` through the one verifying pipeline (blob/verifiedRead.ts):
 * stored size, size and sha256. Throws 'carried-missing' when the remote does not have it,
 * 'blob-corrupt' when it is damaged (a sealed object that does not open included).
 */
async function fetchCarried(ctx: Context, entry: CarriedFile, kind: CarriedKind, file: string): Promise<void> {
  const key = carriedFileKey(ctx.worktree.key, entry.sha256, kind);
  const refuse = async (why: string): Promise<never> => {
    await rm(file, { force: true });
    throw new SessmigError('blob-corrupt', `${key} ${why}`, { hint: 'push again from the host that has the sessions' });
  };
  let read: VerifiedRead;
  try {
    read = await readVerified(ctx.remote, key, { gzip: true, sink: createWriteStream(file, { mode: 0o600 }), unchanged: 'nothing was imported' });
  } catch (error) {
    await rm(file, { force: true });
    throw error;
  }
  // Absent (a pull ticket has no URL for it; an object never pushed): the caller warns.
  if (read.status === 'missing') {
    await rm(file, { force: true });
    throw new SessmigError('carried-missing', `${key} is not in the remote`, { hint: 'push again from the host that has the sessions' });
  }
  if (read.status === 'damaged') return refuse(read.why);
  if (read.storedBytes !== entry.storedBytes) return refuse(`is ${read.storedBytes} bytes in the remote, expected ${entry.storedBytes}`);
  if (read.rawBytes !== entry.rawBytes || read.sha256 !== entry.sha256) return refuse('does not match its checksum');
}

/** The references of one stored blob (gzip), read in one streaming pass. */
async function readRefs(source: Readable): Promise<SessionRefs> {
  const { hooks, refs } = sessionRefHooks();
  await pipeline(source, createGunzip(), new JsonScanner(hooks), async (stream: AsyncIterable<unknown>) => {
    for await (const _ of stream);
  });
  return refs;
}

/**
 * The source's snapshot repository for this worktree: among `<data>/snapshot/<project>/<sha1(root)>`
 * and `<data>/snapshot/<project>` for every project folder, the git dir holding most of `trees`.
 */
async function findSourceSnapshotRepo(dataDir: string, root: string, trees: string[], env: NodeJS.ProcessEnv): Promise<{ gitDir: string; present: Set<string> } | undefined> {
  const base = path.join(dataDir, 'snapshot');
  const projects = await readdir(base).catch(() => [] as string[]);
  let best: { gitDir: string; present: Set<string> } | undefined;
  for (const project of projects) {
    for (const gitDir of [path.join(base, project, worktreeHash(root)), path.join(base, project)]) {
      if (!isGitDir(gitDir)) continue;
      const present = await presentObjects(gitDir, trees, env);
      if (!best || present.size > best.present.size) best = { gitDir, present };
    }
  }
  return best && best.present.size > 0 ? best : undefined;
}

/** A tool-output file name that may be written into the destination's tool-output folder. */
function safeOutputName(source: string): string | undefined {
  const name = path.basename(source);
  return /^[A-Za-z0-9_.-]{1,200}$/.test(name) && name !== '.' && name !== '..' ? name : undefined;
}

/**
 * Push: reads what the exported sessions point at, stores the truncated tool outputs they name
 * (recorded as `toolOutputs` on their entries in `sessions`, which it updates in place) and a git
 * pack of the snapshot objects the remote does not hold yet for this worktree (per `previous`, the
 * current manifest). Returns the manifest's `snapshots` field (always; empty lists when there is
 * nothing to carry). Files that are gone on this host are reported and left out.
 */
export async function carrySessionFiles(
  ctx: Context,
  exported: readonly { id: string; file: string }[],
  sessions: ManifestSession[],
  previous: Manifest | undefined,
): Promise<{ snapshots?: CarriedSnapshots }> {
  const env = opencodeEnv(ctx);
  // The first push of a worktree with this sessmig also reads the blobs it reuses from the remote:
  // their snapshots were never carried.
  const exportedIds = new Set(exported.map((item) => item.id));
  const unscanned = previous && !previous.snapshots ? sessions.filter((session) => !exportedIds.has(session.id)) : [];
  const sources = [
    ...exported.map((item) => ({ id: item.id, open: async () => createReadStream(item.file) as Readable })),
    ...unscanned.map((session) => ({ id: session.id, open: () => ctx.remote.getStream(blobKey(ctx.worktree.key, session.sha256)) })),
  ];
  const refs = await ctx.timing.time('refs', () => mapPool(sources, ctx.jobs, async (item) => readRefs(await item.open()), ctx.signal));
  const byId = new Map(sessions.map((session) => [session.id, session]));

  // Truncated tool outputs: only files in this host's tool-output folder travel.
  const outputDir = toolOutputDir(env);
  let gone = 0;
  await mapPool(
    sources.map((item, index) => ({ id: item.id, refs: refs[index]! })),
    ctx.jobs,
    async (item, index) => {
      const entries: CarriedToolOutput[] = [];
      for (const [n, source] of item.refs.outputPaths.entries()) {
        if (path.dirname(source) !== outputDir || safeOutputName(source) === undefined) continue;
        if (!existsSync(source)) {
          gone++;
          continue;
        }
        const stored = await ctx.timing.time('upload', () => storeCarried(ctx, source, 'out', `out-${index}-${n}`));
        entries.push({ path: source, ...stored });
      }
      const entry = byId.get(item.id);
      if (entry) {
        if (entries.length > 0) entry.toolOutputs = entries;
        else delete entry.toolOutputs;
      }
    },
    ctx.signal,
  );
  if (gone > 0) ctx.report.warn(`${gone} truncated tool output file(s) the sessions point at are gone from ${outputDir}; their full text does not travel`);

  // Snapshot objects: what the remote does not hold yet for this worktree.
  const held = previous?.snapshots;
  const heldTrees = new Set([...(held?.trees ?? []), ...(held?.missing ?? [])]);
  const wanted = [...new Set(refs.flatMap((item) => item.trees))];
  const fresh = wanted.filter((tree) => !heldTrees.has(tree));
  // Always written (even empty): its absence tells pull that an older sessmig pushed.
  if (fresh.length === 0) return { snapshots: held ?? { packs: [], trees: [] } };
  const repo = await findSourceSnapshotRepo(opencodeDataDir(env), ctx.worktree.root, fresh, env);
  const packs = [...(held?.packs ?? [])];
  const trees = [...(held?.trees ?? [])];
  const missing = [...(held?.missing ?? [])];
  if (!repo) {
    ctx.report.warn(`none of the ${fresh.length} snapshot tree(s) the sessions point at is in opencode's snapshot repositories here (${path.join(opencodeDataDir(env), 'snapshot')}); undo to those points will not work after a pull`);
    return { snapshots: { packs, trees, missing: [...missing, ...fresh] } };
  }
  const present = fresh.filter((tree) => repo.present.has(tree));
  const absent = fresh.filter((tree) => !repo.present.has(tree));
  const base = [...(await presentObjects(repo.gitDir, held?.trees ?? [], env))];
  const packFile = path.join(ctx.tempDir, 'snapshots.pack');
  const objects = await ctx.timing.time('snapshots', () => packSnapshotObjects(repo.gitDir, present, base, packFile, env));
  if (objects > 0) {
    packs.push(await ctx.timing.time('upload', () => storeCarried(ctx, packFile, 'pack', 'snapshots-pack')));
    await rm(packFile, { force: true });
  }
  trees.push(...present);
  if (absent.length > 0) {
    ctx.report.warn(`${absent.length} snapshot tree(s) the sessions point at are gone from ${repo.gitDir} (opencode prunes snapshots after 7 days); undo to those points will not work after a pull`);
    missing.push(...absent);
  }
  ctx.report.info(`carrying ${present.length} new snapshot tree(s) (${objects} git object(s)) of opencode's undo history`);
  return { snapshots: { packs, trees, ...(missing.length > 0 ? { missing } : {}) } };
}

/** What pull gets from bringSessionFiles. */
export interface BroughtFiles {
  /** For downloadRebasedBlob: how paths move, and where it records what it rewrote. */
  paths: PathRebase;
  /** Checks through opencode's database that the imported sessions hold the rewritten values. */
  verify(imported: readonly string[]): Promise<void>;
}

/**
 * Pull: adds the checkpoint's snapshot objects to the snapshot repository the local opencode
 * `version` uses for this worktree (created as opencode creates it), restores the truncated tool
 * outputs into the local tool-output folder, and says how the blobs' paths move. A checkpoint
 * without `snapshots` (an older sessmig pushed it) pulls with a warning that undo history did not travel.
 */
export async function bringSessionFiles(ctx: Context, manifest: Manifest, version: string): Promise<BroughtFiles> {
  const env = opencodeEnv(ctx);
  const outputs = new Map<string, string>();
  const paths: PathRebase = { from: manifest.source.worktreeRoot, to: ctx.worktree.root, outputs, rewritten: new Map<string, RebasedValue[]>() };
  const dataDir = opencodeDataDir(env);

  const carried = manifest.snapshots;
  if (!carried) {
    ctx.report.warn(`checkpoint ${manifest.id} carries no snapshot objects (it was pushed by an older sessmig): undo history (revert / unrevert) did not travel; push again with this sessmig on the source host to carry it`);
  } else if (carried.trees.length > 0) {
    try {
      await ctx.timing.time('snapshots', () => addSnapshots(ctx, carried, dataDir, version, env));
    } catch (error) {
      // Git or the local snapshot repository failed: the sessions still import.
      if (!(error instanceof SessmigError && error.code === 'snapshot-failed')) throw error;
      ctx.report.warn(`undo history did not travel: ${error.message}`);
    }
  }

  // Tool outputs of every session of the checkpoint (a file already there is kept).
  const dir = toolOutputDir(env);
  const wanted = new Map<string, CarriedToolOutput>();
  let unavailable = 0;
  for (const session of manifest.sessions) for (const entry of session.toolOutputs ?? []) if (safeOutputName(entry.path)) wanted.set(entry.path, entry);
  await mapPool(
    [...wanted.values()],
    ctx.jobs,
    async (entry, index) => {
      const target = path.join(dir, safeOutputName(entry.path)!);
      const existing = await stat(target).catch(() => undefined);
      if (!existing || existing.size !== entry.rawBytes) {
        const temp = path.join(ctx.tempDir, `out-${index}`);
        try {
          await fetchCarried(ctx, entry, 'out', temp);
        } catch (error) {
          // A missing tool output is worth a warning, not the sessions (a pull ticket has no URL for it).
          if (!(error instanceof SessmigError && error.code === 'carried-missing')) throw error;
          unavailable++;
          return;
        }
        await ensureDir(dir);
        await moveFile(temp, target);
      }
      outputs.set(entry.path, target);
    },
    ctx.signal,
  );

  if (unavailable > 0) ctx.report.warn(`${unavailable} truncated tool output file(s) could not be fetched; their parts keep the source's path`);

  return {
    paths,
    async verify(imported) {
      const expected = imported.flatMap((id) => paths.rewritten?.get(id) ?? []).filter((item) => item.partId !== undefined);
      if (expected.length === 0) return;
      const byId = await partFields(ctx.opencode, [...new Set(expected.map((item) => item.partId!))]);
      for (const item of expected) {
        const row = byId.get(item.partId!);
        let got: unknown;
        if (row && item.field === 'files') got = (JSON.parse(typeof row.files === 'string' ? row.files : '[]') as unknown[])[item.index ?? -1];
        else if (row) got = row[item.field];
        if (got !== item.value) {
          throw new SessmigError('import-unverified', `part ${item.partId} holds ${JSON.stringify(got)} at ${item.field} after the import, expected the rebased ${JSON.stringify(item.value)}`, {
            hint: 'the local opencode may not keep these fields; check that this opencode version is supported (README, "opencode versions")',
          });
        }
      }
    },
  };
}

async function addSnapshots(ctx: Context, carried: CarriedSnapshots, dataDir: string, version: string, env: NodeJS.ProcessEnv): Promise<void> {
  // An empty folder (the code leg makes the checkout later) has no repository yet: its --worktree KEY is the project id.
  const projectId = ctx.worktree.projectId ?? (ctx.worktree.empty || ctx.worktree.keySource === 'opencode-project' ? ctx.worktree.key : (await findWorktree(ctx.worktree.root, undefined, env)).key);
  const candidates = snapshotGitDirs(dataDir, projectId, ctx.worktree.root, version);
  const gitDir = candidates.find(isGitDir) ?? candidates[0]!;
  const have = await presentObjects(gitDir, carried.trees, env);
  if (have.size === carried.trees.length) return;
  await ensureSnapshotRepo(gitDir, ctx.worktree.root, env);
  for (const [index, pack] of carried.packs.entries()) {
    const file = path.join(ctx.tempDir, `snapshots-${index}.pack`);
    try {
      await fetchCarried(ctx, pack, 'pack', file);
      await addSnapshotPack(gitDir, file, env);
    } catch (error) {
      // A missing pack (a pull ticket has no URL for it) is worth a warning, not the sessions.
      if (!(error instanceof SessmigError && error.code === 'carried-missing')) throw error;
      ctx.report.warn(`snapshot objects ${pack.sha256.slice(0, 12)}… could not be added (${error.message}); undo to some points will not work here`);
    } finally {
      await rm(file, { force: true });
    }
  }
  const after = await presentObjects(gitDir, carried.trees, env);
  const lacking = carried.trees.length - after.size;
  if (lacking > 0) ctx.report.warn(`${lacking} of ${carried.trees.length} snapshot tree(s) are not in ${gitDir} after the pull; undo to those points will not work here`);
  else ctx.report.info(`added ${carried.trees.length - have.size} snapshot tree(s) of opencode's undo history to ${gitDir}`);
}

async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}

/** Moves a file, across file systems too (the temp dir may be elsewhere). */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await pipeline(createReadStream(from), createWriteStream(to, { mode: 0o644 }));
    await rm(from, { force: true });
  }
}
