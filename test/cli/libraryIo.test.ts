/**
 * main(argv, io) as a library call (what test/e2e/harness.ts does for every in-process run): the
 * command sees the environment, folder and stdin it is given, never this process's. Real git; opencode
 * only as a stand-in script that notes the folder it was started in.
 */
import { execa } from 'execa';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

let root: string;
let repo: string;
let env: Record<string, string>;

async function run(args: string[], extra: { env?: Record<string, string>; stdin?: string } = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(['node', 'sessmig', ...args], {
    env: { ...env, ...extra.env },
    cwd: repo,
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    stderrIsTTY: false,
    stdin: Readable.from(extra.stdin !== undefined ? [Buffer.from(extra.stdin)] : []),
  });
  return { code, stdout, stderr };
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'sessmig-libio-'));
  repo = path.join(root, 'repo');
  await mkdir(repo);
  env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: path.join(root, 'home'),
    XDG_CONFIG_HOME: path.join(root, 'config'),
    XDG_DATA_HOME: path.join(root, 'data'),
    XDG_CACHE_HOME: path.join(root, 'cache'),
    XDG_STATE_HOME: path.join(root, 'state'),
    TMPDIR: path.join(root, 'tmp'),
    SESSMIG_OPENCODE: path.join(root, 'no-opencode'),
  };
  for (const dir of [env.HOME!, env.TMPDIR!]) await mkdir(dir, { recursive: true });
  await execa('git', ['init', '-q'], { cwd: repo, env: { ...env, GIT_CONFIG_GLOBAL: '/dev/null' }, extendEnv: false });
});

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

it('key import reads the key from the stdin it is given', async () => {
  const made = await run(['key', 'new'], { env: { XDG_CONFIG_HOME: path.join(root, 'other-config') } });
  expect(made.code, made.stderr).toBe(0);
  const shown = await run(['key', 'show'], { env: { XDG_CONFIG_HOME: path.join(root, 'other-config') } });
  expect(shown.code, shown.stderr).toBe(0);
  const imported = await run(['key', 'import'], { stdin: shown.stdout });
  expect(imported.code, imported.stderr).toBe(0);
  expect(await readFile(path.join(env.XDG_CONFIG_HOME!, 'sessmig', 'key'), 'utf8')).toContain(shown.stdout.trim());
});

it("the temp folder is the given env's TMPDIR, not this process's", async () => {
  const missing = path.join(root, 'no-such-tmp');
  const remote = pathToFileURL(path.join(root, 'remote')).href;
  const run1 = await run(['push', '--remote', remote, '--worktree', 'w1'], { env: { TMPDIR: missing } });
  expect(run1.code, run1.stderr).toBe(2);
  expect(run1.stderr).toContain(`cannot create a temp folder in ${missing}`);
});

it("git reads the settings of the given env, not this process's GIT_* variables", async () => {
  await writeFile(path.join(env.HOME!, '.gitconfig'), `[sessmig]\n\tremote = ${pathToFileURL(path.join(root, 'right'))}\n`);
  const leak = path.join(root, 'leak.gitconfig');
  await writeFile(leak, `[sessmig]\n\tremote = ${pathToFileURL(path.join(root, 'leak'))}\n`);
  const saved = process.env.GIT_CONFIG_GLOBAL;
  process.env.GIT_CONFIG_GLOBAL = leak;
  try {
    const listed = await run(['ls', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).remote).toBe(pathToFileURL(path.join(root, 'right')).href);
  } finally {
    if (saved === undefined) delete process.env.GIT_CONFIG_GLOBAL;
    else process.env.GIT_CONFIG_GLOBAL = saved;
  }
});

it('opencode runs in the given folder, where it finds the project plugins, not in this process\'s', async () => {
  const calls = path.join(root, 'opencode-calls');
  const fake = path.join(root, 'fake-opencode');
  // A stand-in that notes where it was started: `--version` as 1.18.33, `db` with no rows.
  await writeFile(fake, `#!/bin/sh\npwd >> '${calls}'\ncase "$1" in --version) echo 1.18.33;; db) echo '[]';; esac\n`);
  await chmod(fake, 0o755);
  const remote = pathToFileURL(path.join(root, 'remote-cwd')).href;
  const pushed = await run(['push', '--remote', remote, '--worktree', 'w2', '--json'], { env: { SESSMIG_OPENCODE: fake } });
  const folders = (await readFile(calls, 'utf8')).trim().split('\n');
  expect(folders.length, pushed.stderr).toBeGreaterThan(0);
  expect(new Set(folders)).toEqual(new Set([repo]));
});

it('two commands at once in one process, on a host with no identity yet: both run (temp files are per call)', async () => {
  const fake = path.join(root, 'fake-opencode-2');
  await writeFile(fake, `#!/bin/sh\ncase "$1" in --version) echo 1.18.33;; db) echo '[]';; esac\n`);
  await chmod(fake, 0o755);
  const remote = pathToFileURL(path.join(root, 'remote-twice')).href;
  for (let round = 0; round < 5; round++) {
    const fresh = { SESSMIG_OPENCODE: fake, XDG_CONFIG_HOME: path.join(root, `config-twice-${round}`), XDG_CACHE_HOME: path.join(root, `cache-twice-${round}`) };
    const runs = await Promise.all(['w3', 'w4'].map((key) => run(['push', '--remote', remote, '--worktree', `${key}-${round}`, '--json'], { env: fresh })));
    for (const one of runs) expect(one.code, one.stderr).toBe(0);
  }
});
