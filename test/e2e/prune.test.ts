/**
 * `sessmig prune` on real parts: real opencode sessions (made against the fake LLM) continued
 * between pushes by the real CLI to a file:// remote and to s3rver; prune deletes old checkpoints
 * and the blobs only they named, and the current checkpoint still pulls exactly into another host.
 * A half-done push from another host (its blobs and manifest written, not its pointer) survives a
 * prune with the default grace period and then completes. prune runs with no usable opencode.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScene, type Scene } from '../support/scene.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { prefixStore, startS3rver, type PrefixStore } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';

let scene: Scene;
let a: Host;
let repoA: string;
const ids = { one: '', two: '' };

beforeAll(async () => {
  scene = await startScene(['laptop']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ids.one = (await a.run(repoA, 'first session MARK-ONE')).sessionID;
  ids.two = (await a.run(repoA, 'second session MARK-TWO')).sessionID;
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

/** Raw access to one remote's objects, behind sessmig's back. Keys are relative to the remote's root. */
type Store = Omit<PrefixStore, 'delete'>;

interface Kind {
  name: string;
  /** Two independent remotes of this kind: the main one and a scratch one. */
  setup(): Promise<{ main: Store; scratch: Store; dispose(): Promise<void> }>;
}

async function walk(dir: string, rel = ''): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const key = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(path.join(dir, entry.name), key)));
    else if (entry.isFile()) out.push([key, (await stat(path.join(dir, entry.name))).size]);
  }
  return out;
}

const kinds: Kind[] = [
  {
    name: 'file',
    async setup() {
      const dirs: string[] = [];
      const store = async (): Promise<Store> => {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-prune-'));
        dirs.push(dir);
        const file = (key: string) => path.join(dir, ...key.split('/'));
        return {
          url: pathToFileURL(dir).href,
          env: {},
          list: async () => new Map(await walk(dir)),
          get: (key) => readFile(file(key)),
          async put(key, body) {
            // As private as sessmig's own objects: check reports anything other users can read.
            await mkdir(path.dirname(file(key)), { recursive: true, mode: 0o700 });
            await writeFile(file(key), body, { mode: 0o600 });
          },
        };
      };
      const main = await store();
      const scratch = await store();
      return { main, scratch, dispose: async () => void (await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))) };
    },
  },
  {
    name: 's3',
    async setup() {
      const target = await startS3rver();
      const store = (prefix: string): Store => prefixStore(target, prefix);
      return { main: store('team/'), scratch: store('scratch/'), dispose: () => target.dispose() };
    },
  },
];

const sorted = (values: Iterable<string>) => [...values].sort();

/** After a prune, check's only finding is the oldest kept checkpoint naming a deleted parent (no orphan blob). */
function expectOnlyParentMissing(check: SessmigRun): void {
  const codes = (check.json.problems as { code: string }[]).map((p) => p.code);
  expect(codes.filter((code) => code !== 'parent-missing'), explain(check)).toEqual([]);
}

// Prune's planning is remote-agnostic; list, delete and touch are covered per kind by the remote
// contract tests. One kind by default (S3: its listing and copy-to-touch are the trickier ones);
// SESSMIG_TEST_E2E_TARGETS=all runs both.
const pruneKinds = process.env.SESSMIG_TEST_E2E_TARGETS === 'all' ? kinds : kinds.filter((kind) => kind.name === 's3');
describe.each(pruneKinds)('sessmig prune on the $name remote', (kind) => {
  let stores: { main: Store; scratch: Store; dispose(): Promise<void> };
  let main: Store;
  let b: Host;
  let repoB: string;
  let worktree: string;
  const checkpoints: string[] = [];
  let orphanKey: string;

  const prefix = () => `sessmig/v1/worktrees/${worktree}/`;
  const manifestKey = (id: string) => `${prefix()}checkpoints/${id}.json`;
  const blobKey = (sha: string) => `${prefix()}blobs/${sha}.json.gz`;
  const blobsOf = async (store: Store, id: string): Promise<string[]> =>
    (JSON.parse((await store.get(manifestKey(id))).toString('utf8')).sessions as { sha256: string }[]).map((s) => s.sha256);

  const push = async (): Promise<string> => {
    const run = await sessmig(a, ['push', '--remote', main.url, '--json'], { cwd: repoA, env: main.env });
    expect(run.exitCode, explain(run)).toBe(0);
    worktree = run.json.worktree;
    return run.json.checkpoint as string;
  };
  /** prune (or check) with a broken opencode in the env: it must not need one. */
  const noOpencode = (host: Host, cwd: string, args: string[]): Promise<SessmigRun> =>
    sessmig(host, [...args, '--remote', main.url, '--json'], { cwd, env: { ...main.env, SESSMIG_OPENCODE: '/nonexistent/opencode' } });
  const prune = (args: string[]) => noOpencode(a, repoA, ['prune', ...args]);

  /** Pulls into b and checks opencode's view of every session against a's. */
  const pullMatches = async (): Promise<SessmigRun> => {
    const run = await sessmig(b, ['pull', '--remote', main.url, '--json'], { cwd: repoB, env: main.env });
    expect(run.exitCode, explain(run)).toBe(0);
    // one `opencode db` per host for all of them
    const [sources, dests] = await Promise.all([a.views([ids.one, ids.two]), b.views([ids.one, ids.two])]);
    for (const [index, source] of sources.entries()) {
      const dest = dests[index]!;
      expect({ messages: dest.messages, parts: dest.parts, title: dest.title }).toEqual({ messages: source.messages, parts: source.parts, title: source.title });
      expect(dest.directory).toBe(repoB);
    }
    expect((await b.sessions()).length).toBe(2);
    return run;
  };

  beforeAll(async () => {
    stores = await kind.setup();
    main = stores.main;
    b = await createHost(`box-${kind.name}`);
    repoB = path.join(b.workDir, 'elsewhere', 'app');
    await createRepo(repoB);
  }, 120_000);

  afterAll(async () => {
    await b?.cleanup();
    await stores?.dispose();
  });

  it('three pushes, each after a session continued, make three checkpoints', async () => {
    checkpoints.push(await push());
    await a.run(repoA, 'more', { session: ids.one });
    checkpoints.push(await push());
    await a.run(repoA, 'more', { session: ids.two });
    checkpoints.push(await push());
    const keys = [...(await main.list()).keys()].filter((key) => key.includes('/checkpoints/'));
    expect(sorted(keys)).toEqual(checkpoints.map(manifestKey));
  });

  it('--dry-run reports what would go and deletes nothing; the default policy keeps all of them', async () => {
    const before = await main.list();
    const dry = await prune(['--keep-last', '1', '--grace', '0s', '--dry-run']);
    expect(dry.exitCode, explain(dry)).toBe(0);
    expect(dry.json).toMatchObject({ command: 'prune', mode: 'remote', dryRun: true, worktree, current: checkpoints[2], deleted: { checkpoints: 2, blobs: 2 } });
    expect(dry.json.checkpoints.filter((c: { action: string }) => c.action === 'delete').map((c: { id: string }) => c.id)).toEqual(checkpoints.slice(0, 2));
    expect(dry.json.bytesFreed).toBeGreaterThan(0);
    expect(await main.list()).toEqual(before);

    const defaults = await prune(['--dry-run']);
    expect(defaults.exitCode, explain(defaults)).toBe(0);
    expect(defaults.json.policy).toEqual({ keepLast: 5, keepWithinMs: 7 * 86_400_000, graceMs: 3_600_000 });
    expect(defaults.json.deleted).toEqual({ checkpoints: 0, blobs: 0 });
    expect(await main.list()).toEqual(before);
  });

  it('--keep-last 1 --grace 0s deletes the old checkpoints and the blobs only they named, reporting the bytes', async () => {
    const [c1, c2, c3] = checkpoints as [string, string, string];
    const kept = new Set(await blobsOf(main, c3));
    const old = new Set([...(await blobsOf(main, c1)), ...(await blobsOf(main, c2))]);
    const unshared = [...old].filter((sha) => !kept.has(sha));
    expect(unshared).toHaveLength(2); // the first versions of both sessions
    const before = await main.list();

    const run = await prune(['--keep-last', '1', '--grace', '0s']);
    expect(run.exitCode, explain(run)).toBe(0);
    const after = await main.list();
    const gone = [...before.keys()].filter((key) => !after.has(key));
    expect(sorted(gone)).toEqual(sorted([manifestKey(c1), manifestKey(c2), ...unshared.map(blobKey)]));
    expect(run.json.deleted).toEqual({ checkpoints: 2, blobs: 2 });
    expect(sorted(run.json.blobs.deleted.map((blob: { sha256: string }) => blob.sha256))).toEqual(sorted(unshared));
    expect(run.json.bytesFreed).toBe(gone.reduce((sum, key) => sum + before.get(key)!, 0));
    for (const sha of kept) expect(after.has(blobKey(sha))).toBe(true);

    const check = await noOpencode(a, repoA, ['check']);
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.ok).toBe(true);
    expectOnlyParentMissing(check);
    const pulled = await pullMatches();
    expect(pulled.json.checkpoint).toBe(c3);
  });

  it('a half-done push (blobs and manifest, no pointer yet) survives a prune with the default grace, then completes and pulls exactly', async () => {
    await a.run(repoA, 'more', { session: ids.one });
    // Another host's push, stopped before its pointer write: run it against a copy of the remote,
    // then copy what it wrote (every object but the pointer) into the real one.
    const scratch = stores.scratch;
    const original = await main.list();
    for (const key of original.keys()) await scratch.put(key, await main.get(key));
    // (--force: the copy is a remote this host never synced with, so the continued session counts as diverged.)
    const pushed = await sessmig(a, ['push', '--remote', scratch.url, '--json', '--force'], { cwd: repoA, env: scratch.env });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const c4 = pushed.json.checkpoint as string;
    const written = [...(await scratch.list()).keys()].filter((key) => !original.has(key));
    expect(written).toContain(manifestKey(c4));
    expect(written.some((key) => key.includes('/blobs/'))).toBe(true);
    for (const key of written) await main.put(key, await scratch.get(key));
    // And a blob uploaded by a push that has not written its manifest yet.
    const raw = Buffer.from(JSON.stringify({ info: { id: 'ses_orphan' }, messages: [], pad: randomBytes(8).toString('hex') }));
    orphanKey = blobKey(createHash('sha256').update(raw).digest('hex'));
    await main.put(orphanKey, gzipSync(raw));
    for (const sha of await blobsOf(main, c4)) expect((await main.list()).has(blobKey(sha))).toBe(true);

    const before = await main.list();
    const run = await prune(['--keep-last', '1']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.deleted).toEqual({ checkpoints: 0, blobs: 0 });
    expect(run.json.bytesFreed).toBe(0);
    expect(run.json.blobs.young).toBe(1);
    const reasons = Object.fromEntries(run.json.checkpoints.map((c: { id: string; reasons: string[] }) => [c.id, c.reasons]));
    expect(reasons[checkpoints[2]!]).toContain('current');
    expect(reasons[c4]).toContain('grace');
    expect(await main.list()).toEqual(before);

    // The push completes: its pointer write.
    const head = `${prefix()}HEAD.json`;
    await main.put(head, await scratch.get(head));
    checkpoints.push(c4);
    const pulled = await pullMatches();
    expect(pulled.json.checkpoint).toBe(c4);
    expect(pulled.json.sessions.find((s: { id: string }) => s.id === ids.one).action).toBe('replace');
    expect(JSON.stringify(await b.exportSession(ids.two))).toContain('MARK-TWO');
  });

  it('the next prune with --grace 0s collects what the finished push left behind', async () => {
    const [, , c3, c4] = checkpoints as [string, string, string, string];
    const kept = new Set(await blobsOf(main, c4));
    const unshared = (await blobsOf(main, c3)).filter((sha) => !kept.has(sha));
    expect(unshared.length).toBeGreaterThan(0);
    const before = await main.list();
    const run = await prune(['--keep-last', '1', '--grace', '0s']);
    expect(run.exitCode, explain(run)).toBe(0);
    const after = await main.list();
    const gone = [...before.keys()].filter((key) => !after.has(key));
    expect(sorted(gone)).toEqual(sorted([manifestKey(c3), orphanKey, ...unshared.map(blobKey)]));
    expect(run.json.bytesFreed).toBe(gone.reduce((sum, key) => sum + before.get(key)!, 0));
    // Every blob of the current checkpoint is still there and whole (it pulled exactly above).
    const check = await noOpencode(a, repoA, ['check', '--read-data']);
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.ok).toBe(true);
    expectOnlyParentMissing(check);
  });

  it('prune --local removes pull backups older than --older-than, and only those', async () => {
    const root = path.join(b.stateDir, 'sessmig', 'backups', worktree);
    const dirs = await readdir(root);
    expect(dirs.length).toBeGreaterThan(0); // the replace above backed up the box's copy
    const bytes = (await Promise.all(dirs.map((d) => walk(path.join(root, d))))).flat().reduce((sum, [, size]) => sum + size, 0);
    const local = (args: string[]) => noOpencode(b, repoB, ['prune', '--local', ...args]);

    const young = await local([]);
    expect(young.exitCode, explain(young)).toBe(0);
    expect(young.json).toMatchObject({ mode: 'local', worktree, olderThanMs: 30 * 86_400_000, deleted: { backups: 0 }, bytesFreed: 0 });
    const dry = await local(['--older-than', '0s', '--dry-run']);
    expect(dry.exitCode, explain(dry)).toBe(0);
    expect(dry.json.deleted).toEqual({ backups: dirs.length });
    expect(sorted(await readdir(root))).toEqual(sorted(dirs));

    const run = await local(['--older-than', '0s']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.deleted).toEqual({ backups: dirs.length });
    expect(run.json.bytesFreed).toBe(bytes);
    expect(await readdir(root)).toEqual([]);
    for (const d of dirs) expect(existsSync(path.join(root, d))).toBe(false);
  });

  it('refuses bad flags and unknown worktrees through SessmigError', async () => {
    const mixed = await prune(['--older-than', '1d']);
    expect(mixed.exitCode).toBe(2);
    expect(mixed.json.error.code).toBe('bad-flag');
    const duration = await prune(['--grace', 'soon']);
    expect(duration.exitCode).toBe(2);
    expect(duration.json.error.message).toContain('--grace');
    const missing = await prune(['--worktree', 'no-such-worktree']);
    expect(missing.exitCode).toBe(2);
    expect(missing.json.error.code).toBe('worktree-not-found');
  });
});
