import { chmod, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCode, bundlesNeeded } from '../../src/code/apply.js';
import { captureCode, type CapturedCode } from '../../src/code/capture.js';
import { undoCode } from '../../src/code/codeBackup.js';
import { fetchCodeLeg, storeCodeLeg } from '../../src/code/codeStore.js';
import { compareCode } from '../../src/code/codeStatus.js';
import { CodeState } from '../../src/format/codeSchema.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { codeSnapshot, gitIn, gitState, makeSandbox, readFiles } from './gitFixture.js';

const WORKTREE = 'code-roundtrip';

describe('code leg: laptop → box → laptop with real git', () => {
  let sandbox: Awaited<ReturnType<typeof makeSandbox>>;
  let laptop: string;
  let box: string;
  let remote: LocalRemote;
  let temp: (name: string) => Promise<string>;

  beforeAll(async () => {
    sandbox = await makeSandbox();
    laptop = path.join(sandbox.dir, 'laptop');
    box = path.join(sandbox.dir, 'box');
    remote = new LocalRemote(path.join(sandbox.dir, 'remote'), 'file://remote');
    let n = 0;
    temp = async (name) => {
      const dir = path.join(sandbox.dir, 'tmp', `${name}-${n++}`);
      await mkdir(dir, { recursive: true });
      return dir;
    };
    const git = gitIn(sandbox.dir, sandbox.env);
    await git('init', '-q', '-b', 'main', laptop);
    const lg = gitIn(laptop, sandbox.env);
    await writeFile(path.join(laptop, '.gitignore'), '*.log\nbuild/\n');
    await writeFile(path.join(laptop, 'a.txt'), 'alpha\n');
    await mkdir(path.join(laptop, 'dir'));
    await writeFile(path.join(laptop, 'dir', 'b.txt'), 'bravo\nline 2\n');
    await writeFile(path.join(laptop, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    await writeFile(path.join(laptop, 'plain.sh'), '#!/bin/sh\necho plain\n');
    await symlink('a.txt', path.join(laptop, 'link-a'));
    await writeFile(path.join(laptop, 'old-name.txt'), 'to be renamed\n'.repeat(20));
    await writeFile(path.join(laptop, 'doomed.txt'), 'deleted later\n');
    await writeFile(path.join(laptop, 'staged-delete.txt'), 'deleted and staged\n');
    await writeFile(path.join(laptop, 'image.bin'), Buffer.from([0, 1, 2, 255, 254, 0, 10, 13, 0]));
    await lg('add', '-A');
    await lg('commit', '-q', '-m', 'first');
    // The box is a clone made now: the laptop's later commits are not on it.
    await git('clone', '-q', laptop, box);
  });
  afterAll(async () => sandbox.cleanup());

  let first: CapturedCode;

  it('captures HEAD, index and working tree without touching the index, stash or refs', async () => {
    const lg = gitIn(laptop, sandbox.env);
    await writeFile(path.join(laptop, 'a.txt'), 'alpha v2\n');
    await lg('commit', '-q', '-am', 'second: the box lacks it');
    await writeFile(path.join(laptop, 'a.txt'), 'alpha v3 staged\n');
    await lg('add', 'a.txt');
    await writeFile(path.join(laptop, 'a.txt'), 'alpha v4 staged then edited\n');
    await writeFile(path.join(laptop, 'dir', 'b.txt'), 'bravo\nline 2 unstaged\n');
    await writeFile(path.join(laptop, 'untracked.txt'), 'new and untracked\n');
    await mkdir(path.join(laptop, 'newdir', 'deep'), { recursive: true });
    await writeFile(path.join(laptop, 'newdir', 'deep', 'x.md'), '# deep\n');
    await rm(path.join(laptop, 'doomed.txt'));
    await lg('rm', '-q', 'staged-delete.txt');
    await lg('mv', 'old-name.txt', 'new-name.txt');
    await chmod(path.join(laptop, 'plain.sh'), 0o755);
    await symlink('dir/b.txt', path.join(laptop, 'link-b'));
    await writeFile(path.join(laptop, 'image.bin'), Buffer.from([0, 0, 0, 1, 2, 3, 255, 0, 7]));
    await writeFile(path.join(laptop, 'secret.log'), 'ignored: must not travel\n');
    await mkdir(path.join(laptop, 'build'));
    await writeFile(path.join(laptop, 'build', 'out.o'), 'ignored dir\n');
    await lg('stash', 'list');

    const before = await gitState(laptop, sandbox.env);
    first = await captureCode(laptop, { tempDir: await temp('capture'), env: sandbox.env });
    expect(await gitState(laptop, sandbox.env)).toEqual(before);
    expect(CodeState.parse(JSON.parse(JSON.stringify(first.state)))).toEqual(first.state);
    expect(first.state.branch).toBe('main');
    expect(first.state.head).toBe((await lg('rev-parse', 'HEAD')).trim());
    expect(first.newBundles).toHaveLength(1);
    expect(first.newBundles[0]!.prerequisites).toEqual([]);
    // Nothing ignored in the working-tree commit.
    const tree = await lg('ls-tree', '-r', '--name-only', first.state.worktree);
    expect(tree).toContain('untracked.txt');
    expect(tree).not.toContain('secret.log');
    expect(tree).not.toContain('build/out.o');
  });

  it('stores through the local remote, then the box gets exactly the laptop state', async () => {
    const stored = await storeCodeLeg(remote, WORKTREE, first);
    expect(stored.uploadedBytes).toBe(first.newBundles[0]!.bytes);
    const again = await storeCodeLeg(remote, WORKTREE, first);
    expect(again.uploadedBytes).toBe(0);

    const needed = await bundlesNeeded(box, first.state, sandbox.env);
    const fetched = await fetchCodeLeg(remote, WORKTREE, first.state, await temp('fetch'), needed);
    const result = await applyCode(box, first.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect(result.created).toBe(false);
    const ignored = (rel: string) => rel === 'secret.log' || rel.startsWith('build');
    const source = await codeSnapshot(laptop, sandbox.env, ignored);
    const dest = await codeSnapshot(box, sandbox.env);
    expect(dest).toEqual(source);
    expect(source.status).toContain('R  old-name.txt -> new-name.txt');
    expect(source.cached).not.toBe('');
    expect(source.diff).not.toBe('');
    // Ignored files stayed home.
    expect(Object.keys(await readFiles(box))).not.toContain('secret.log');
    // No private refs left on either side.
    expect(await gitIn(laptop, sandbox.env)('for-each-ref', 'refs/sessmig/capture')).toBe('');
    // What `sessmig status` asks: both hold the checkpoint's code, until one changes.
    expect((await compareCode(box, first.state, { tempDir: await temp('status'), env: sandbox.env })).same).toBe(true);
    expect((await compareCode(laptop, first.state, { tempDir: await temp('status'), env: sandbox.env })).same).toBe(true);
    await writeFile(path.join(box, 'scratch-on-box.txt'), 'x\n');
    expect(await compareCode(box, first.state, { tempDir: await temp('status'), env: sandbox.env })).toEqual({ same: false, head: true, branch: true, index: true, worktree: false });
    await rm(path.join(box, 'scratch-on-box.txt'));
  });

  it('box → laptop: new commit and edits on the box, a small incremental bundle, the laptop gets them', async () => {
    const bg = gitIn(box, sandbox.env);
    await bg('commit', '-q', '-m', 'box commits the staged work');
    await writeFile(path.join(box, 'dir', 'b.txt'), 'bravo\nline 2 box edit\n');
    await writeFile(path.join(box, 'box-only.txt'), 'made on the box\n');
    const boxCapture = await captureCode(box, { tempDir: await temp('capture'), base: first.state, env: sandbox.env });
    expect(boxCapture.state.bundles).toHaveLength(2);
    expect(boxCapture.newBundles[0]!.prerequisites.length).toBeGreaterThan(0);
    expect(boxCapture.newBundles[0]!.bytes).toBeLessThan(2_000);
    expect(boxCapture.state.lineage[0]).toMatchObject({ head: first.state.head, worktreeTree: first.state.worktreeTree });
    await storeCodeLeg(remote, WORKTREE, boxCapture);

    // The laptop still holds the state it handed over (with its ignored files): not refused.
    const needed = await bundlesNeeded(laptop, boxCapture.state, sandbox.env);
    expect(needed.map((b) => b.sha256)).toEqual([boxCapture.state.bundles[1]!.sha256]);
    const fetched = await fetchCodeLeg(remote, WORKTREE, boxCapture.state, await temp('fetch'), needed);
    const before = { git: await gitState(laptop, sandbox.env), files: await readFiles(laptop) };
    const backupDir = await temp('backup');
    const applied = await applyCode(laptop, boxCapture.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir, env: sandbox.env });
    const ignored = (rel: string) => rel === 'secret.log' || rel.startsWith('build');
    expect(await codeSnapshot(laptop, sandbox.env, ignored)).toEqual(await codeSnapshot(box, sandbox.env));
    // Undo gives the handed-over state back byte for byte; then apply again.
    await undoCode(applied.backup, { backupDir, tempDir: await temp('undo'), env: sandbox.env });
    expect({ git: await gitState(laptop, sandbox.env), files: await readFiles(laptop) }).toEqual(before);
    await applyCode(laptop, boxCapture.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect(await codeSnapshot(laptop, sandbox.env, ignored)).toEqual(await codeSnapshot(box, sandbox.env));
    const files = await readFiles(laptop);
    expect(Buffer.from(files['secret.log']!.content, 'base64').toString()).toBe('ignored: must not travel\n');
  });

  it('the box amends the handed-over commit: the laptop takes the rewritten branch back; another diverged branch is refused', async () => {
    const bg = gitIn(box, sandbox.env);
    const lg = gitIn(laptop, sandbox.env);
    // Hand over from the laptop (its current state), the box applies it…
    const handOver = await captureCode(laptop, { tempDir: await temp('capture'), env: sandbox.env });
    await storeCodeLeg(remote, WORKTREE, handOver);
    let fetched = await fetchCodeLeg(remote, WORKTREE, handOver.state, await temp('fetch'), await bundlesNeeded(box, handOver.state, sandbox.env));
    await applyCode(box, handOver.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    // …and rewrites the laptop's last commit.
    await bg('commit', '-q', '--amend', '-m', 'amended on the box');
    const amended = await captureCode(box, { tempDir: await temp('capture'), base: handOver.state, env: sandbox.env });
    await storeCodeLeg(remote, WORKTREE, amended);
    fetched = await fetchCodeLeg(remote, WORKTREE, amended.state, await temp('fetch'), await bundlesNeeded(laptop, amended.state, sandbox.env));
    await applyCode(laptop, amended.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect((await lg('log', '-1', '--format=%s')).trim()).toBe('amended on the box');

    // A commit the laptop made after the hand-over is local work: refused.
    const onLaptop = await captureCode(laptop, { tempDir: await temp('capture'), env: sandbox.env });
    await lg('commit', '-q', '-am', 'laptop-only work').catch(() => lg('commit', '-q', '--allow-empty', '-m', 'laptop-only work'));
    const error = await applyCode(laptop, handOver.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env }).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe('code-destination-dirty');
    expect((error as Error).message).toContain('branch main');
    await lg('reset', '-q', '--soft', 'HEAD~1');
    expect(onLaptop.state.head).toBe((await lg('rev-parse', 'HEAD')).trim());
  });

  it('a detached HEAD travels as detached, into an empty folder (a fresh box)', async () => {
    const lg = gitIn(laptop, sandbox.env);
    await lg('checkout', '-q', '--detach');
    await writeFile(path.join(laptop, 'detached-edit.txt'), 'while detached\n');
    const captured = await captureCode(laptop, { tempDir: await temp('capture'), env: sandbox.env });
    expect(captured.state.branch).toBeNull();
    await storeCodeLeg(remote, WORKTREE, captured);
    const fresh = path.join(sandbox.dir, 'fresh-box');
    await mkdir(fresh);
    const fetched = await fetchCodeLeg(remote, WORKTREE, captured.state, await temp('fetch'), await bundlesNeeded(fresh, captured.state, sandbox.env));
    const result = await applyCode(fresh, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect(result.created).toBe(true);
    const ignored = (rel: string) => rel === 'secret.log' || rel.startsWith('build');
    expect(await codeSnapshot(fresh, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env, ignored));
    // A checkout with no commit yet (git init only) is a checkout too.
    const unborn = path.join(sandbox.dir, 'unborn');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', unborn);
    await applyCode(unborn, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect(await codeSnapshot(unborn, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env, ignored));
    // A missing folder works the same way.
    const missing = path.join(sandbox.dir, 'missing', 'box');
    await applyCode(missing, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env });
    expect(await codeSnapshot(missing, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env, ignored));
  });
});
