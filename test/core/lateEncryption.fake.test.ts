/**
 * Encryption turned on for a worktree that already has plaintext checkpoints, through the core with
 * the in-memory opencode (test/support/fakeOpencode.ts) and real parts for the rest: real git for
 * the code leg, a real LocalRemote under a real SealedRemote (age, keyed names). The first
 * encrypted push reuses the plaintext checkpoint's objects (its code chain here): each must be
 * sealed under its keyed name before the sealed manifest names it.
 */
import { execa } from 'execa';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { objectKey, objectsOf } from '../../src/core/checkpointObjects.js';
import type { Context } from '../../src/core/context.js';
import { pull } from '../../src/core/pull.js';
import { push } from '../../src/core/push.js';
import { readManifest, readPointer } from '../../src/core/remoteStore.js';
import { UserKey } from '../../src/crypto/keys.js';
import { SealedRemote } from '../../src/crypto/sealedRemote.js';
import { FakeWorld, worldPerTest, type FakeHost } from '../support/fakeWorld.js';
import { createRepo, gitEnv } from '../support/host.js';

import { WORKTREE_KEY } from '../support/fakeWorld.js';

const scene = worldPerTest();
let world: FakeWorld;
let a: FakeHost;
let b: FakeHost;
beforeEach(() => void ({ world, a, b } = scene));

/** A command's Context on `host`, with git's environment, through `remote` when given. */
async function on(host: FakeHost, remote?: Context['remote']): Promise<Context> {
  const ctx = await host.context();
  return { ...ctx, env: gitEnv(), ...(remote ? { remote } : {}) };
}

const git = async (cwd: string, args: string[]) => (await execa('git', args, { cwd, env: gitEnv(), extendEnv: false })).stdout.trim();

describe('the first encrypted push of a worktree with plaintext checkpoints', () => {
  it('seals the plaintext code chain it builds on; a host with the key pulls the code', async () => {
    expect((await a.context()).worktree.key).toBe(WORKTREE_KEY);
    await createRepo(a.root);
    await createRepo(b.root);
    await a.opencode.addSession({ directory: a.root, title: 'X' });
    await writeFile(path.join(a.root, 'notes.md'), 'plaintext era\n');
    await git(a.root, ['add', 'notes.md']);
    await git(a.root, ['commit', '-q', '--no-gpg-sign', '-m', 'work before encryption']);
    await push(await on(a), { code: true });

    const key = await UserKey.generate();
    const seal = async (host: FakeHost) =>
      SealedRemote.open(world.remote, key, WORKTREE_KEY, { tempDir: (await host.context()).tempDir, hostId: host.hostId, marker: undefined });
    await writeFile(path.join(a.root, 'notes.md'), 'plaintext era\nencrypted era\n'); // an unstaged edit: an increment on the plaintext chain
    const pushed = await push(await on(a, await seal(a)), { code: true });
    expect(pushed.code?.bundle).toBe('incremental');

    // Every object the sealed checkpoint names is there under its keyed name (none only in plaintext).
    const sealed = await seal(b);
    const manifest = await readManifest(sealed, WORKTREE_KEY, (await readPointer(sealed, WORKTREE_KEY))!.pointer.checkpoint);
    const objects = objectsOf(manifest);
    expect(objects.filter((object) => object.kind === 'bundle')).toHaveLength(2);
    for (const object of objects) {
      const stored = sealed.storedKey(objectKey(WORKTREE_KEY, object.kind, object.sha256));
      expect(stored, object.kind).toMatch(/\.age$/);
      expect(await world.remote.head(stored), `${object.kind} ${object.sha256} sealed`).toBeDefined();
      // …and its plaintext copy is gone once the sealed checkpoint is current: nothing readable stays.
      expect(await world.remote.head(objectKey(WORKTREE_KEY, object.kind, object.sha256)), `${object.kind} ${object.sha256} in plaintext`).toBeUndefined();
    }

    const pulled = await pull(await on(b, sealed), { code: true });
    expect(pulled.code?.head).toBe(await git(a.root, ['rev-parse', 'HEAD']));
    expect(await git(b.root, ['rev-parse', 'HEAD'])).toBe(await git(a.root, ['rev-parse', 'HEAD']));
    expect(await readFile(path.join(b.root, 'notes.md'), 'utf8')).toBe('plaintext era\nencrypted era\n');
  });
});
