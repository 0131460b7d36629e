/**
 * prune's and check's rules over every object kind (core/prune.ts, core/check.ts,
 * core/checkpointObjects.ts), against a real LocalRemote in a temp folder, plaintext and through a
 * real SealedRemote (age, keyed names): no processes, so the rules are tested case by case here and
 * end to end in test/e2e/pruneObjects.test.ts. The manifests are written by hand (the shapes
 * FORMAT.md, FORMAT-snapshots.md and FORMAT-code.md define); the objects are real gzip / bundle
 * bytes whose sizes and sha256 match what the manifests record.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRemote } from '../../src/core/check.js';
import { objectKey, type ObjectKind } from '../../src/core/checkpointObjects.js';
import { pruneRemote } from '../../src/core/prune.js';
import { UserKey } from '../../src/crypto/keys.js';
import { SealedRemote } from '../../src/crypto/sealedRemote.js';
import { serializeDocument } from '../../src/format/document.js';
import { checkpointKey, pointerKey } from '../../src/format/layout.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import type { Remote } from '../../src/remote/remote.js';

const WT = 'wt-objects';
const host = { hostId: '0f8fad5b-d9cb-469f-a165-70867728950e', hostname: 'laptop' };
const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface Stored {
  kind: ObjectKind;
  sha256: string;
  rawBytes: number;
  storedBytes: number;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-prune-unit-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Stores an object of `kind` through `remote` (sealed if it seals) and returns what a manifest records. */
async function put(remote: Remote, kind: ObjectKind, label: string): Promise<Stored> {
  const raw = Buffer.from(`${label} ${randomBytes(16).toString('hex')}\n`.repeat(20));
  const body = kind === 'bundle' ? raw : gzipSync(raw);
  const file = path.join(dir, `obj-${randomBytes(6).toString('hex')}`);
  await writeFile(file, body);
  const digest = sha(raw);
  await remote.putFile(objectKey(WT, kind, digest), file, body.length);
  return { kind, sha256: digest, rawBytes: raw.length, storedBytes: body.length };
}

function session(blob: Stored, outputs: Stored[]) {
  return {
    id: 'ses_0123456789abABCDEFGHIJKLMN',
    parentID: null,
    title: 't',
    directory: '/src',
    version: '1.18.33',
    sha256: blob.sha256,
    contentHash: 'b'.repeat(64),
    rawBytes: blob.rawBytes,
    storedBytes: blob.storedBytes,
    timeUpdated: 1,
    messages: 2,
    busy: false,
    ...(outputs.length > 0 ? { toolOutputs: outputs.map((o) => ({ path: `/data/tool-output/tool_${o.sha256.slice(0, 8)}`, ...pick(o) })) } : {}),
  };
}

const pick = (o: Stored) => ({ sha256: o.sha256, rawBytes: o.rawBytes, storedBytes: o.storedBytes });
const commit = (n: number) => n.toString(16).padStart(40, '0');

async function writeCheckpoint(remote: Remote, id: string, parent: string | null, parts: { blob: Stored; outputs: Stored[]; packs: Stored[]; bundles: Stored[] }): Promise<void> {
  const manifest = {
    formatVersion: 1,
    kind: 'sessmig.checkpoint',
    id,
    worktree: WT,
    parent,
    createdAt: '2026-11-25T21:46:17.123Z',
    source: { host, worktreeRoot: '/src', opencodeVersion: '1.18.33', sessmigVersion: '0.1.0' },
    sessions: [session(parts.blob, parts.outputs)],
    skipped: [],
    snapshots: { packs: parts.packs.map(pick), trees: [commit(1)] },
    code: {
      formatVersion: 1,
      objectFormat: 'sha1',
      branch: 'main',
      head: commit(2),
      index: commit(3),
      worktree: commit(4),
      indexTree: commit(5),
      worktreeTree: commit(6),
      lineage: [],
      bundles: parts.bundles.map((b, i) => ({ sha256: b.sha256, bytes: b.storedBytes, prerequisites: i === 0 ? [] : [commit(10 + i)], tips: [commit(20 + i)] })),
      submodules: [],
      lfsPointers: 0,
    },
  };
  await remote.put(checkpointKey(WT, id), serializeDocument(manifest));
}

async function writePointer(remote: Remote, checkpoint: string): Promise<void> {
  const at = '2026-11-25T21:46:17.123Z';
  await remote.put(pointerKey(WT), serializeDocument({ formatVersion: 1, kind: 'sessmig.pointer', worktree: WT, generation: 3, checkpoint, owner: host, updatedAt: at, updatedBy: host }));
}

const C = ['20261125T100000000Z-00000001', '20261125T110000000Z-00000002', '20261125T120000000Z-00000003'] as const;

describe.each([
  { name: 'a plaintext worktree', sealed: false },
  { name: 'an encrypted worktree (SealedRemote)', sealed: true },
])('prune and check over every object kind, $name', ({ sealed }) => {
  let remote: Remote;
  let plain: LocalRemote;
  const o: Record<string, Stored> = {};

  beforeAll(async () => {
    const root = await mkdtemp(path.join(dir, 'remote-'));
    plain = new LocalRemote(root, 'file://unit');
    remote = sealed
      ? await SealedRemote.open(plain, await UserKey.generate(), WT, { tempDir: await mkdtemp(path.join(dir, 'tmp-')), hostId: host.hostId, marker: undefined })
      : plain;
    for (const [name, kind] of [
      ['blob1', 'blob'],
      ['blob2', 'blob'],
      ['blob3', 'blob'],
      ['out1', 'out'],
      ['out3', 'out'],
      ['pack1', 'pack'],
      ['pack2', 'pack'],
      ['packOrphan', 'pack'],
      ['b1', 'bundle'],
      ['b2', 'bundle'],
      ['b3', 'bundle'],
      ['bundleOrphan', 'bundle'],
      ['outOrphan', 'out'],
    ] as const) {
      o[name] = await put(remote, kind, name);
    }
    // c1: chain [b1]; c2: [b1, b2]; c3 (current): [b1, b2, b3] — it needs b1 and b2 too.
    await writeCheckpoint(remote, C[0], null, { blob: o.blob1!, outputs: [o.out1!], packs: [o.pack1!], bundles: [o.b1!] });
    await writeCheckpoint(remote, C[1], C[0], { blob: o.blob2!, outputs: [o.out1!], packs: [o.pack1!, o.pack2!], bundles: [o.b1!, o.b2!] });
    await writeCheckpoint(remote, C[2], C[1], { blob: o.blob3!, outputs: [o.out3!], packs: [o.pack1!, o.pack2!], bundles: [o.b1!, o.b2!, o.b3!] });
    await writePointer(remote, C[2]);
    // A plaintext copy of a named pack in an encrypted worktree (what a late first encrypted push leaves): kept, no orphan.
    if (sealed) await plain.put(objectKey(WT, 'pack', o.pack1!.sha256), gzipSync('plaintext copy'));
  });

  const keyOf = (s: Stored) => {
    const key = objectKey(WT, s.kind, s.sha256);
    return remote.sealing ? remote.sealing.storedKey(key) : key;
  };
  const listed = async () => {
    const keys = new Set<string>();
    for await (const item of plain.list(`sessmig/v1/worktrees/${WT}/`)) keys.add(item.key);
    return keys;
  };

  it('check: every named object present, the unnamed ones are orphans by kind', async () => {
    const result = await checkRemote(remote, { worktrees: [WT], readData: true, jobs: 2 });
    // The hand-made blobs are no opencode exports: their content is not checked here (blob-mismatch).
    const problems = result.problems.filter((p) => p.kind !== 'blob');
    const orphans = problems.map((p) => [p.code, p.kind, p.key]).sort();
    expect(orphans).toEqual(
      (sealed
        ? [
            ['orphan-bundle', 'bundle', keyOf(o.bundleOrphan!)],
            ['orphan-sealed', 'sealed', keyOf(o.outOrphan!)],
            ['orphan-sealed', 'sealed', keyOf(o.packOrphan!)],
          ]
        : [
            ['orphan-bundle', 'bundle', keyOf(o.bundleOrphan!)],
            ['orphan-output', 'out', keyOf(o.outOrphan!)],
            ['orphan-pack', 'pack', keyOf(o.packOrphan!)],
          ]
      ).sort(),
    );
    const wt = result.worktrees[0]!;
    expect(wt.objects.bundle).toMatchObject({ referenced: 3, stored: 4, orphaned: 1, verified: 3, missing: 0 });
    expect(wt.objects.pack).toMatchObject({ referenced: 2, verified: 2 });
    expect(wt.objects.out).toMatchObject({ referenced: 2, verified: 2 });
    expect(wt.blobs).toMatchObject({ referenced: 3, stored: 3 });
    expect(wt.reserved).toBe(sealed ? 1 : 0); // the encryption marker
  });

  it('prune --keep-last 1: deletes what only c1 and c2 named and the orphans, keeps the whole chain c3 needs', async () => {
    const policy = { keepLast: 1, keepWithinMs: null, graceMs: 0 };
    const dry = await pruneRemote(remote, WT, { policy, dryRun: true, jobs: 2 });
    const doomed = [o.blob1!, o.blob2!, o.out1!, o.packOrphan!, o.outOrphan!, o.bundleOrphan!].map(keyOf).sort();
    expect(dry.deletedObjects.map((d) => d.key).sort()).toEqual(doomed);
    expect(dry.deleted).toEqual({ checkpoints: 2, blobs: sealed ? 0 : 2 });
    if (sealed) expect(dry.objects.sealed.deleted).toBe(5);
    else expect([dry.objects.blob.deleted, dry.objects.out.deleted, dry.objects.pack.deleted, dry.objects.bundle.deleted]).toEqual([2, 2, 1, 1]);
    expect(dry.objects.bundle).toMatchObject({ referenced: 3, deleted: 1 });
    const before = await listed();

    const run = await pruneRemote(remote, WT, { policy, dryRun: false, jobs: 2 });
    expect(run.deletedObjects).toEqual(dry.deletedObjects);
    const after = await listed();
    const gone = [...before].filter((k) => !after.has(k)).sort();
    expect(gone).toEqual([...doomed, checkpointKey(WT, C[0]), checkpointKey(WT, C[1])].sort());
    for (const kept of [o.blob3!, o.out3!, o.pack1!, o.pack2!, o.b1!, o.b2!, o.b3!]) expect(after.has(keyOf(kept))).toBe(true);
    if (sealed) expect(after.has(objectKey(WT, 'pack', o.pack1!.sha256))).toBe(true);

    const check = await checkRemote(remote, { worktrees: [WT], readData: false, jobs: 2 });
    expect(check.problems.map((p) => p.code)).toEqual(['parent-missing']);
  });

  it('check: a missing pack is a warning (pull imports without it), a missing bundle of the chain and a damaged pack are errors', async () => {
    const packKey = keyOf(o.pack1!);
    const packSaved = (await plain.get(packKey, 1 << 20))!.body;
    await plain.delete(packKey);
    const gone = await checkRemote(remote, { worktrees: [WT], readData: false, jobs: 1 });
    expect(gone.ok).toBe(true);
    expect(gone.problems).toContainEqual(expect.objectContaining({ severity: 'warning', code: 'pack-missing', kind: 'pack', checkpoints: [C[2]] }));
    await plain.put(packKey, packSaved);

    const bundle = keyOf(o.b1!);
    const saved = await plain.get(bundle, 1 << 20);
    await plain.delete(bundle);
    const missing = await checkRemote(remote, { worktrees: [WT], readData: false, jobs: 1 });
    expect(missing.ok).toBe(false);
    expect(missing.problems.filter((p) => p.severity === 'error')).toEqual([
      expect.objectContaining({ code: 'bundle-missing', kind: 'bundle', key: objectKey(WT, 'bundle', o.b1!.sha256), checkpoint: C[2], checkpoints: [C[2]], session: null }),
    ]);
    await plain.put(bundle, saved!.body);

    const pack = keyOf(o.pack2!);
    const body = (await plain.get(pack, 1 << 20))!.body;
    const bad = Buffer.from(body);
    bad[bad.length - 5]! ^= 0xff;
    await plain.put(pack, bad);
    const damaged = await checkRemote(remote, { worktrees: [WT], readData: true, jobs: 1 });
    expect(damaged.problems.filter((p) => p.severity === 'error' && p.kind !== 'blob')).toEqual([
      expect.objectContaining({ code: 'pack-corrupt', kind: 'pack', key: objectKey(WT, 'pack', o.pack2!.sha256), checkpoints: [C[2]] }),
    ]);
    await plain.put(pack, body);
  });

  it('a kept checkpoint whose code part is malformed: prune deletes nothing; check reports it as a finding', async () => {
    const key = checkpointKey(WT, C[2]);
    const original = (await remote.get(key, 1 << 24))!.body;
    const doc = JSON.parse(original.toString('utf8'));
    doc.code.bundles = 'not a list';
    await remote.put(key, serializeDocument(doc));
    try {
      await expect(pruneRemote(remote, WT, { policy: { keepLast: 1, keepWithinMs: null, graceMs: 0 }, dryRun: false, jobs: 1 })).rejects.toMatchObject({ code: 'prune-unreadable' });
      const check = await checkRemote(remote, { worktrees: [WT], readData: false, jobs: 1 });
      expect(check.problems).toContainEqual(expect.objectContaining({ severity: 'error', code: 'code-state-malformed', checkpoint: C[2] }));
    } finally {
      await remote.put(key, original);
    }
  });
});
