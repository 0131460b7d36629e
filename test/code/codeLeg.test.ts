import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pullCodeLeg, pushCodeLeg, readCodeState } from '../../src/code/codeLeg.js';
import { checkRemote } from '../../src/core/check.js';
import { SessmigError } from '../../src/util/errors.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { codeSnapshot, gitIn, makeSandbox } from './gitFixture.js';

describe('the code leg as push and pull call it', () => {
  let sandbox: Awaited<ReturnType<typeof makeSandbox>>;
  beforeAll(async () => {
    sandbox = await makeSandbox();
  });
  afterAll(async () => sandbox.cleanup());

  it('push: full, then incremental, then none; pull into a fresh folder and then incrementally', async () => {
    const laptop = path.join(sandbox.dir, 'laptop');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'dev', laptop);
    const git = gitIn(laptop, sandbox.env);
    await writeFile(path.join(laptop, 'a.txt'), 'a\n');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'a');
    const remote = new LocalRemote(path.join(sandbox.dir, 'remote'), 'file://remote');
    const tempDir = path.join(sandbox.dir, 'tmp');
    await mkdir(tempDir);
    const warnings: string[] = [];
    const common = { remote, worktreeKey: 'leg', root: laptop, tempDir, env: sandbox.env, warn: (m: string) => warnings.push(m) };

    const first = await pushCodeLeg({ ...common, base: undefined });
    expect(first.bundle).toBe('full');
    // Through JSON, as the manifest carries it.
    const manifest = JSON.parse(JSON.stringify({ id: 'cp1', code: first.state, sessions: [] })) as { id: string; code: unknown };
    const state1 = readCodeState(manifest)!;
    expect(state1).toEqual(first.state);

    const box = path.join(sandbox.dir, 'box');
    const pulled = await pullCodeLeg({ remote, worktreeKey: 'leg', destination: box, state: state1, tempDir, backupDir: path.join(sandbox.dir, 'backup1'), env: sandbox.env });
    expect(pulled.created).toBe(true);
    expect(pulled.downloadedBytes).toBe(first.uploadedBytes);

    await writeFile(path.join(laptop, 'b.txt'), 'b\n');
    const second = await pushCodeLeg({ ...common, base: state1 });
    expect(second.bundle).toBe('incremental');
    const third = await pushCodeLeg({ ...common, base: second.state });
    expect(third).toMatchObject({ bundle: 'none', uploadedBytes: 0 });

    await writeFile(path.join(laptop, 'c.txt'), 'c\n');
    const fourth = await pushCodeLeg({ ...common, base: third.state });
    expect(fourth.bundle).toBe('incremental');
    expect(fourth.state.bundles).toHaveLength(3);

    // The box has the first bundle's state only: it needs the two increments, not the full one.
    const again = await pullCodeLeg({ remote, worktreeKey: 'leg', destination: box, state: fourth.state, tempDir, backupDir: path.join(sandbox.dir, 'backup2'), env: sandbox.env });
    expect(again.downloadedBytes).toBe(second.uploadedBytes + fourth.uploadedBytes);
    expect(await codeSnapshot(box, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env));
    expect(warnings).toEqual([]);
    // sessmig check knows the bundles' names (it does not verify them yet).
    const checked = await checkRemote(remote, { worktrees: ['leg'], readData: false, jobs: 1 });
    expect(checked.problems.filter((p) => p.code === 'unknown-object')).toEqual([]);
  });

  it('a laptop with an upstream: history and local work are two bundles; a clone downloads only the second', async () => {
    const origin = path.join(sandbox.dir, 'origin.git');
    const seed = path.join(sandbox.dir, 'seed');
    const top = gitIn(sandbox.dir, sandbox.env);
    await top('init', '-q', '-b', 'main', seed);
    for (let i = 0; i < 50; i++) await writeFile(path.join(seed, `f${i}.txt`), `${randomBytes(2000).toString('hex')}\n`);
    await gitIn(seed, sandbox.env)('add', '-A');
    await gitIn(seed, sandbox.env)('commit', '-q', '-m', 'published history');
    await top('clone', '-q', '--bare', seed, origin);
    const laptop = path.join(sandbox.dir, 'up-laptop');
    const box = path.join(sandbox.dir, 'up-box');
    await top('clone', '-q', origin, laptop);
    await top('clone', '-q', origin, box);
    await writeFile(path.join(laptop, 'f1.txt'), 'unpushed commit\n');
    await gitIn(laptop, sandbox.env)('commit', '-q', '-am', 'not pushed anywhere');
    await writeFile(path.join(laptop, 'wip.txt'), 'untracked\n');

    const remote = new LocalRemote(path.join(sandbox.dir, 'remote-up'), 'file://remote-up');
    const tempDir = path.join(sandbox.dir, 'tmp-up');
    await mkdir(tempDir);
    const pushed = await pushCodeLeg({ remote, worktreeKey: 'up', root: laptop, base: undefined, tempDir, env: sandbox.env });
    expect(pushed.bundle).toBe('full');
    const [history, local] = pushed.state.bundles;
    const published = (await gitIn(laptop, sandbox.env)('rev-parse', 'origin/main')).trim();
    expect(history).toMatchObject({ prerequisites: [], tips: [published] });
    expect(local!.prerequisites).toEqual([published]);
    expect(local!.bytes).toBeLessThan(history!.bytes / 4);

    const pulled = await pullCodeLeg({ remote, worktreeKey: 'up', destination: box, state: pushed.state, tempDir, backupDir: path.join(sandbox.dir, 'backup-up'), env: sandbox.env });
    expect(pulled.downloadedBytes).toBe(local!.bytes);
    expect(await codeSnapshot(box, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env));
    // An empty folder takes both.
    const fresh = await pullCodeLeg({ remote, worktreeKey: 'up', destination: path.join(sandbox.dir, 'up-fresh'), state: pushed.state, tempDir, backupDir: path.join(sandbox.dir, 'backup-up2'), env: sandbox.env });
    expect(fresh.downloadedBytes).toBe(history!.bytes + local!.bytes);
  });

  it('linked worktrees: capture from one, apply into another; a branch checked out elsewhere is refused', async () => {
    const main = path.join(sandbox.dir, 'wt-main');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'trunk', main);
    const git = gitIn(main, sandbox.env);
    await writeFile(path.join(main, 'a.txt'), 'a\n');
    await git('add', '-A');
    await git('commit', '-q', '-m', 'a');
    const linked = path.join(sandbox.dir, 'wt-linked');
    await git('worktree', 'add', '-q', '-b', 'topic', linked);
    await writeFile(path.join(linked, 'naïve name with spaces.txt'), 'untracked in the linked worktree\n');
    await writeFile(path.join(linked, 'a.txt'), 'edited in the linked worktree\n');
    const remote = new LocalRemote(path.join(sandbox.dir, 'remote-wt'), 'file://remote-wt');
    const tempDir = path.join(sandbox.dir, 'tmp-wt');
    await mkdir(tempDir);
    const pushed = await pushCodeLeg({ remote, worktreeKey: 'wt', root: linked, base: undefined, tempDir, env: sandbox.env });
    expect(pushed.state.branch).toBe('topic');
    expect(await git('status', '--porcelain')).toBe('');

    // Into a second linked worktree of the same repository: topic is checked out in the first.
    const other = path.join(sandbox.dir, 'wt-other');
    await git('worktree', 'add', '-q', '--detach', other);
    const refused = await pullCodeLeg({ remote, worktreeKey: 'wt', destination: other, state: pushed.state, tempDir, backupDir: path.join(sandbox.dir, 'backup-wt'), env: sandbox.env }).catch((e: unknown) => e);
    expect((refused as SessmigError).code).toBe('code-branch-busy');
    expect((refused as SessmigError).message).toContain(linked);
    // Detached, the same state applies there.
    const detached = { ...pushed.state, branch: null };
    await pullCodeLeg({ remote, worktreeKey: 'wt', destination: other, state: detached, tempDir, backupDir: path.join(sandbox.dir, 'backup-wt2'), env: sandbox.env });
    const a = await codeSnapshot(linked, sandbox.env);
    const b = await codeSnapshot(other, sandbox.env);
    expect({ ...b, branch: a.branch }).toEqual(a);
    expect(b.branch).toBe('(detached)');
  });

  it('readCodeState: absent, newer, malformed, and unknown fields kept', () => {
    expect(readCodeState({ id: 'x' })).toBeUndefined();
    const newer = (() => {
      try {
        readCodeState({ id: 'x', code: { formatVersion: 2 } });
      } catch (error) {
        return error as SessmigError;
      }
    })();
    expect(newer?.code).toBe('code-format-newer');
    const id = 'a'.repeat(40);
    const good = {
      formatVersion: 1, objectFormat: 'sha1', head: id, branch: 'main', index: id, worktree: id, indexTree: id, worktreeTree: id,
      bundles: [{ sha256: 'b'.repeat(64), bytes: 10, prerequisites: [], tips: [id], later: true }], futureField: { kept: 1 },
    };
    expect(readCodeState({ id: 'x', code: good })).toMatchObject({ futureField: { kept: 1 }, lineage: [], submodules: [], lfsPointers: 0 });
    expect(() => readCodeState({ id: 'x', code: { ...good, branch: '-rf' } })).toThrow(/malformed code part/);
    expect(() => readCodeState({ id: 'x', code: { ...good, head: 'HEAD' } })).toThrow(/malformed code part/);
    expect(() => readCodeState({ id: 'x', code: { ...good, bundles: [] } })).toThrow(/malformed code part/);
  });
});
