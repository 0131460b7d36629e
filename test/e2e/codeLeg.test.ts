/**
 * The code leg wired into push and pull (issue #17), on real parts: real git checkouts, real
 * opencode sessions, the sessmig CLI. The capture/apply machinery itself is tested case by case in
 * test/code/; here: `push --migrate` carries the code, `pull --migrate` into an empty folder makes
 * the checkout and binds the sessions to it, a dirty destination is refused with nothing changed,
 * and `--force` then `undo` gives back every byte.
 */
import { execa } from 'execa';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';
import { git, gitState } from '../support/gitView.js';

let scene: Scene;
let laptop: Host;
let box: Host;
let repoL: string;
let dir: string;
let url: string;
let key: string;
const on = (host: Host, cwd: string, args: string[]) => sessmig(host, [...args, '--remote', url, '--json'], { cwd });

/** What git says about a checkout: everything the code leg promises to carry. */
async function gitView(cwd: string) {
  return {
    ...(await gitState(cwd)),
    notes: await readFile(path.join(cwd, 'notes.md'), 'utf8'),
    untracked: await readFile(path.join(cwd, 'draft.txt'), 'utf8'),
  };
}

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  box = scene.hosts[1]!.host;
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  url = pathToFileURL(dir).href;
  // Work the box does not have: a commit on a branch, staged, unstaged, untracked, executable, a symlink.
  await git(repoL, ['checkout', '-q', '-b', 'feature']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\n');
  await git(repoL, ['add', 'notes.md']);
  await git(repoL, ['commit', '-q', '--no-gpg-sign', '-m', 'local commit MARK-COMMIT']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\nstaged line\n');
  await git(repoL, ['add', 'notes.md']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\nstaged line\nunstaged line\n');
  await writeFile(path.join(repoL, 'draft.txt'), 'untracked MARK-UNTRACKED\n');
  await writeFile(path.join(repoL, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(repoL, 'run.sh'), 0o755);
  await symlink('notes.md', path.join(repoL, 'link-to-notes'));
  await writeFile(path.join(repoL, '.gitignore'), 'secret.env\n');
  await writeFile(path.join(repoL, 'secret.env'), 'TOKEN=do-not-travel\n');
  key = (await git(repoL, ['rev-list', '--max-parents=0', 'HEAD'])).trim();
}, 120_000);

afterAll(async () => {
  await scene?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('push --migrate and pull --migrate carry the code', () => {
  let session: string;
  let fresh: string;

  it('push --migrate captures the checkout without touching its index or refs', async () => {
    session = (await laptop.run(repoL, 'work on the feature MARK-CODE-SESSION')).sessionID;
    const before = { view: await gitView(repoL), refs: await git(repoL, ['for-each-ref']), stash: await git(repoL, ['stash', 'list']) };
    const pushed = await on(laptop, repoL, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(pushed.json.code).toMatchObject({ branch: 'feature', bundle: 'full' });
    expect(pushed.json.code.uploadedBytes).toBeGreaterThan(0);
    expect({ view: await gitView(repoL), refs: await git(repoL, ['for-each-ref']), stash: await git(repoL, ['stash', 'list']) }).toEqual(before);
  });

  it('pull --migrate into an empty folder makes the checkout, equal to the source, with the session bound to it', async () => {
    fresh = path.join(box.workDir, 'fresh');
    await mkdir(fresh, { recursive: true });
    const noKey = await on(box, fresh, ['pull', '--migrate']);
    expect(noKey.exitCode, explain(noKey)).toBe(2);
    expect(noKey.stderr).toMatch(/--worktree/);
    const pulled = await on(box, fresh, ['pull', '--migrate', '--worktree', key]);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.code).toMatchObject({ branch: 'feature', created: true });
    expect(pulled.json.claimed).toBe(true);
    expect(await gitView(fresh)).toEqual(await gitView(repoL));
    expect((await execa('test', ['-x', path.join(fresh, 'run.sh')], { reject: false })).exitCode).toBe(0);
    expect(await git(fresh, ['rev-parse', '--symbolic-full-name', 'HEAD'])).toBe('refs/heads/feature');
    await expect(readFile(path.join(fresh, 'secret.env'), 'utf8')).rejects.toThrow(); // ignored: does not travel
    expect((await box.view(session)).directory).toBe(fresh);
  });

  it('back on the laptop: a dirty checkout is refused with nothing changed; --force then undo gives back every byte', async () => {
    await writeFile(path.join(fresh, 'notes.md'), 'committed line\nstaged line\nunstaged line\nfrom the box\n');
    const pushed = await on(box, fresh, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(pushed.json.code.bundle).not.toBe('full'); // nothing new committed: no new bundle, or a small one
    // The laptop changed notes.md meanwhile, differently: pulling would overwrite it.
    await writeFile(path.join(repoL, 'notes.md'), 'laptop edit MARK-LAPTOP-EDIT\n');
    const before = await gitView(repoL);
    const refused = await on(laptop, repoL, ['pull', '--migrate']);
    expect(refused.exitCode, explain(refused)).not.toBe(0);
    expect(refused.stderr).toMatch(/notes\.md/);
    expect(await gitView(repoL)).toEqual(before);
    expect((await on(laptop, repoL, ['status'])).json.ownedByThisHost).toBe(false);

    const forced = await on(laptop, repoL, ['pull', '--migrate', '--force']);
    expect(forced.exitCode, explain(forced)).toBe(0);
    expect(await readFile(path.join(repoL, 'notes.md'), 'utf8')).toContain('from the box');
    const undone = await on(laptop, repoL, ['undo']);
    expect(undone.exitCode, explain(undone)).toBe(0);
    expect(await gitView(repoL)).toEqual(before);
  });
});
