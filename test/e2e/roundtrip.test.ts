/**
 * The core round trip on real parts: real opencode sessions (made by `opencode run` against the
 * fake LLM) pushed from host A and pulled into host B through each remote kind, checked through
 * opencode's own database on B.
 */
import { mkdir, mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { hostWithRepo, startScene, type Scene } from '../support/scene.js';
import { e2eS3Kinds, startS3Target } from '../support/s3.js';
import { explain, sessmig } from './harness.js';

let a: Host;
let repoA: string;
const made: { plain: string; write: string; task: string; child: string } = { plain: '', write: '', task: '', child: '' };

let scene: Scene;

beforeAll(async () => {
  scene = await startScene(['laptop']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  made.plain = (await a.run(repoA, 'plain session MARK-PLAIN')).sessionID;
  made.write = (await a.run(repoA, 'write a file [[write notes.txt hello from the laptop]]')).sessionID;
  made.task = (await a.run(repoA, 'delegate [[task look around MARK-CHILD]]')).sessionID;
  const children = await a.children(made.task);
  expect(children).toHaveLength(1);
  made.child = children[0]!;
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

interface RemoteKind {
  name: string;
  setup(): Promise<{ url: string; env: Record<string, string>; dispose(): Promise<void> }>;
}

const remotes: RemoteKind[] = [
  {
    name: 'file',
    async setup() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
      return { url: pathToFileURL(dir).href, env: {}, dispose: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  // The strictest S3 target available (ceph when installed, else s3rver; SESSMIG_TEST_E2E_TARGETS=all: both).
  ...e2eS3Kinds().run.map((kind) => ({
    name: kind === 's3rver' ? 's3' : kind,
    async setup() {
      const target = await startS3Target(kind);
      if ('skipped' in target) throw new Error(target.skipped);
      return { url: target.remoteUrl('team/'), env: target.env, dispose: () => target.dispose() };
    },
  })),
];
for (const skipped of e2eS3Kinds().skipped) console.warn(`[roundtrip] ${skipped.kind} target skipped: ${skipped.why}`);

describe.each(remotes)('push and pull through the $name remote', (kind) => {
  let remote: { url: string; env: Record<string, string>; dispose(): Promise<void> };
  let b: Host;
  let repoB: string;
  beforeAll(async () => {
    remote = await kind.setup();
    ({ host: b, repo: repoB } = await hostWithRepo('box', { repoPath: path.join('elsewhere', 'app-clone') }));
  }, 120_000);
  afterAll(async () => {
    await b?.cleanup();
    await remote?.dispose();
  });

  it('pushes every session of the worktree, children included', async () => {
    const run = await sessmig(a, ['push', '--remote', remote.url, '--json'], { cwd: repoA, env: remote.env });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.status).toBe('pushed');
    const ids = run.json.sessions.map((s: { id: string }) => s.id).sort();
    expect(ids).toEqual([made.plain, made.write, made.task, made.child].sort());
    // Parents before children.
    const order = run.json.sessions.map((s: { id: string }) => s.id);
    expect(order.indexOf(made.task)).toBeLessThan(order.indexOf(made.child));
    expect(run.json.worktree).toMatch(/^[0-9a-f]{40}$/);
    expect(run.stderr).toContain(run.json.worktree);
  });

  it('pulls them into another host and another folder, as opencode sees them', async () => {
    const run = await sessmig(b, ['pull', '--remote', remote.url, '--json'], { cwd: repoB, env: remote.env });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.sessions.every((s: { action: string }) => s.action === 'new')).toBe(true);
    // one `opencode db` per host for all of them
    const [sources, dests] = await Promise.all([a.views([made.plain, made.write, made.task, made.child]), b.views([made.plain, made.write, made.task, made.child])]);
    for (const [index, source] of sources.entries()) {
      const dest = dests[index]!;
      expect(dest.title).toBe(source.title);
      expect(dest.messages).toBe(source.messages);
      expect(dest.parts).toBe(source.parts);
      expect(dest.parentID).toBe(source.parentID);
      expect(dest.directory).toBe(repoB);
    }
    expect(dests[3]!.parentID).toBe(made.task);
    const exported = await b.exportSession(made.plain);
    expect(JSON.stringify(exported)).toContain('MARK-PLAIN');
    // The session is listed for B's project by opencode itself.
    const listed = await b.opencode(['session', 'list', '--format', 'json'], { cwd: repoB });
    expect(listed.stdout).toContain(made.plain);
  });

  it('pulling again changes nothing and duplicates nothing', async () => {
    const before = await Promise.all([made.plain, made.task, made.child].map((id) => b.view(id)));
    const run = await sessmig(b, ['pull', '--remote', remote.url, '--json'], { cwd: repoB, env: remote.env });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.sessions.map((s: { action: string }) => s.action)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    const after = await Promise.all([made.plain, made.task, made.child].map((id) => b.view(id)));
    expect(after).toEqual(before);
    expect((await b.sessions()).length).toBe(4);
  });

  it('a moved checkout: pulling in the new folder rebinds the sessions to it', async (ctx) => {
    if (kind.name !== 'file') ctx.skip(); // the rebind logic does not depend on the remote kind
    const moved = path.join(b.workDir, 'moved', 'app-renamed');
    await mkdir(path.dirname(moved), { recursive: true });
    await rename(repoB, moved);
    try {
      const run = await sessmig(b, ['pull', '--remote', remote.url, '--json'], { cwd: moved, env: remote.env });
      expect(run.exitCode, explain(run)).toBe(0);
      for (const session of run.json.sessions) {
        expect(session.action).toBe('replace');
        expect(session.reason).toMatch(/rebinding/);
      }
      const ids = [made.plain, made.task, made.child];
      const [sources, views] = await Promise.all([a.views(ids), b.views(ids)]);
      for (const [index, view] of views.entries()) {
        expect(view.directory).toBe(moved);
        expect(view.messages).toBe(sources[index]!.messages);
      }
      expect((await b.sessions()).length).toBe(4);
    } finally {
      await rename(moved, repoB);
      await sessmig(b, ['pull', '--remote', remote.url], { cwd: repoB, env: remote.env });
    }
  });

  it('the server export path and the CLI export path give the same content hashes', async (ctx) => {
    if (kind.name !== 'file') ctx.skip(); // both pushes go to a folder of their own: the remote kind plays no part
    const other = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    try {
      const viaCli = await sessmig(a, ['push', '--remote', pathToFileURL(other).href, '--json', '--timing'], { cwd: repoA, env: { SESSMIG_EXPORT_VIA: 'cli' } });
      expect(viaCli.exitCode, explain(viaCli)).toBe(0);
      expect(viaCli.stderr).toMatch(/through `opencode export` processes/);
      const viaServer = await sessmig(a, ['push', '--remote', pathToFileURL(other).href, '--json', '--timing', '--worktree', 'server-path'], { cwd: repoA, env: { SESSMIG_EXPORT_VIA: 'server' } });
      expect(viaServer.exitCode, explain(viaServer)).toBe(0);
      expect(viaServer.stderr).toMatch(/through one `opencode serve`/);
      expect(viaServer.stderr).toMatch(/export .* s .*%/);
      const manifests = await Promise.all(
        [viaCli.json, viaServer.json].map(async (json) => {
          const file = path.join(other, 'sessmig', 'v1', 'worktrees', json.worktree, 'checkpoints', `${json.checkpoint}.json`);
          return JSON.parse(await readFile(file, 'utf8'));
        }),
      );
      const hashes = (m: { sessions: { id: string; contentHash: string }[] }) => Object.fromEntries(m.sessions.map((s) => [s.id, s.contentHash]));
      expect(hashes(manifests[1])).toEqual(hashes(manifests[0]));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('lists the worktree and its checkpoint', async () => {
    const run = await sessmig(b, ['ls', '--remote', remote.url, '--json'], { cwd: repoB, env: remote.env });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.worktrees).toHaveLength(1);
    const [wt] = run.json.worktrees;
    expect(wt.checkpoints).toHaveLength(1);
    expect(wt.checkpoints[0]).toMatchObject({ current: true, sessions: 4 });
    expect(wt.checkpoints[0].storedBytes).toBeGreaterThan(0);
  });
});
