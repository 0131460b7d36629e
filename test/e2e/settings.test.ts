/**
 * Settings per repository with real git: `git config sessmig.*` (the user's ~/.gitconfig and the
 * repository's own config), overridden by the environment and by flags; `doctor` and `status`
 * say where each value came from.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FORMAT_ROOT } from '../../src/format/layout.js';
import { REPO_ROOT } from '../support/host.js';
import { hostWithRepo, type HostWithRepo } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let h: HostWithRepo;
let dir: string;
const url = (name: string) => pathToFileURL(path.join(dir, name)).href;
/** The harness sets SESSMIG_OPENCODE; an empty value is unset, so git config gets its turn. */
const noEnv = { SESSMIG_OPENCODE: '' };

async function git(args: string[]): Promise<void> {
  await execa('git', args, { cwd: h.repo, env: h.host.env, extendEnv: false, stdin: 'ignore' });
}

beforeAll(async () => {
  h = await hostWithRepo('settings');
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-settings-'));
  // The user's own git config (HOME is the host's): a remote for every repository.
  await writeFile(path.join(h.host.home, '.gitconfig'), `[sessmig]\n\tremote = ${url('user-wide')}\n`);
  await git(['config', 'sessmig.opencode', h.host.opencodeBin]);
  // One real session to push: the install check's tiny hand-made session, through opencode import.
  await h.host.opencode(['import', path.join(REPO_ROOT, 'scripts', 'install-check-session.json')], { cwd: h.repo, timeoutMs: 120_000 });
}, 180_000);

afterAll(async () => {
  await h?.host.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('the user-wide git config applies; the repository config beats it; env beats both; the flag beats all', async () => {
  const doctor = async (args: string[], env: Record<string, string> = {}) => {
    const run = await sessmig(h.host, ['doctor', '--json', ...args], { cwd: h.repo, env: { ...noEnv, ...env } });
    expect(run.exitCode, explain(run)).toBe(0);
    return run.json;
  };
  let json = await doctor([]);
  expect(json.settings.remote).toEqual({ value: url('user-wide'), source: 'git-config', from: 'sessmig.remote' });
  expect(json.settings.opencode).toEqual({ value: h.host.opencodeBin, source: 'git-config', from: 'sessmig.opencode' });
  expect(json.settings.worktree).toMatchObject({ source: 'default' });
  expect(json.settings.encrypt).toEqual({ value: false, source: 'default' });

  await git(['config', 'sessmig.remote', url('repo')]);
  await git(['config', 'sessmig.worktree', 'app-main']);
  json = await doctor([]);
  expect(json.remote).toBe(url('repo'));
  expect(json.settings.remote).toMatchObject({ value: url('repo'), source: 'git-config' });
  expect(json.worktree).toBe('app-main');
  expect(json.settings.worktree).toEqual({ value: 'app-main', source: 'git-config', from: 'sessmig.worktree' });

  json = await doctor([], { SESSMIG_REMOTE: url('env'), SESSMIG_WORKTREE: 'from-env' });
  expect(json.settings.remote).toEqual({ value: url('env'), source: 'env', from: 'SESSMIG_REMOTE' });
  expect(json.worktree).toBe('from-env');

  json = await doctor(['--remote', url('flag'), '--worktree', 'from-flag'], { SESSMIG_REMOTE: url('env'), SESSMIG_WORKTREE: 'from-env' });
  expect(json.settings.remote).toEqual({ value: url('flag'), source: 'flag', from: '--remote' });
  expect(json.settings.worktree).toEqual({ value: 'from-flag', source: 'flag', from: '--worktree' });

  const human = await sessmig(h.host, ['doctor'], { cwd: h.repo, env: { ...noEnv, SESSMIG_REMOTE: url('env') } });
  expect(human.stdout).toContain(`remote   ${url('env')}  (env SESSMIG_REMOTE)`);
  expect(human.stdout).toContain('worktree app-main  (git-config sessmig.worktree)');
});

it('a push goes to the repository\'s remote, and status says so', async () => {
  await git(['config', 'sessmig.remote', url('pushed-here')]);
  await git(['config', '--unset', 'sessmig.worktree']);
  const push = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: noEnv });
  expect(push.exitCode, explain(push)).toBe(0);
  expect(push.json.remote).toBe(url('pushed-here'));
  expect(push.json.status).toBe('pushed');
  expect(existsSync(path.join(dir, 'pushed-here', FORMAT_ROOT, 'worktrees', push.json.worktree))).toBe(true);
  const status = await sessmig(h.host, ['status', '--json'], { cwd: h.repo, env: noEnv });
  expect(status.exitCode, explain(status)).toBe(0);
  expect(status.json.settings.remote).toMatchObject({ value: url('pushed-here'), source: 'git-config' });
  expect(status.json.settings.worktree).toMatchObject({ value: status.json.worktree, source: 'default' });
});

it('sessmig.encrypt=true asks for encryption as --encrypt does; SESSMIG_ENCRYPT=0 switches it off', async () => {
  await git(['config', 'sessmig.encrypt', 'true']);
  await git(['config', 'sessmig.remote', url('sealed')]);
  const refused = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: noEnv });
  expect(refused.exitCode, explain(refused)).toBe(2);
  expect(refused.json.error.code).toBe('no-key');
  const plain = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: { ...noEnv, SESSMIG_ENCRYPT: '0' } });
  expect(plain.exitCode, explain(plain)).toBe(0);
  await git(['config', 'sessmig.encrypt', 'maybe']);
  const bad = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: noEnv });
  expect(bad.exitCode).toBe(2);
  expect(bad.json.error.code).toBe('bad-setting');
  await git(['config', '--unset', 'sessmig.encrypt']);
});

it('a manual push honours the push lock of a running push of the same worktree', async () => {
  await git(['config', 'sessmig.remote', url('locked')]);
  const probe = await sessmig(h.host, ['status', '--json'], { cwd: h.repo, env: noEnv });
  const lockFile = path.join(h.host.stateDir, 'sessmig', 'locks', `${probe.json.worktree}.lock`);
  await mkdir(path.dirname(lockFile), { recursive: true });
  // Held by a live process (this test runner), as an automatic push would hold it.
  await writeFile(lockFile, JSON.stringify({ pid: process.pid, hostname: os.hostname(), kind: 'auto', startedAt: new Date().toISOString() }));
  try {
    const refused = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: { ...noEnv, SESSMIG_PUSH_LOCK_WAIT: '2' } });
    expect(refused.exitCode, explain(refused)).toBe(1);
    expect(refused.json.error.code).toBe('push-locked');
    expect(refused.stderr).toContain(`waiting for another push of this worktree to end (auto, pid ${process.pid})`);
    expect(existsSync(path.join(dir, 'locked'))).toBe(false);
  } finally {
    await rm(lockFile, { force: true });
  }
  const pushed = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: noEnv });
  expect(pushed.exitCode, explain(pushed)).toBe(0);
  expect(existsSync(lockFile)).toBe(false);
});

it('sessmig.worktree names the worktree for push, check and undo --list alike', async () => {
  await git(['config', 'sessmig.remote', url('named')]);
  await git(['config', 'sessmig.worktree', 'app-named']);
  try {
    const push = await sessmig(h.host, ['push', '--json'], { cwd: h.repo, env: noEnv });
    expect(push.exitCode, explain(push)).toBe(0);
    expect(push.json.worktree).toBe('app-named');
    const check = await sessmig(h.host, ['check', '--json'], { cwd: h.repo, env: noEnv });
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.worktrees.map((w: { worktree: string }) => w.worktree)).toEqual(['app-named']);
    const undo = await sessmig(h.host, ['undo', '--list', '--json'], { cwd: h.repo, env: noEnv });
    expect(undo.json.worktree).toBe('app-named');
  } finally {
    await git(['config', '--unset', 'sessmig.worktree']);
  }
});
