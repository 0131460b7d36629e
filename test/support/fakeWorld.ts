/**
 * Hosts for in-process tests of the core's orchestration: each host has a FakeOpencode
 * (./fakeOpencode.ts), its own state and config folders, a checkout folder and a host identity;
 * all share one real LocalRemote folder. No process is started (push and pull run in this process,
 * against the fake), so a push/pull round trip takes milliseconds.
 *
 *   const world = await FakeWorld.create();
 *   const a = world.host('a'), b = world.host('b');
 *   const id = await a.opencode.addSession({ directory: a.root });
 *   await a.push();
 *   await b.pull();
 *   world.dispose();
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Context, Reporter } from '../../src/core/context.js';
import { pull, type PullOptions, type PullResult } from '../../src/core/pull.js';
import { push, type PushOptions, type PushResult } from '../../src/core/push.js';
import type { Worktree } from '../../src/core/worktree.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { Timing } from '../../src/util/timing.js';
import { FakeOpencode, type FakeOpencodeOptions } from './fakeOpencode.js';
import { afterEach, beforeEach } from 'vitest';

export const WORKTREE_KEY = 'fakeproject0000000000000000000000000000';

/** A Reporter that keeps every line (for assertions) and prints nothing. */
export function collectingReporter(): Reporter & { infos: string[] } {
  const infos: string[] = [];
  const warnings: string[] = [];
  return { infos, warnings, info: (message) => void infos.push(message), warn: (message) => void warnings.push(message), progress: () => undefined };
}

export class FakeHost {
  readonly opencode: FakeOpencode;
  readonly hostId = randomUUID();
  report = collectingReporter();

  constructor(
    readonly world: FakeWorld,
    readonly name: string,
    /** The checkout's top folder (exists). */
    readonly root: string,
    readonly dir: string,
    options: FakeOpencodeOptions,
  ) {
    this.opencode = new FakeOpencode({ projectId: WORKTREE_KEY, env: { XDG_DATA_HOME: path.join(dir, 'opencode-data') }, ...options });
  }

  /** A fresh Context for one command (a new temp dir and reporter each time, as the CLI makes). */
  async context(): Promise<Context> {
    const tempDir = await mkdtemp(path.join(this.dir, 'tmp-'));
    this.report = collectingReporter();
    const worktree: Worktree = { root: this.root, key: WORKTREE_KEY, keySource: 'opencode-project', branch: 'main', projectId: WORKTREE_KEY, otherCheckouts: [] };
    return {
      cwd: this.root,
      env: {},
      paths: { config: path.join(this.dir, 'config'), data: path.join(this.dir, 'data'), state: path.join(this.dir, 'state'), cache: path.join(this.dir, 'cache') },
      host: { hostId: this.hostId, hostname: this.name },
      remote: this.world.remote,
      worktree,
      opencode: this.opencode,
      report: this.report,
      jobs: 2,
      signal: new AbortController().signal,
      tempDir,
      timing: new Timing(),
    };
  }

  async push(options: PushOptions = {}): Promise<PushResult> {
    const ctx = await this.context();
    try {
      return await push(ctx, options);
    } finally {
      await rm(ctx.tempDir, { recursive: true, force: true });
    }
  }

  async pull(options: PullOptions = {}): Promise<PullResult> {
    const ctx = await this.context();
    try {
      return await pull(ctx, options);
    } finally {
      await rm(ctx.tempDir, { recursive: true, force: true });
    }
  }
}

export class FakeWorld {
  private readonly hosts: FakeHost[] = [];

  private constructor(
    readonly dir: string,
    readonly remote: LocalRemote,
  ) {}

  static async create(): Promise<FakeWorld> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-fake-'));
    const remoteDir = path.join(dir, 'remote');
    await mkdir(remoteDir, { recursive: true });
    return new FakeWorld(dir, new LocalRemote(remoteDir, remoteDir));
  }

  /** A host whose checkout is <world>/<name>/work/app. */
  async host(name: string, options: FakeOpencodeOptions = {}): Promise<FakeHost> {
    const dir = path.join(this.dir, name);
    const root = path.join(dir, 'work', 'app');
    await mkdir(root, { recursive: true });
    const host = new FakeHost(this, name, root, dir, options);
    this.hosts.push(host);
    return host;
  }

  /** Every file under `folder` with its content, sorted (for "nothing changed" comparisons). */
  async folderText(folder: string): Promise<string> {
    const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []);
    const files = entries.filter((entry) => entry.isFile()).map((entry) => path.join(entry.parentPath, entry.name)).sort();
    const parts = await Promise.all(files.map(async (file) => `${path.relative(folder, file)}\n${(await readFile(file)).toString('base64')}`));
    return parts.join('\n');
  }

  /** The remote's whole content (keys and bytes). */
  remoteText(): Promise<string> {
    return this.folderText(this.remote.root);
  }

  async dispose(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * A fresh world with hosts `a` and `b` for each test of the file (vitest hooks), disposed after it.
 * Read the fields inside a test or a later hook: they are replaced before every test.
 */
export function worldPerTest(): { world: FakeWorld; a: FakeHost; b: FakeHost } {
  const scene = {} as { world: FakeWorld; a: FakeHost; b: FakeHost };
  beforeEach(async () => {
    scene.world = await FakeWorld.create();
    scene.a = await scene.world.host('a');
    scene.b = await scene.world.host('b');
  });
  afterEach(async () => {
    await scene.world.dispose();
  });
  return scene;
}

