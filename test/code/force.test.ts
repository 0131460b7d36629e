import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCode, bundlesNeeded } from '../../src/code/apply.js';
import { captureCode, type CapturedCode } from '../../src/code/capture.js';
import { undoCode } from '../../src/code/codeBackup.js';
import { fetchCodeLeg, storeCodeLeg, type FetchedCode } from '../../src/code/codeStore.js';
import { SessmigError } from '../../src/util/errors.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { codeSnapshot, gitIn, gitState, makeSandbox, readFiles } from './gitFixture.js';

const WORKTREE = 'code-force';

describe('code leg: a dirty destination is refused; force saves it and undo gives back every byte', () => {
  let sandbox: Awaited<ReturnType<typeof makeSandbox>>;
  let laptop: string;
  let box: string;
  let captured: CapturedCode;
  let fetched: FetchedCode;
  const temp = (name: string) => sandbox.temp(name);

  beforeAll(async () => {
    sandbox = await makeSandbox();
    laptop = path.join(sandbox.dir, 'laptop');
    box = path.join(sandbox.dir, 'box');
    const git = gitIn(sandbox.dir, sandbox.env);
    await git('init', '-q', '-b', 'main', laptop);
    const lg = gitIn(laptop, sandbox.env);
    await writeFile(path.join(laptop, 'a.txt'), 'alpha\n');
    await writeFile(path.join(laptop, 'b.txt'), 'bravo\n');
    await lg('add', '-A');
    await lg('commit', '-q', '-m', 'first');
    await git('clone', '-q', laptop, box);
    await writeFile(path.join(laptop, 'a.txt'), 'alpha from the laptop\n');
    await lg('commit', '-q', '-am', 'laptop commit');
    await writeFile(path.join(laptop, 'untracked.txt'), 'laptop untracked\n');
    await mkdir(path.join(laptop, 'new-dir'));
    await writeFile(path.join(laptop, 'new-dir', 'only-on-laptop.txt'), 'a path the box does not have\n');
    await writeFile(path.join(laptop, 'notes.env'), 'laptop notes\n');
    await writeFile(path.join(laptop, 'b.txt'), 'bravo unstaged on the laptop\n');

    const remote = new LocalRemote(path.join(sandbox.dir, 'remote'), 'file://remote');
    captured = await captureCode(laptop, { tempDir: await temp('capture'), env: sandbox.env });
    await storeCodeLeg(remote, WORKTREE, captured);
    fetched = await fetchCodeLeg(remote, WORKTREE, captured.state, await temp('fetch'), await bundlesNeeded(box, captured.state, sandbox.env));

    // The box has work of its own: a local commit on main, a staged and an unstaged change,
    // an untracked file where the laptop has one, an ignored file where the laptop has a file,
    // and an untracked file and an ignored file the checkpoint does not touch.
    const bg = gitIn(box, sandbox.env);
    await writeFile(path.join(box, 'box.txt'), 'box commit\n');
    await bg('add', 'box.txt');
    await bg('commit', '-q', '-m', 'box-only commit');
    await bg('branch', 'side');
    await writeFile(path.join(box, 'a.txt'), 'alpha staged on the box\n');
    await bg('add', 'a.txt');
    await appendFile(path.join(box, 'b.txt'), 'unstaged on the box\n');
    await writeFile(path.join(box, 'untracked.txt'), 'box untracked, in the way\n');
    await writeFile(path.join(box, '.git', 'info', 'exclude'), '*.env\n*.cache\n');
    await writeFile(path.join(box, 'notes.env'), 'box ignored notes, in the way\n');
    await writeFile(path.join(box, 'keep.txt'), 'box untracked, not in the way\n');
    await writeFile(path.join(box, 'keep.cache'), 'box ignored, not in the way\n');
  });
  afterAll(async () => sandbox.cleanup());

  it('refuses with a typed error naming the files and the branch, and changes nothing', async () => {
    const before = { git: await gitState(box, sandbox.env), files: await readFiles(box) };
    const error = await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), env: sandbox.env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessmigError);
    const failure = error as SessmigError;
    expect(failure.code).toBe('code-destination-dirty');
    expect(failure.hint).toContain('--force');
    expect(failure.data).toMatchObject({ changed: ['a.txt', 'b.txt'], inTheWay: ['notes.env', 'untracked.txt'], branch: { name: 'main' } });
    expect(failure.message).toContain('branch main');
    expect({ git: await gitState(box, sandbox.env), files: await readFiles(box) }).toEqual(before);
  });

  it('with force applies, and undo restores refs, HEAD, index bytes and every file', async () => {
    const before = { git: await gitState(box, sandbox.env), files: await readFiles(box) };
    const backupDir = await temp('backup');
    const result = await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir, force: true, env: sandbox.env });
    expect(result.overridden?.branch?.name).toBe('main');
    const notOurs = (rel: string) => rel === 'keep.txt' || rel === 'keep.cache';
    const source = await codeSnapshot(laptop, sandbox.env);
    const dest = await codeSnapshot(box, sandbox.env, notOurs);
    // keep.txt stays untracked at the box (left alone), and the box's own exclude file hides
    // notes.env from its status: the status differs by those two lines only.
    expect({ ...dest, status: dest.status.replace('?? keep.txt\n', '') }).toEqual({ ...source, status: source.status.replace('?? notes.env\n', '') });
    // The diverged branch was moved; the other branch was left alone.
    expect(await gitIn(box, sandbox.env)('rev-parse', 'side')).toBe(before.git.refs.match(/refs\/heads\/side (\w+)/)![1] + '\n');

    await undoCode(result.backup, { backupDir, tempDir: await temp('undo'), env: sandbox.env });
    expect({ git: await gitState(box, sandbox.env), files: await readFiles(box) }).toEqual(before);
  });

  it('a failure late in the apply (a locked branch ref) rolls the checkout back byte for byte', async () => {
    const before = { git: await gitState(box, sandbox.env), files: await readFiles(box) };
    await writeFile(path.join(box, '.git', 'refs', 'heads', 'main.lock'), '');
    try {
      const error = await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), force: true, env: sandbox.env }).catch((e: unknown) => e);
      expect((error as SessmigError).code).toBe('git-failed');
      expect((error as SessmigError).message).toContain('refs/heads/main');
    } finally {
      await rm(path.join(box, '.git', 'refs', 'heads', 'main.lock'));
    }
    expect({ git: await gitState(box, sandbox.env), files: await readFiles(box) }).toEqual(before);
  });

  it('an index.lock is refused before anything changes', async () => {
    const before = { git: await gitState(box, sandbox.env), files: await readFiles(box) };
    await writeFile(path.join(box, '.git', 'index.lock'), '');
    try {
      const error = await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir: await temp('backup'), force: true, env: sandbox.env }).catch((e: unknown) => e);
      expect((error as SessmigError).code).toBe('code-index-locked');
    } finally {
      await rm(path.join(box, '.git', 'index.lock'));
    }
    expect({ git: await gitState(box, sandbox.env), files: await readFiles(box) }).toEqual(before);
  });

  it('undo refuses when the checkout changed since the apply', async () => {
    const backupDir = await temp('backup');
    const result = await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: await temp('apply'), backupDir, force: true, env: sandbox.env });
    await writeFile(path.join(box, 'b.txt'), 'edited after the pull\n');
    const error = await undoCode(result.backup, { backupDir, tempDir: await temp('undo'), env: sandbox.env }).catch((e: unknown) => e);
    expect((error as SessmigError).code).toBe('code-changed-since-apply');
    expect((error as SessmigError).message).toContain('b.txt');
  });
});
