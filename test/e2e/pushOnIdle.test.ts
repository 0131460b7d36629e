/**
 * Push on idle on real parts: `sessmig plugin install` writes the opencode plugin, the real
 * `opencode run` (against the fake LLM) goes idle, and the detached `sessmig plugin idle` pushes
 * after opencode has exited. Settings come from git config, as a user would set them per
 * repository. A host that does not own the worktree pushes nothing; two idle events close
 * together make one push; the plugin never touches opencode's stdout.
 */
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostWithRepo, startScene, type HostWithRepo, type Scene } from '../support/scene.js';
import type { Host } from '../support/host.js';
import { explain, sessmig } from './harness.js';

/** opencode run with a plugin on a loaded 2-core machine took 13-60 s here: more room than the usual 60 s. */
const RUN_MS = 180_000;

let scene: Scene;
let laptop: HostWithRepo;
let box: HostWithRepo;
let remoteDir: string;
let remoteUrl: string;
let key: string;
let session: string;

/** Plugin hosts: opencode npm-installs @opencode-ai/plugin next to a plugin; offline, fail fast. */
function pluginEnv(host: Host): void {
  host.env.npm_config_fetch_retries = '0';
  host.env.SESSMIG_IDLE_DEBOUNCE_MS = '1500';
}

async function gitConfig(repo: string, name: string, value: string): Promise<void> {
  await execa('git', ['config', name, value], { cwd: repo, stdin: 'ignore' });
}

function autoPushStateFile(host: Host): string {
  return path.join(host.stateDir, 'sessmig', 'auto-push', `${key}.json`);
}

/** Waits for an automatic push that finished after `since`; returns its record. */
async function nextAutoPush(host: Host, since: number, timeoutMs = 180_000): Promise<{ result: string; message: string; finishedAt: string; checkpoint?: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(autoPushStateFile(host), 'utf8').catch(() => '');
    if (text) {
      const state = JSON.parse(text);
      if (state.last && Date.parse(state.last.finishedAt) > since) return state.last;
    }
    if (Date.now() > deadline) {
      const log = await readFile(path.join(host.stateDir, 'sessmig', 'auto-push', `${key}.log`), 'utf8').catch(() => '(no log)');
      throw new Error(`no automatic push on ${host.name} within ${timeoutMs} ms; state: ${text || '(none)'}\nlog:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function attempts(host: Host): Promise<number> {
  const log = await readFile(path.join(host.stateDir, 'sessmig', 'auto-push', `${key}.log`), 'utf8').catch(() => '');
  return log.split('\n').filter((line) => /^\d{4}-\d\d-\d\dT\S+ (pushed|skipped|failed): /.test(line)).length;
}

async function currentCheckpoint(): Promise<string | null> {
  const run = await sessmig(laptop.host, ['ls', '--json'], { cwd: laptop.repo });
  expect(run.exitCode, explain(run)).toBe(0);
  return run.json.worktrees.find((w: { worktree: string }) => w.worktree === key)?.checkpoint ?? null;
}

beforeAll(async () => {
  scene = await startScene(['laptop'], { runsAttached: false }); // the run's own opencode loads the plugin
  laptop = scene.hosts[0]!;
  box = await hostWithRepo('box', { llm: scene.llm, runsAttached: false });
  pluginEnv(laptop.host);
  pluginEnv(box.host);
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-idle-remote-'));
  remoteUrl = pathToFileURL(remoteDir).href;
  // Per repository, as a user would: the remote and the opencode binary from git config.
  for (const { host, repo } of [laptop, box]) {
    await gitConfig(repo, 'sessmig.remote', remoteUrl);
    await gitConfig(repo, 'sessmig.opencode', host.opencodeBin);
  }
  session = (await laptop.host.run(laptop.repo, 'first turn MARK-IDLE-1')).sessionID;
  // The first push is manual: it makes this host the owner.
  const first = await sessmig(laptop.host, ['push', '--json'], { cwd: laptop.repo, env: { SESSMIG_OPENCODE: '' } });
  expect(first.exitCode, explain(first)).toBe(0);
  key = first.json.worktree;
  expect(first.json.remote).toBe(remoteUrl);
}, 240_000);

afterAll(async () => {
  await box?.host.cleanup();
  await scene?.dispose();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

describe('sessmig plugin install, then opencode run on the owner', () => {
  let pluginFile: string;
  let ranAt: number;
  let runStdout: string;

  it('installs the plugin where opencode loads it, with absolute paths to node and sessmig', async () => {
    const run = await sessmig(laptop.host, ['plugin', 'install', '--json'], { cwd: laptop.repo });
    expect(run.exitCode, explain(run)).toBe(0);
    pluginFile = run.json.file;
    expect(pluginFile).toBe(path.join(laptop.host.configDir, 'opencode', 'plugin', 'sessmig.js'));
    const source = await readFile(pluginFile, 'utf8');
    expect(source).toContain(JSON.stringify(process.execPath));
    expect(path.isAbsolute(run.json.sessmig) && existsSync(run.json.sessmig)).toBe(true);
  });

  it('opencode run ends, and within a bounded wait the remote has the new messages (pulled on another host)', async () => {
    const before = await laptop.host.messageCounts(session);
    const t0 = Date.now();
    const run = await laptop.host.run(laptop.repo, 'second turn MARK-IDLE-2', { session, timeoutMs: RUN_MS });
    ranAt = Date.now();
    runStdout = run.stdout;
    const after = await laptop.host.messageCounts(session);
    expect(after.messages).toBeGreaterThan(before.messages);
    const record = await nextAutoPush(laptop.host, t0);
    expect(record.result, record.message).toBe('pushed');
    // It pushed after opencode run had returned: the detached push outlived it.
    expect(Date.parse(record.finishedAt)).toBeGreaterThan(ranAt);
    console.log(`[pushOnIdle] opencode run ended ${ranAt - t0} ms after start; the automatic push finished ${Date.parse(record.finishedAt) - ranAt} ms after that`);

    const pull = await sessmig(box.host, ['pull', '--json'], { cwd: box.repo, env: { SESSMIG_OPENCODE: '' } });
    expect(pull.exitCode, explain(pull)).toBe(0);
    expect((await box.host.view(session)).messages).toBe(after.messages);
  });

  it('prints nothing on stdout: opencode run --format json stays one JSON event a line, opencode export stays clean JSON', async () => {
    for (const line of runStdout.split('\n').filter((l) => l.trim() !== '')) expect(() => JSON.parse(line)).not.toThrow();
    const exported = await laptop.host.opencode(['export', session], { cwd: laptop.repo });
    const parsed = JSON.parse(exported.stdout);
    expect(parsed.info.id).toBe(session);
  });

  it('status shows the last automatic push and where each setting came from', async () => {
    const run = await sessmig(laptop.host, ['status', '--json'], { cwd: laptop.repo, env: { SESSMIG_OPENCODE: '' } });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.autoPush).toMatchObject({ result: 'pushed' });
    expect(run.json.settings.remote).toMatchObject({ value: remoteUrl, source: 'git-config', from: 'sessmig.remote' });
    expect(run.json.settings.opencode).toMatchObject({ source: 'git-config' });
    const human = await sessmig(laptop.host, ['status'], { cwd: laptop.repo, env: { SESSMIG_OPENCODE: '' } });
    expect(human.stdout).toMatch(/auto push last \S+: pushed/);
  });

  it('two idle events close together make one push', async () => {
    const before = await attempts(laptop.host);
    const checkpoint = await currentCheckpoint();
    // The plugin itself, loaded as opencode loads it, handed two session.idle events 200 ms apart.
    const mod = await import(`${pathToFileURL(pluginFile).href}?t=${Date.now()}`);
    const logged: unknown[] = [];
    const client = { app: { log: async (entry: unknown) => void logged.push(entry) } };
    const savedEnv = { ...process.env };
    Object.assign(process.env, laptop.host.env, { SESSMIG_OPENCODE: '' });
    try {
      const hooks = await mod.SessmigPushOnIdle({ client, directory: laptop.repo, worktree: laptop.repo });
      const t0 = Date.now();
      await hooks.event({ event: { type: 'session.idle', properties: { sessionID: session } } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await hooks.event({ event: { type: 'session.idle', properties: { sessionID: session } } });
      await nextAutoPush(laptop.host, t0);
      // Give a second push (if any) the time to happen.
      await new Promise((resolve) => setTimeout(resolve, 6000));
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in savedEnv)) delete process.env[name];
      Object.assign(process.env, savedEnv);
    }
    expect(await attempts(laptop.host)).toBe(before + 1);
    expect(logged.length).toBe(2);
    const after = await currentCheckpoint();
    expect(after).not.toBeNull();
    expect(checkpoint).not.toBeNull();
  });

  it('does not start a push while a session of this opencode is busy', async () => {
    const before = await attempts(laptop.host);
    const mod = await import(`${pathToFileURL(pluginFile).href}?t=${Date.now()}`);
    const logged: unknown[] = [];
    const hooks = await mod.SessmigPushOnIdle({ client: { app: { log: async (e: unknown) => void logged.push(e) } }, directory: laptop.repo, worktree: laptop.repo });
    await hooks.event({ event: { type: 'session.status', properties: { sessionID: 'ses_other', status: { type: 'busy' } } } });
    await hooks.event({ event: { type: 'session.idle', properties: { sessionID: session } } });
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect(await attempts(laptop.host)).toBe(before);
    expect(logged).toHaveLength(0);
  });

  it('reports a failed automatic push through client.app.log, once', async () => {
    const file = autoPushStateFile(laptop.host);
    const failed = { worktree: key, root: laptop.repo, last: { startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:01.000Z', result: 'failed', message: 'remote unreachable' } };
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(failed));
    const mod = await import(`${pathToFileURL(pluginFile).href}?t=${Date.now()}`);
    const logged: { body: { service: string; level: string; message: string } }[] = [];
    // The plugin finds sessmig's state through XDG_STATE_HOME, as inside opencode on that host.
    const saved = process.env.XDG_STATE_HOME;
    process.env.XDG_STATE_HOME = laptop.host.stateDir;
    try {
      const hooks = await mod.SessmigPushOnIdle({ client: { app: { log: async (e: any) => void logged.push(e) } }, directory: laptop.repo, worktree: laptop.repo });
      // A busy session keeps the plugin from starting a push; the report comes first.
      await hooks.event({ event: { type: 'session.status', properties: { sessionID: 'ses_other', status: { type: 'busy' } } } });
      await hooks.event({ event: { type: 'session.idle', properties: { sessionID: session } } });
      await hooks.event({ event: { type: 'session.idle', properties: { sessionID: session } } });
    } finally {
      if (saved === undefined) delete process.env.XDG_STATE_HOME;
      else process.env.XDG_STATE_HOME = saved;
    }
    expect(logged).toEqual([{ body: { service: 'sessmig', level: 'error', message: 'sessmig: last automatic push failed at 2026-01-01T00:00:01.000Z: remote unreachable' } }]);
  });
});

describe('on a host that does not own the worktree', () => {
  it('the plugin pushes nothing', async () => {
    const install = await sessmig(box.host, ['plugin', 'install', '--project', '--json'], { cwd: box.repo });
    expect(install.exitCode, explain(install)).toBe(0);
    expect(install.json.file).toBe(path.join(box.repo, '.opencode', 'plugin', 'sessmig.js'));
    // It names this host's paths: git leaves it out of commits.
    const untracked = await execa('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: box.repo });
    expect(untracked.stdout).not.toContain('sessmig.js');
    const checkpoint = await currentCheckpoint();
    const t0 = Date.now();
    await box.host.run(box.repo, 'work on the box MARK-IDLE-BOX', { timeoutMs: RUN_MS });
    const record = await nextAutoPush(box.host, t0);
    expect(record.result).toBe('skipped');
    expect(record.message).toMatch(/owned by/);
    expect(await currentCheckpoint()).toBe(checkpoint);
    const uninstall = await sessmig(box.host, ['plugin', 'uninstall', '--project', '--json'], { cwd: box.repo });
    expect(uninstall.json.outcome).toBe('removed');
    expect(existsSync(install.json.file)).toBe(false);
  });
});
