/**
 * prune and check over every kind of object a checkpoint names (docs/FORMAT.md "Pruning"): session
 * blobs, truncated tool outputs and snapshot packs (FORMAT-snapshots.md), code bundles
 * (FORMAT-code.md). Real parts: real opencode 1.18.33 sessions made against the fake LLM (one
 * writes a file and truncates a command's output, so it has snapshots and a tool output), a real git
 * checkout whose code travels with `push --code` / `--migrate`, the sessmig CLI, a folder remote and
 * a real S3 API on loopback (s3rver) for the encrypted worktree.
 *
 * Three checkpoints: c1 (code chain [b1]), c2 (one commit more: chain [b1, b2]), c3 (a 1.5 MiB file
 * more: the increments outweigh the first bundle, a new chain [b3]; the side session deleted).
 * Objects no push would leave unreferenced in a linear history (a pack: packs are cumulative) come
 * from an interrupted push; they are planted by hand, as such a push leaves them.
 * `prune --keep-last 1 --grace 0s` then deletes the old blobs, the side session's tool output, b1
 * and b2, and the planted pack, output and bundle, and keeps everything c3 needs: a fresh host's
 * `pull --migrate` into an empty folder restores the code (git's view) and the sessions (opencode's
 * view, snapshots and tool output included). check names a deleted bundle and a damaged pack by
 * kind, with the checkpoints that need them, and exits 1.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { presentObjects, snapshotGitDirs } from '../../src/opencode/snapshots.js';
import type { Host } from '../support/host.js';
import { prefixStore, startS3rver, type PrefixStore } from '../support/s3.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig, type SessmigRun } from './harness.js';
import { git, gitState } from '../support/gitView.js';

/** Raw access to the remote's objects, behind sessmig's back. Keys relative to the remote's root. */
/** A remote's objects behind sessmig's back (a folder, or a bucket prefix: test/support/s3.ts). */
type Store = PrefixStore & { dispose(): Promise<void> };

async function walk(dir: string, rel = ''): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const key = rel ? `${rel}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await walk(path.join(dir, entry.name), key)));
    else if (entry.isFile()) out.push([key, (await stat(path.join(dir, entry.name))).size]);
  }
  return out;
}

async function folderStore(): Promise<Store> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-prune-objects-'));
  const file = (key: string) => path.join(dir, ...key.split('/'));
  return {
    url: pathToFileURL(dir).href,
    env: {},
    list: async () => new Map(await walk(dir)),
    get: (key) => readFile(file(key)),
    async put(key, body) {
      await mkdir(path.dirname(file(key)), { recursive: true, mode: 0o700 });
      await writeFile(file(key), body, { mode: 0o600 });
    },
    delete: (key) => unlink(file(key)),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

async function s3Store(): Promise<Store> {
  const target = await startS3rver();
  return { ...prefixStore(target, 'objects/'), dispose: () => target.dispose() };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const sorted = (values: Iterable<string>) => [...values].sort();

/** What git says about a checkout: what the code leg promises to carry. */
async function gitView(cwd: string) {
  return {
    ...(await gitState(cwd)),
    big: sha256(await readFile(path.join(cwd, 'big.bin'))),
  };
}

function parts(exported: any): any[] {
  return exported.messages.flatMap((message: any) => message.parts);
}

interface Problem {
  severity: string;
  code: string;
  kind: string | null;
  key: string;
  checkpoint: string | null;
  checkpoints: string[];
  message: string;
}

const variants = [
  { name: 'a folder remote', encrypt: false, store: folderStore },
  { name: 'an encrypted worktree on S3', encrypt: true, store: s3Store },
];

describe.each(variants)('prune and check over every object kind, on $name', ({ encrypt, store: makeStore }) => {
  let scene: Scene;
  let laptop: Host;
  let box: Host;
  let repoL: string;
  let store: Store;
  let worktree: string;
  let main: string;
  let side: string;
  let key: string | undefined;
  const checkpoints: string[] = [];
  let atC3: Awaited<ReturnType<typeof gitView>>;
  const planted: Record<'pack' | 'out' | 'bundle' | 'sealed', string> = { pack: '', out: '', bundle: '', sealed: '' };

  const prefix = () => `sessmig/v1/worktrees/${worktree}/`;
  const env = () => ({ ...store.env, ...(key ? { SESSMIG_KEY: key } : {}) });
  const on = (host: Host, cwd: string, args: string[]): Promise<SessmigRun> => sessmig(host, [...args, '--remote', store.url, '--json'], { cwd, env: env() });
  /** prune / check from a folder that is no checkout, naming the worktree (no git, no opencode needed). */
  const offline = (args: string[]): Promise<SessmigRun> =>
    sessmig(box, [...args, '--worktree', worktree, '--remote', store.url, '--json'], { cwd: box.workDir, env: { ...env(), SESSMIG_OPENCODE: '/nonexistent/opencode' } });
  const manifest = async (id: string) => JSON.parse((await store.get(`${prefix()}checkpoints/${id}.json`)).toString('utf8'));
  /** The keys of every object a (plaintext) manifest names. */
  const namedBy = async (id: string): Promise<Set<string>> => {
    const m = await manifest(id);
    const keys = new Set<string>();
    for (const s of m.sessions) {
      keys.add(`${prefix()}blobs/${s.sha256}.json.gz`);
      for (const o of s.toolOutputs ?? []) keys.add(`${prefix()}blobs/${o.sha256}.out.gz`);
    }
    for (const p of m.snapshots?.packs ?? []) keys.add(`${prefix()}blobs/${p.sha256}.pack.gz`);
    for (const b of m.code?.bundles ?? []) keys.add(`${prefix()}code/${b.sha256}.bundle`);
    return keys;
  };

  beforeAll(async () => {
    scene = await startScene(['laptop', 'box']);
    ({ host: laptop, repo: repoL } = scene.hosts[0]!);
    box = scene.hosts[1]!.host;
    store = await makeStore();
    if (encrypt) {
      const made = await sessmig(laptop, ['key', 'new'], { cwd: repoL });
      expect(made.exitCode, explain(made)).toBe(0);
      key = (await sessmig(laptop, ['key', 'show'], { cwd: repoL })).stdout.trim();
    }
  }, 120_000);

  afterAll(async () => {
    await scene?.dispose();
    await store?.dispose();
  });

  it('three pushes with the code leg and sessions with snapshots and tool outputs', async () => {
    main = (await laptop.run(repoL, 'turn one [[write notes.txt first]] [[bash seq 1 30000]]')).sessionID;
    side = (await laptop.run(repoL, 'a side question [[bash seq 5 30005]]')).sessionID;
    const c1 = await on(laptop, repoL, ['push', '--code', ...(encrypt ? ['--encrypt'] : [])]);
    expect(c1.exitCode, explain(c1)).toBe(0);
    worktree = c1.json.worktree;
    checkpoints.push(c1.json.checkpoint);

    await git(repoL, ['add', 'notes.txt']);
    await git(repoL, ['commit', '-q', '--no-gpg-sign', '-m', 'notes']);
    await laptop.run(repoL, 'turn two [[rewrite notes.txt second]]', { session: main });
    const c2 = await on(laptop, repoL, ['push', '--code']);
    expect(c2.exitCode, explain(c2)).toBe(0);
    checkpoints.push(c2.json.checkpoint);

    // 1.5 MiB that does not compress: the chain's increments outweigh its first bundle, a new chain starts.
    await writeFile(path.join(repoL, 'big.bin'), randomBytes(1536 * 1024));
    await laptop.opencode(['session', 'delete', side], { cwd: repoL });
    const c3 = await on(laptop, repoL, ['push', '--migrate']);
    expect(c3.exitCode, explain(c3)).toBe(0);
    checkpoints.push(c3.json.checkpoint);
    atC3 = await gitView(repoL);

    if (!encrypt) {
      const [m1, m2, m3] = await Promise.all(checkpoints.map(manifest));
      expect(m1.code.bundles).toHaveLength(1);
      expect(m2.code.bundles.map((b: { sha256: string }) => b.sha256).slice(0, 1)).toEqual([m1.code.bundles[0].sha256]);
      expect(m2.code.bundles).toHaveLength(2);
      expect(m3.code.bundles).toHaveLength(1);
      expect(m3.code.bundles[0].sha256).not.toBe(m1.code.bundles[0].sha256);
      expect(m1.snapshots.packs.length).toBeGreaterThan(0);
      expect(m1.sessions.find((s: { id: string }) => s.id === side).toolOutputs).toHaveLength(1);
      expect(m3.sessions.map((s: { id: string }) => s.id)).toEqual([main]);
    }
  });

  it('objects an interrupted push left are reported as orphans by kind; prune with the default grace keeps them', async () => {
    // What a push that died before its manifest leaves: a pack, a tool output, a bundle (or, sealed, keyed names).
    const pack = randomBytes(300);
    const out = Buffer.from('interrupted output\n'.repeat(50));
    const bundle = Buffer.concat([Buffer.from('# v2 git bundle\n'), randomBytes(200)]);
    if (encrypt) {
      planted.sealed = `${prefix()}blobs/${sha256(randomBytes(32))}.age`;
      planted.bundle = `${prefix()}code/${sha256(randomBytes(32))}.age`;
      await store.put(planted.sealed, randomBytes(400));
      await store.put(planted.bundle, randomBytes(400));
    } else {
      planted.pack = `${prefix()}blobs/${sha256(pack)}.pack.gz`;
      planted.out = `${prefix()}blobs/${sha256(out)}.out.gz`;
      planted.bundle = `${prefix()}code/${sha256(bundle)}.bundle`;
      await store.put(planted.pack, gzipSync(pack));
      await store.put(planted.out, gzipSync(out));
      await store.put(planted.bundle, bundle);
    }
    const check = await offline(['check']);
    expect(check.exitCode, explain(check)).toBe(0);
    const orphans = (check.json.problems as Problem[]).filter((p) => p.code.startsWith('orphan-'));
    const expected = encrypt
      ? [
          { code: 'orphan-bundle', kind: 'bundle', key: planted.bundle },
          { code: 'orphan-sealed', kind: 'sealed', key: planted.sealed },
        ]
      : [
          { code: 'orphan-bundle', kind: 'bundle', key: planted.bundle },
          { code: 'orphan-output', kind: 'out', key: planted.out },
          { code: 'orphan-pack', kind: 'pack', key: planted.pack },
        ];
    for (const e of expected) expect(orphans).toContainEqual(expect.objectContaining({ severity: 'warning', ...e }));

    const before = await store.list();
    const kept = await offline(['prune', '--keep-last', '1']);
    expect(kept.exitCode, explain(kept)).toBe(0);
    expect(kept.json.deleted.checkpoints).toBe(0);
    expect(kept.json.deletedObjects).toEqual([]);
    expect(kept.json.objects.bundle.young).toBeGreaterThanOrEqual(1);
    expect(await store.list()).toEqual(before);
  });

  it('prune --keep-last 1 --grace 0s deletes the unreferenced blobs, outputs, packs and bundles, and keeps the chain c3 needs', async () => {
    const [c1, c2, c3] = checkpoints as [string, string, string];
    const before = await store.list();
    // What each checkpoint names, read before they go (plaintext manifests only).
    const needed = encrypt ? new Set<string>() : await namedBy(c3);
    const old = encrypt ? new Set<string>() : new Set([...(await namedBy(c1)), ...(await namedBy(c2))]);
    const dry = await offline(['prune', '--keep-last', '1', '--grace', '0s', '--dry-run']);
    expect(dry.exitCode, explain(dry)).toBe(0);
    // The human dry run lists them by kind and name.
    const human = await sessmig(box, ['prune', '--keep-last', '1', '--grace', '0s', '--dry-run', '--worktree', worktree, '--remote', store.url], { cwd: box.workDir, env: env() });
    expect(human.exitCode, explain(human)).toBe(0);
    expect(human.stdout).toMatch(/would delete {2}code bundle {2}\S+/);
    expect(human.stdout).toMatch(encrypt ? /would delete {2}sealed object {2}\S+\.age/ : /would delete {2}snapshot pack {2}[0-9a-f]{64}/);
    if (!encrypt) expect(human.stdout).toMatch(/would delete {2}tool output {2}[0-9a-f]{64}/);
    expect(human.stderr).toMatch(/would delete 2 checkpoint\(s\) and .*3 code bundle\(s\)/);
    expect(await store.list()).toEqual(before);

    const run = await offline(['prune', '--keep-last', '1', '--grace', '0s']);
    expect(run.exitCode, explain(run)).toBe(0);
    const after = await store.list();
    const gone = [...before.keys()].filter((k) => !after.has(k));
    expect(sorted(run.json.deletedObjects.map((o: { key: string }) => o.key))).toEqual(sorted(dry.json.deletedObjects.map((o: { key: string }) => o.key)));
    const manifests = [c1, c2].map((id) => `${prefix()}checkpoints/${id}.json`);
    expect(sorted(gone)).toEqual(sorted([...manifests, ...run.json.deletedObjects.map((o: { key: string }) => o.key)]));
    expect(run.json.bytesFreed).toBe(gone.reduce((sum, k) => sum + before.get(k)!, 0));
    const counts = run.json.objects;
    if (encrypt) {
      // Sealed names hide the kind of an unreferenced blob-like object; code/ still says bundle.
      expect(counts.bundle.deleted).toBe(3); // b1, b2 and the planted one
      expect(counts.sealed.deleted).toBeGreaterThanOrEqual(4); // old blobs, the side session's output, the planted one
      expect(counts.bundle.referenced).toBe(1);
      for (const k of Object.values(planted).filter(Boolean)) expect(gone).toContain(k);
      expect(gone.every((k) => k.endsWith('.age') || manifests.includes(k))).toBe(true);
    } else {
      const unshared = [...old].filter((k) => !needed.has(k));
      expect(sorted(gone)).toEqual(sorted([...manifests, ...unshared, planted.pack, planted.out, planted.bundle]));
      for (const k of needed) expect(after.has(k), k).toBe(true);
      const kinds = (list: string[]) => new Set(list.map((k) => (k.endsWith('.bundle') ? 'bundle' : k.endsWith('.pack.gz') ? 'pack' : k.endsWith('.out.gz') ? 'out' : 'blob')));
      expect(kinds(unshared)).toEqual(new Set(['blob', 'out', 'bundle']));
      expect(counts.bundle.deleted).toBe(3);
      expect(counts.pack.deleted).toBe(1);
      expect(counts.out.deleted).toBe(2);
      expect(run.json.deleted).toEqual({ checkpoints: 2, blobs: counts.blob.deleted });
    }
    const check = await offline(['check', '--read-data']);
    expect(check.exitCode, explain(check)).toBe(0);
    expect((check.json.problems as Problem[]).filter((p) => p.code !== 'parent-missing')).toEqual([]);
    const wt = check.json.worktrees[0];
    expect(wt.objects.bundle).toMatchObject({ referenced: 1, stored: 1, verified: 1, missing: 0, orphaned: 0 });
    expect(wt.objects.pack.verified).toBeGreaterThan(0);
    expect(wt.objects.out).toMatchObject({ referenced: 1, verified: 1 });
  });

  it('a fresh host pulls the kept checkpoint with --migrate into an empty folder: the code and the sessions are whole', async () => {
    const fresh = path.join(box.workDir, 'fresh');
    await mkdir(fresh, { recursive: true });
    const pulled = await on(box, fresh, ['pull', '--migrate', '--worktree', worktree]);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.checkpoint).toBe(checkpoints[2]);
    expect(pulled.stderr).not.toMatch(/could not|did not travel/);
    expect(await gitView(fresh)).toEqual(atC3);
    const [source, dest] = [await laptop.view(main), await box.view(main)];
    expect({ messages: dest.messages, parts: dest.parts, title: dest.title }).toEqual({ messages: source.messages, parts: source.parts, title: source.title });
    expect(dest.directory).toBe(fresh);
    expect((await box.sessions()).map((s) => s.id)).toEqual([main]);
    // The undo history: every snapshot tree the session names is in the box's snapshot repository.
    const exported = await laptop.exportSession(main);
    const trees = [...new Set(parts(exported).map((part) => part.snapshot ?? part.hash).filter(Boolean))] as string[];
    expect(trees.length).toBeGreaterThan(0);
    const gitDir = snapshotGitDirs(path.join(box.dataDir, 'opencode'), worktree, fresh, '1.18.33')[0]!;
    expect(await presentObjects(gitDir, trees)).toEqual(new Set(trees));
    // The truncated tool output travelled whole.
    const bash = parts(await box.exportSession(main)).find((part) => part.type === 'tool' && part.tool === 'bash');
    const sourceBash = parts(exported).find((part) => part.type === 'tool' && part.tool === 'bash');
    expect(await readFile(bash.state.metadata.outputPath, 'utf8')).toBe(await readFile(sourceBash.state.metadata.outputPath, 'utf8'));
  });

  it('check names a deleted code bundle and a damaged pack by kind and the checkpoints that need them, exit 1', async () => {
    const c3 = checkpoints[2]!;
    const listed = [...(await store.list()).keys()];
    const bundleKey = listed.find((k) => k.startsWith(`${prefix()}code/`))!;
    const saved = await store.get(bundleKey);
    await store.delete(bundleKey);
    try {
      const run = await offline(['check']);
      expect(run.exitCode, explain(run)).toBe(1);
      const errors = (run.json.problems as Problem[]).filter((p) => p.severity === 'error');
      expect(errors).toEqual([expect.objectContaining({ code: 'bundle-missing', kind: 'bundle', checkpoint: c3, checkpoints: [c3] })]);
      expect(errors[0]!.message).toMatch(/code bundle .* is missing/);
      if (encrypt) expect(errors[0]!.message).toContain(bundleKey);
      else expect(errors[0]!.key).toBe(bundleKey);
    } finally {
      await store.put(bundleKey, saved);
    }

    // A damaged pack: same size, one byte flipped (HEAD passes; --read-data finds it). On the sealed
    // remote the name hides which .age is the pack: the plaintext sha256 of c3's first pack is not known
    // here, so the sealed variant damages a bundle instead (its kind is in its folder).
    let victim: string;
    let code: string;
    let kind: string;
    if (encrypt) {
      victim = bundleKey;
      code = 'bundle-corrupt';
      kind = 'bundle';
    } else {
      const pack = (await manifest(c3)).snapshots.packs[0];
      victim = `${prefix()}blobs/${pack.sha256}.pack.gz`;
      code = 'pack-corrupt';
      kind = 'pack';
    }
    const original = await store.get(victim);
    const bad = Buffer.from(original);
    bad[Math.floor(bad.length / 2)]! ^= 0xff;
    await store.put(victim, bad);
    try {
      const quick = await offline(['check']);
      expect(quick.exitCode, explain(quick)).toBe(0);
      const run = await offline(['check', '--read-data']);
      expect(run.exitCode, explain(run)).toBe(1);
      const errors = (run.json.problems as Problem[]).filter((p) => p.severity === 'error');
      expect(errors).toEqual([expect.objectContaining({ code, kind, checkpoint: c3, checkpoints: [c3] })]);
      const human = await sessmig(box, ['check', '--read-data', '--worktree', worktree, '--remote', store.url], { cwd: box.workDir, env: env() });
      expect(human.exitCode).toBe(1);
      expect(human.stdout).toMatch(encrypt ? /error: checkpoint \S+ \(current\): code bundle / : /error: checkpoint \S+ \(current\): snapshot pack /);
    } finally {
      await store.put(victim, original);
    }
    const healed = await offline(['check', '--read-data']);
    expect(healed.exitCode, explain(healed)).toBe(0);
  });
});
