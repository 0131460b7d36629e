import { randomBytes } from 'node:crypto';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCode, bundlesNeeded } from '../../src/code/apply.js';
import { captureCode } from '../../src/code/capture.js';
import { fetchCodeLeg, storeCodeLeg } from '../../src/code/codeStore.js';
import { SessmigError } from '../../src/util/errors.js';
import { codeBundleKey } from '../../src/format/codeLayout.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { codeSnapshot, gitIn, gitState, makeSandbox, readFiles } from './gitFixture.js';

describe('code leg: incremental size, caps, submodules, LFS, includes, damaged bundles', () => {
  let sandbox: Awaited<ReturnType<typeof makeSandbox>>;
  let repo: string;
  let remote: LocalRemote;
  const temp = (name: string) => sandbox.temp(name);

  beforeAll(async () => {
    sandbox = await makeSandbox();
    repo = path.join(sandbox.dir, 'repo');
    remote = new LocalRemote(path.join(sandbox.dir, 'remote'), 'file://remote');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'main', repo);
    // 300 incompressible files of 8 KiB (2.4 MB), a third of them untracked.
    for (let i = 0; i < 300; i++) {
      await mkdir(path.join(repo, `d${i % 10}`), { recursive: true });
      await writeFile(path.join(repo, `d${i % 10}`, `f${i}.bin`), randomBytes(8192));
    }
    const git = gitIn(repo, sandbox.env);
    await git('add', ':(glob)d[0-6]/**');
    await git('commit', '-q', '-m', 'files');
  });
  afterAll(async () => sandbox.cleanup());

  it('a one-file change after a first transfer makes a small incremental bundle', async () => {
    const first = await captureCode(repo, { tempDir: await temp('c'), env: sandbox.env });
    expect(first.newBundles[0]!.bytes).toBeGreaterThan(2_400_000);
    await storeCodeLeg(remote, 'limits', first);
    const box = path.join(sandbox.dir, 'box');
    const all = await fetchCodeLeg(remote, 'limits', first.state, await temp('f'));
    await applyCode(box, first.state, { bundleFiles: all.files, tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });

    // One untracked file edited: the increment holds that file's 8 KiB and a few trees and commits.
    await writeFile(path.join(repo, 'd8', 'f8.bin'), randomBytes(8192));
    const second = await captureCode(repo, { tempDir: await temp('c'), base: first.state, env: sandbox.env });
    const increment = second.newBundles[0]!;
    expect(increment.bytes).toBeGreaterThan(8192);
    expect(increment.bytes).toBeLessThan(12_000);
    expect(second.state.bundles.map((b) => b.sha256)).toEqual([first.state.bundles[0]!.sha256, increment.sha256]);
    const stored = await storeCodeLeg(remote, 'limits', second);
    expect(stored.uploadedBytes).toBe(increment.bytes);
    expect(stored.reused).toEqual([first.state.bundles[0]!.sha256]);

    // The box downloads only the increment.
    const needed = await bundlesNeeded(box, second.state, sandbox.env);
    expect(needed.map((b) => b.sha256)).toEqual([increment.sha256]);
    const fetched = await fetchCodeLeg(remote, 'limits', second.state, await temp('f'), needed);
    expect(fetched.downloadedBytes).toBe(increment.bytes);
    await applyCode(box, second.state, { bundleFiles: fetched.files, tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });
    expect(await codeSnapshot(box, sandbox.env)).toEqual(await codeSnapshot(repo, sandbox.env));

    // Nothing changed: no new bundle at all.
    const third = await captureCode(repo, { tempDir: await temp('c'), base: second.state, env: sandbox.env });
    expect(third.newBundles).toEqual([]);
    expect(third.state.bundles).toEqual(second.state.bundles);
  });

  it('capture from a subfolder is the capture of the whole checkout; a checkout reached through a symlink is one', async () => {
    const whole = await captureCode(repo, { tempDir: await temp('c'), env: sandbox.env });
    const fromSub = await captureCode(path.join(repo, 'd3'), { tempDir: await temp('c'), env: sandbox.env });
    expect({ head: fromSub.state.head, index: fromSub.state.index, worktree: fromSub.state.worktree }).toEqual({ head: whole.state.head, index: whole.state.index, worktree: whole.state.worktree });
    await storeCodeLeg(remote, 'symlink', whole);
    const real = path.join(sandbox.dir, 'real-box');
    const all = await fetchCodeLeg(remote, 'symlink', whole.state, await temp('f'));
    await applyCode(real, whole.state, { bundleFiles: all.files, tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });
    const link = path.join(sandbox.dir, 'link-to-box');
    await symlink(real, link);
    expect(await bundlesNeeded(link, whole.state, sandbox.env)).toEqual([]);
    await applyCode(link, whole.state, { bundleFiles: new Map(), tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });
    expect(await codeSnapshot(real, sandbox.env)).toEqual(await codeSnapshot(repo, sandbox.env));
  });

  it('over the size cap: code-too-large naming the flag, and nothing left behind', async () => {
    const before = await gitState(repo, sandbox.env);
    const tempDir = await temp('c');
    const error = await captureCode(repo, { tempDir, maxBytes: 100_000, env: sandbox.env }).catch((e: unknown) => e);
    expect((error as SessmigError).code).toBe('code-too-large');
    expect((error as SessmigError).hint).toContain('--code-max-bytes');
    expect(await gitState(repo, sandbox.env)).toEqual(before);
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('submodules travel as gitlinks and LFS-marked files as they are, each with a warning; sessmig.codeInclude carries an ignored file', async () => {
    const src = path.join(sandbox.dir, 'src');
    const git = gitIn(src, sandbox.env);
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'main', src);
    await writeFile(path.join(src, '.gitignore'), '.env\n*.tmp\n');
    await writeFile(path.join(src, '.gitattributes'), '*.psd filter=lfs diff=lfs merge=lfs -text\n');
    await writeFile(path.join(src, 'art.psd'), 'version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n');
    await git('add', '-A');
    await git('update-index', '--add', '--cacheinfo', `160000,${'a'.repeat(40)},vendor/lib`);
    await git('commit', '-q', '-m', 'with a submodule and an LFS file');
    // An uninitialised submodule: an empty folder at the gitlink's path, as `git clone` leaves it.
    await mkdir(path.join(src, 'vendor', 'lib'), { recursive: true });
    await writeFile(path.join(src, '.env'), 'TOKEN=carried on purpose\n');
    await writeFile(path.join(src, 'scratch.tmp'), 'stays home\n');
    await git('config', '--add', 'sessmig.codeInclude', '.env');
    await git('config', '--add', 'sessmig.codeInclude', 'nothing-matches-this');
    const captured = await captureCode(src, { tempDir: await temp('c'), env: sandbox.env });
    expect(captured.state.submodules).toEqual([{ path: 'vendor/lib', commit: 'a'.repeat(40) }]);
    expect(captured.state.lfsPointers).toBe(1);
    expect(captured.warnings.join('\n')).toMatch(/submodule.*vendor\/lib.*gitlinks/);
    expect(captured.warnings.join('\n')).toMatch(/1 path\(s\) are marked for git-lfs/);
    expect(captured.warnings.join('\n')).toContain('nothing-matches-this');

    await storeCodeLeg(remote, 'extras', captured);
    const dest = path.join(sandbox.dir, 'extras-box');
    const fetched = await fetchCodeLeg(remote, 'extras', captured.state, await temp('f'));
    await applyCode(dest, captured.state, { bundleFiles: fetched.files, tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });
    const files = await readFiles(dest);
    expect(Buffer.from(files['.env']!.content, 'base64').toString()).toBe('TOKEN=carried on purpose\n');
    expect(files['scratch.tmp']).toBeUndefined();
    expect(await gitIn(dest, sandbox.env)('ls-files', '-s', 'vendor/lib')).toContain(`160000 ${'a'.repeat(40)}`);
  });

  it('a sha256 repository travels too (v3 bundles)', async () => {
    const src = path.join(sandbox.dir, 'sha256');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'main', '--object-format=sha256', src);
    const git = gitIn(src, sandbox.env);
    await writeFile(path.join(src, 'a.txt'), 'a\n');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'sha256');
    await writeFile(path.join(src, 'b.txt'), 'untracked\n');
    const captured = await captureCode(src, { tempDir: await temp('c'), env: sandbox.env });
    expect(captured.state.objectFormat).toBe('sha256');
    expect(captured.state.head).toMatch(/^[0-9a-f]{64}$/);
    await storeCodeLeg(remote, 'sha256', captured);
    const dest = path.join(sandbox.dir, 'sha256-box');
    const fetched = await fetchCodeLeg(remote, 'sha256', captured.state, await temp('f'));
    await applyCode(dest, captured.state, { bundleFiles: fetched.files, tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env });
    expect(await codeSnapshot(dest, sandbox.env)).toEqual(await codeSnapshot(src, sandbox.env));
  });

  it('a damaged bundle is refused before anything is touched', async () => {
    const captured = await captureCode(repo, { tempDir: await temp('c'), env: sandbox.env });
    await storeCodeLeg(remote, 'damaged', captured);
    const bundle = captured.state.bundles.at(-1)!;
    const file = path.join(sandbox.dir, 'remote', ...codeBundleKey('damaged', bundle.sha256).split('/'));
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(file);
    bytes[bytes.length - 100] ^= 0xff;
    await writeFile(file, bytes);
    const error = await fetchCodeLeg(remote, 'damaged', captured.state, await temp('f')).catch((e: unknown) => e);
    expect((error as SessmigError).code).toBe('code-bundle-damaged');
    // A bundle file damaged after download is caught by the apply's own check.
    const dest = path.join(sandbox.dir, 'never-created');
    const bad = path.join(await temp('bad'), 'x.bundle');
    await writeFile(bad, bytes);
    const refused = await applyCode(dest, captured.state, { bundleFiles: new Map([[bundle.sha256, bad]]), tempDir: await temp('a'), backupDir: await temp('b'), env: sandbox.env }).catch((e: unknown) => e);
    expect((refused as SessmigError).code).toBe('code-bundle-damaged');
    expect(await readdir(sandbox.dir)).not.toContain('never-created');
  });

  it('a missing bundle is named as missing; a damaged one in the remote is replaced by the next push of it', async () => {
    const captured = await captureCode(repo, { tempDir: await temp('c'), env: sandbox.env });
    await storeCodeLeg(remote, 'gone', captured);
    const bundle = captured.state.bundles.at(-1)!;
    const file = path.join(sandbox.dir, 'remote', ...codeBundleKey('gone', bundle.sha256).split('/'));
    const { readFile, rm } = await import('node:fs/promises');
    const bytes = await readFile(file);
    await rm(file);
    const error = await fetchCodeLeg(remote, 'gone', captured.state, await temp('f')).catch((e: unknown) => e);
    expect((error as SessmigError).code).toBe('code-bundle-missing');
    // Same name, other bytes (a damaged upload): the push that has the bundle uploads it again.
    await writeFile(file, bytes.subarray(0, bytes.length - 1));
    const stored = await storeCodeLeg(remote, 'gone', captured);
    expect(stored.uploaded).toContain(bundle.sha256);
    const fetched = await fetchCodeLeg(remote, 'gone', captured.state, await temp('f'));
    expect((await readFile(fetched.files.get(bundle.sha256)!)).equals(bytes)).toBe(true);
  });
});
