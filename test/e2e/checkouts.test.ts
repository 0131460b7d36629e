/**
 * Checkouts, deletions and non-canonical paths (issue #16) on real parts: real opencode sessions on
 * simulated hosts, real git checkouts (`git worktree add`, a second clone), the local-folder remote
 * (the planning does not depend on the remote kind; the S3 remotes pass the same contract).
 * Each scenario failed on the code before the checkout/tombstone model: sessions dropped from the
 * checkpoint, moved between checkouts, deletions undone, sessions under a symlink invisible.
 */
import { execa } from 'execa';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloneRepo, sqlId, type Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let scene: Scene;
let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let remoteDir: string;
let url: string;

const on = (host: Host, cwd: string, args: string[]) => sessmig(host, [...args, '--remote', url, '--json'], { cwd });
const git = (cwd: string, args: string[]) => execa('git', args, { cwd });
const ids = (list: { id: string }[]) => list.map((item) => item.id).sort();
const actionOf = (run: { json: any }, id: string) => run.json.sessions.find((s: { id: string }) => s.id === id)?.action;

beforeAll(async () => {
  scene = await startScene(['laptop', 'box'], { llmOnAll: true });
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  url = pathToFileURL(remoteDir).href;
}, 120_000);

afterAll(async () => {
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

describe('several checkouts of one repository', () => {
  let wt: string;
  let clone: string;
  let s1: string;
  let s2: string;
  beforeAll(async () => {
    wt = path.join(a.workDir, 'app-wt');
    await git(repoA, ['worktree', 'add', '-q', wt, '-b', 'feat']);
    clone = path.join(a.workDir, 'app-clone');
    await cloneRepo(repoA, clone);
    s1 = (await a.run(repoA, 'work in the main checkout MARK-S1')).sessionID;
    s2 = (await a.run(wt, 'work in the linked worktree MARK-S2')).sessionID;
  }, 240_000);

  it('a push from a second checkout keeps the first checkout\'s sessions in the checkpoint', async () => {
    const first = await on(a, repoA, ['push']);
    expect(first.exitCode, explain(first)).toBe(0);
    expect(ids(first.json.sessions)).toEqual([s1]);
    expect(first.json.outside).toEqual([{ directory: wt, sessions: 1 }]);
    expect(first.stderr).toMatch(/1 session\(s\) of this repository lie outside this checkout/);
    const second = await on(a, wt, ['push']);
    expect(second.exitCode, explain(second)).toBe(0);
    expect(ids(second.json.sessions)).toEqual([s2]);
    const ls = await on(a, repoA, ['ls']);
    const current = ls.json.worktrees[0].checkpoints.find((cp: { current: boolean }) => cp.current);
    expect(current.sessions).toBe(2);
    expect(current.checkouts.map((c: { root: string; branch: string }) => [c.root, c.branch]).sort()).toEqual([[repoA, 'main'], [wt, 'feat']].sort());
  });

  it('a pull never moves a session out of another local checkout (linked worktree or clone)', async () => {
    const pulled = await on(a, repoA, ['pull']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(actionOf(pulled, s1)).toBe('unchanged');
    expect(actionOf(pulled, s2)).toBe('other-checkout');
    const inClone = await on(a, clone, ['pull']);
    expect(inClone.exitCode, explain(inClone)).toBe(0);
    expect(actionOf(inClone, s1)).toBe('other-checkout');
    expect(actionOf(inClone, s2)).toBe('other-checkout');
    const [v1, v2] = await a.views([s1, s2]);
    expect(v1!.directory).toBe(repoA);
    expect(v2!.directory).toBe(wt);
    const status = await on(a, repoA, ['status']);
    expect(status.json.sessions.find((s: { id: string }) => s.id === s2).state).toBe('other-checkout');
  });

  it('on another host, each checkout takes the sessions of its branch', async () => {
    const bWt = path.join(b.workDir, 'app-feat');
    await git(repoB, ['worktree', 'add', '-q', bWt, '-b', 'feat']);
    const main = await on(b, repoB, ['pull']);
    expect(main.exitCode, explain(main)).toBe(0);
    expect(actionOf(main, s1)).toBe('new');
    expect(actionOf(main, s2)).toBe('other-checkout');
    expect(main.json.sessions.find((s: { id: string }) => s.id === s2).reason).toContain(bWt);
    const feat = await on(b, bWt, ['pull']);
    expect(feat.exitCode, explain(feat)).toBe(0);
    expect(actionOf(feat, s2)).toBe('new');
    expect(actionOf(feat, s1)).toBe('other-checkout');
    const [v1, v2] = await b.views([s1, s2]);
    expect(v1!.directory).toBe(repoB);
    expect(v2!.directory).toBe(bWt);
    // --session takes one anyway (here: moves S2 into the main checkout on purpose).
    const taken = await on(b, repoB, ['pull', '--session', s2]);
    expect(taken.exitCode, explain(taken)).toBe(0);
    expect(actionOf(taken, s2)).toBe('replace');
    expect((await b.view(s2)).directory).toBe(repoB);
  });
});

describe('sessions stored under another spelling of the checkout', () => {
  it('a symlinked path and a trailing slash are selected; no silent "nothing to push"', async () => {
    const link = path.join(a.workDir, 'link-to-app');
    await symlink(repoA, link);
    const viaLink = (await a.run(repoA, 'a session under a symlink MARK-LINK')).sessionID;
    const slash = (await a.run(repoA, 'a session with a trailing slash MARK-SLASH')).sessionID;
    // opencode keeps the directory the client gave it (the server's directory header): spell them so.
    await a.db(`UPDATE session SET directory = '${link}' WHERE id = ${sqlId(viaLink)}`);
    await a.db(`UPDATE session SET directory = '${repoA}/' WHERE id = ${sqlId(slash)}`);
    const run = await on(a, repoA, ['push', '--dry-run']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.planned.map((s: { id: string }) => s.id)).toEqual(expect.arrayContaining([viaLink, slash]));
    expect(run.json.outside.map((o: { directory: string }) => o.directory)).not.toContain(link);
  });
});

describe('deletions travel', () => {
  let world: string;
  let keep: string;
  let gone: string;
  let parent: string;
  let child: string;
  let edited: string;
  let wRemote: string;
  const onW = (host: Host, cwd: string, args: string[]) => sessmig(host, [...args, '--remote', wRemote, '--json'], { cwd });
  beforeAll(async () => {
    world = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-del-'));
    wRemote = pathToFileURL(world).href;
    keep = (await a.run(repoA, 'keep me MARK-KEEP')).sessionID;
    gone = (await a.run(repoA, 'delete me later MARK-GONE')).sessionID;
    parent = (await a.run(repoA, 'delegate [[task look around MARK-CHILD]]')).sessionID;
    child = (await a.children(parent))[0]!;
    edited = (await a.run(repoA, 'edited on the box, deleted on the laptop MARK-EDIT')).sessionID;
    const pushed = await onW(a, repoA, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const pulled = await onW(b, repoB, ['pull', '--migrate']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(ids(await b.sessions()).filter((id) => [keep, gone, parent, child, edited].includes(id))).toEqual([keep, gone, parent, child, edited].sort());
    // Hand back to the laptop, which deletes.
    expect((await onW(b, repoB, ['push', '--migrate'])).exitCode).toBe(0);
    expect((await onW(a, repoA, ['pull', '--migrate'])).exitCode).toBe(0);
  }, 300_000);
  afterAll(() => rm(world, { recursive: true, force: true }));

  it('a deletion is pushed as a tombstone, children included; the other host removes its unchanged copies with a backup', async () => {
    await a.opencode(['session', 'delete', gone], { cwd: repoA });
    await a.opencode(['session', 'delete', parent], { cwd: repoA });
    const pushed = await onW(a, repoA, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(ids(pushed.json.deleted)).toEqual([gone, parent, child].sort());
    const status = await onW(b, repoB, ['status']);
    expect(status.json.sessions.find((s: { id: string }) => s.id === gone).state).toBe('deleted-there');
    const pulled = await onW(b, repoB, ['pull', '--migrate']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(actionOf(pulled, gone)).toBe('deleted-there');
    expect(actionOf(pulled, parent)).toBe('deleted-there');
    expect(pulled.json.backupDir).toBeTruthy();
    const left = ids(await b.sessions());
    expect(left).not.toContain(gone);
    expect(left).not.toContain(parent);
    expect(left).not.toContain(child);
    expect(left).toContain(keep);
  });

  it('nothing resurrects: the other host\'s next push does not bring the session back', async () => {
    const pushed = await onW(b, repoB, ['push', '--migrate']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const pulled = await onW(a, repoA, ['pull', '--migrate']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(actionOf(pulled, gone)).toBeUndefined();
    expect(ids(await a.sessions())).not.toContain(gone);
    expect(ids(await a.sessions())).not.toContain(parent);
  });

  it('a session deleted here is not pulled back, and a stale copy elsewhere is not pushed back', async () => {
    // The laptop owns the worktree now; deleting and pulling again must not re-import it.
    await a.opencode(['session', 'delete', keep], { cwd: repoA });
    const pulled = await onW(a, repoA, ['pull']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(actionOf(pulled, keep)).toBe('deleted-here');
    expect(ids(await a.sessions())).not.toContain(keep);
    const pushed = await onW(a, repoA, ['push']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(ids(pushed.json.deleted)).toEqual([keep]);
  });

  it('a deletion that meets an edit on the other host is a conflict; --force follows it, undo brings the copy back', async () => {
    await b.run(repoB, 'more on the box MARK-BOX-EDIT', { session: edited });
    await a.opencode(['session', 'delete', edited], { cwd: repoA });
    const pushed = await onW(a, repoA, ['push']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(ids(pushed.json.deleted)).toEqual([edited]);
    const refused = await onW(b, repoB, ['pull']);
    expect(refused.exitCode, explain(refused)).toBe(3);
    expect(actionOf(refused, edited)).toBe('conflict');
    expect(ids(await b.sessions())).toContain(edited);
    const forced = await onW(b, repoB, ['pull', '--force']);
    expect(forced.exitCode, explain(forced)).toBe(0);
    expect(actionOf(forced, edited)).toBe('deleted-there');
    expect(ids(await b.sessions())).not.toContain(edited);
    const undone = await onW(b, repoB, ['undo']);
    expect(undone.exitCode, explain(undone)).toBe(0);
    expect(JSON.stringify(await b.exportSession(edited))).toContain('MARK-BOX-EDIT');
  });
});
