import { execa } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addSnapshotPack,
  ensureSnapshotRepo,
  opencodeDataDir,
  packSnapshotObjects,
  presentObjects,
  snapshotGitDirs,
  worktreeHash,
} from '../../src/opencode/snapshots.js';

describe('where opencode keeps a worktree\'s snapshot repository (measured per version)', () => {
  const data = '/d/opencode';
  it('per worktree from 1.14.41, per project up to 1.3.2, both in between', () => {
    const perWorktree = path.join(data, 'snapshot', 'pid', worktreeHash('/w/app'));
    expect(snapshotGitDirs(data, 'pid', '/w/app', '1.18.33')).toEqual([perWorktree]);
    expect(snapshotGitDirs(data, 'pid', '/w/app', '1.14.41')).toEqual([perWorktree]);
    expect(snapshotGitDirs(data, 'pid', '/w/app', '1.3.2')).toEqual([path.join(data, 'snapshot', 'pid')]);
    expect(snapshotGitDirs(data, 'pid', '/w/app', '1.10.0')).toEqual([perWorktree, path.join(data, 'snapshot', 'pid')]);
  });
  it('the data dir follows XDG_DATA_HOME, else ~/.local/share', () => {
    expect(opencodeDataDir({ XDG_DATA_HOME: '/x', HOME: '/h' })).toBe('/x/opencode');
    expect(opencodeDataDir({ HOME: '/h' })).toBe('/h/.local/share/opencode');
  });
});

describe('packing and adding snapshot objects (real git)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-snap-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('packs only what the held trees do not reach, and a new repository takes the packs', async () => {
    const work = path.join(dir, 'work');
    const source = path.join(dir, 'src.git');
    await ensureSnapshotRepo(source, (await execa('mkdir', ['-p', work]), work));
    const git = (args: string[]) => execa('git', ['--git-dir', source, '--work-tree', work, ...args], { cwd: work });
    await writeFile(path.join(work, 'a.txt'), 'one\n');
    await git(['add', '.']);
    const t1 = (await git(['write-tree'])).stdout.trim();
    await writeFile(path.join(work, 'a.txt'), 'two\n');
    await git(['add', '.']);
    const t2 = (await git(['write-tree'])).stdout.trim();
    expect((await execa('git', ['--git-dir', source, 'config', 'core.autocrlf'])).stdout).toBe('false');

    const first = path.join(dir, '1.pack');
    expect(await packSnapshotObjects(source, [t1], [], first)).toBe(2); // tree + blob
    const second = path.join(dir, '2.pack');
    expect(await packSnapshotObjects(source, [t2], [t1], second)).toBe(2); // only the new tree and blob
    expect(await packSnapshotObjects(source, [t1], [t1], path.join(dir, '3.pack'))).toBe(0);

    const destination = path.join(dir, 'dst', 'snapshot', 'pid', 'h');
    await ensureSnapshotRepo(destination, work);
    expect(await presentObjects(destination, [t1, t2])).toEqual(new Set());
    await addSnapshotPack(destination, first);
    await addSnapshotPack(destination, second);
    expect(await presentObjects(destination, [t1, t2])).toEqual(new Set([t1, t2]));
    const shown = await execa('git', ['--git-dir', destination, 'show', `${t1}:a.txt`]);
    expect(shown.stdout).toBe('one');
  });
});
