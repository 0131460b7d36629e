/**
 * A content-addressed object already in the remote with another stored size (the same session
 * compressed at another gzip level, by an older sessmig) is reused, never overwritten: manifests
 * that name it record its stored size, and pull checks that size strictly. In-memory opencode
 * (test/support/fakeOpencode.ts), real LocalRemote, real gzip.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { beforeEach, describe, expect, it } from 'vitest';
import { blobKey, checkpointKey } from '../../src/format/layout.js';
import { readManifest } from '../../src/core/remoteStore.js';
import { FakeWorld, worldPerTest, WORKTREE_KEY, type FakeHost } from '../support/fakeWorld.js';

const scene = worldPerTest();
let world: FakeWorld;
let a: FakeHost;
let b: FakeHost;
beforeEach(() => void ({ world, a, b } = scene));

describe('storing a blob whose content the remote has, compressed otherwise', () => {
  it('reuses the stored object and records its size; the older checkpoint still pulls', async () => {
    const x = await a.opencode.addSession({ directory: a.root, title: 'X', messages: 6 });
    const first = await a.push();
    const c1 = first.checkpoint!;
    const entry = (await readManifest(world.remote, WORKTREE_KEY, c1)).sessions.find((session) => session.id === x)!;
    // What an older sessmig (another gzip level) left: the same content, another size, and C1 naming that size.
    const objectFile = path.join(world.remote.root, blobKey(WORKTREE_KEY, entry.sha256));
    const older = gzipSync(gunzipSync(await readFile(objectFile)), { level: 9 });
    expect(older.length).not.toBe(entry.storedBytes);
    await writeFile(objectFile, older);
    const manifestFile = path.join(world.remote.root, checkpointKey(WORKTREE_KEY, c1));
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
    manifest.sessions.find((session: { id: string }) => session.id === x).storedBytes = older.length;
    await writeFile(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);

    // This host lost its sync state: the push exports X again, byte for byte the same.
    await rm(path.join(a.dir, 'state'), { recursive: true, force: true });
    await a.opencode.addSession({ directory: a.root, title: 'Y' });
    const second = await a.push();
    const c2 = second.checkpoint!;
    expect(c2).not.toBe(c1);
    expect(await readFile(objectFile)).toEqual(older); // not overwritten
    const again = (await readManifest(world.remote, WORKTREE_KEY, c2)).sessions.find((session) => session.id === x)!;
    expect(again).toMatchObject({ sha256: entry.sha256, storedBytes: older.length });

    const pulledOld = await b.pull({ checkpoint: c1 });
    expect(pulledOld.sessions.find((session) => session.id === x)?.action).toBe('new');
    const pulledNew = await b.pull();
    expect(pulledNew.sessions.every((session) => session.action !== 'refused')).toBe(true);
    expect(b.opencode.sessions.has(x)).toBe(true);
  });
});
