/**
 * What the local-folder remote writes is private whatever the umask (files 0600, folders 0700),
 * except under a root made group-writable on purpose, whose group keeps its rights; other users
 * never get any. Runs in a forked worker, so changing the umask here touches nothing else.
 */
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalRemote } from '../../src/remote/localRemote.js';

let scratch: string;
let saved: number;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sessmig-modes-'));
  saved = process.umask();
});
afterEach(() => void process.umask(saved));
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Every file and folder below root (root included), as `mode path`. */
async function modes(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (full: string, rel: string) => {
    const info = await stat(full);
    out.set(rel || '.', (info.mode & 0o7777).toString(8).padStart(4, '0'));
    if (info.isDirectory()) for (const name of await readdir(full)) await visit(path.join(full, name), rel ? `${rel}/${name}` : name);
  };
  await visit(root, '');
  return out;
}

/** Writes through every write path: plain put, create-if-absent put (lock folder), compare-and-swap put, putFile. */
async function writeEverything(remote: LocalRemote, source: string): Promise<void> {
  const wt = 'sessmig/v1/worktrees/app';
  const { etag } = await remote.put(`${wt}/HEAD.json`, Buffer.from('{"generation":1}'), { ifNoneMatch: true });
  await remote.put(`${wt}/HEAD.json`, Buffer.from('{"generation":2}'), { ifMatch: etag });
  await remote.put(`${wt}/checkpoints/c1.json`, Buffer.from('{"title":"secret"}'));
  await remote.putFile(`${wt}/blobs/${'a'.repeat(64)}.json.gz`, source, 5);
}

describe('local-folder remote modes', () => {
  it('umask 000, a root that does not exist yet: the root, its missing parents and everything below are 0700 / 0600', async () => {
    const source = path.join(scratch, 'blob-0644');
    await writeFile(source, 'bytes', { mode: 0o644 });
    await chmod(source, 0o644);
    process.umask(0o000);
    const parent = path.join(scratch, 'fresh', 'deeper');
    const root = path.join(parent, 'remote');
    await writeEverything(new LocalRemote(root, 'file://test'), source);
    const found = await modes(path.join(scratch, 'fresh'));
    expect([...found.keys()]).toContain('deeper/remote/sessmig/v1/worktrees/app/blobs');
    for (const [rel, mode] of found) {
      const isFile = rel.endsWith('.json') || rel.endsWith('.gz');
      expect(`${mode} ${rel}`).toBe(`${isFile ? '0600' : '0700'} ${rel}`);
    }
  });

  it('umask 022, a root made by mkdir (0755): private all the same, and exposed() names nothing', async () => {
    const source = path.join(scratch, 'blob-b');
    await writeFile(source, 'bytes');
    process.umask(0o022);
    const root = path.join(scratch, 'plain');
    await mkdir(root, { mode: 0o755 });
    const remote = new LocalRemote(root, 'file://test');
    await writeEverything(remote, source);
    const found = await modes(root);
    found.delete('.');
    for (const [rel, mode] of found) expect(`${mode} ${rel}`).toBe(`${rel.includes('.') ? '0600' : '0700'} ${rel}`);
    expect(await remote.exposed('sessmig/v1/')).toEqual([]);
    // What an older sessmig (or a hand) left open is named, folders with a trailing slash.
    await chmod(path.join(root, 'sessmig/v1/worktrees/app/checkpoints/c1.json'), 0o644);
    await chmod(path.join(root, 'sessmig/v1'), 0o755);
    await chmod(path.join(root, 'sessmig/v1/worktrees/app/HEAD.json'), 0o640);
    expect(await remote.exposed('sessmig/v1/worktrees/app/')).toEqual([
      { key: 'sessmig/v1/', folder: true, mode: 0o755, who: 'others' },
      { key: 'sessmig/v1/worktrees/app/HEAD.json', folder: false, mode: 0o640, who: 'group' },
      { key: 'sessmig/v1/worktrees/app/checkpoints/c1.json', folder: false, mode: 0o644, who: 'others' },
    ]);
  });

  it('umask 000, a group-shared root (2770): the group keeps read/write, other users get nothing', async () => {
    const source = path.join(scratch, 'blob-c');
    await writeFile(source, 'bytes');
    process.umask(0o000);
    const root = path.join(scratch, 'shared');
    await mkdir(root);
    await chmod(root, 0o2770);
    const remote = new LocalRemote(root, 'file://test');
    await writeEverything(remote, source);
    const found = await modes(root);
    expect(found.get('.')).toBe('2770');
    for (const [rel, mode] of found) expect(`${mode} ${rel}`).toBe(`${rel === '.' || !rel.includes('.') ? '2770' : '0660'} ${rel}`);
    expect(await remote.exposed('sessmig/v1/')).toEqual([]);
    // Group rights are what the root grants; anything for other users is exposure.
    await chmod(path.join(root, 'sessmig/v1/worktrees/app/HEAD.json'), 0o664);
    expect(await remote.exposed('sessmig/v1/')).toEqual([{ key: 'sessmig/v1/worktrees/app/HEAD.json', folder: false, mode: 0o664, who: 'others' }]);
  });

  it('a world-writable root (0777) and a group-readable but not group-writable root (0750) are private; 2775 grants the group only', async () => {
    const source = path.join(scratch, 'blob-d');
    await writeFile(source, 'bytes');
    process.umask(0o000);
    for (const [name, rootMode] of [['open', 0o777], ['readable', 0o750]] as const) {
      const root = path.join(scratch, name);
      await mkdir(root);
      await chmod(root, rootMode);
      await writeEverything(new LocalRemote(root, 'file://test'), source);
      const found = await modes(root);
      found.delete('.');
      for (const [rel, mode] of found) expect(`${mode} ${rel}`).toBe(`${rel.includes('.') ? '0600' : '0700'} ${rel}`);
    }
    const root = path.join(scratch, 'project');
    await mkdir(root);
    await chmod(root, 0o2775);
    await writeEverything(new LocalRemote(root, 'file://test'), source);
    const found = await modes(root);
    found.delete('.');
    for (const [rel, mode] of found) expect(`${mode} ${rel}`).toBe(`${rel.includes('.') ? '0660' : '2770'} ${rel}`);
  });
});
