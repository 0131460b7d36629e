/**
 * What a session points at travels and is rebased (issue 18): opencode's snapshot objects (undo /
 * revert history), the paths its revert acts on, and truncated tool outputs. Real opencode 1.18.33,
 * real sessmig CLI; revert and unrevert through `opencode serve` (what the TUI's undo calls).
 */
import { cp, readdir, readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpencodeServer } from '../../src/opencode/server.js';
import { presentObjects, snapshotGitDirs, worktreeHash } from '../../src/opencode/snapshots.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { installedOpencode } from '../support/opencodeVersions.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { explain, sessmig } from './harness.js';

let llm: FakeLlm;
beforeAll(async () => {
  llm = await startFakeLlm();
});
afterAll(async () => {
  await llm?.close();
});

const FIRST = 'first\n';
const SECOND = 'second\n';

/** Two turns: the first writes notes.txt, the second rewrites it and runs a command whose output opencode truncates. */
async function makeSession(host: Host, repo: string): Promise<string> {
  const { sessionID } = await host.run(repo, 'turn one [[write notes.txt first]]');
  await host.run(repo, 'turn two [[rewrite notes.txt second]] [[bash seq 1 30000]]', { session: sessionID });
  expect(await readFile(path.join(repo, 'notes.txt'), 'utf8')).toBe(SECOND);
  return sessionID;
}

function parts(exported: any): any[] {
  return exported.messages.flatMap((message: any) => message.parts);
}

function userMessages(exported: any): string[] {
  return exported.messages.filter((message: any) => message.info.role === 'user').map((message: any) => message.info.id);
}

/** POST /session/<id>/revert (to a message) or /unrevert on an `opencode serve` in `repo`. */
async function undo(host: Host, repo: string, id: string, what: { revertTo: string } | 'unrevert'): Promise<void> {
  const server = await OpencodeServer.start({ bin: host.opencodeBin, env: host.env, cwd: repo, timeoutMs: 60_000, tempDir: await mkdtemp(path.join(host.root, 'serve-')) });
  try {
    const response =
      what === 'unrevert'
        ? await server.request('POST', `/session/${id}/unrevert`, { body: '{}' })
        : await server.request('POST', `/session/${id}/revert`, { body: JSON.stringify({ messageID: what.revertTo }) });
    expect(response.status, response.body).toBe(200);
  } finally {
    await server.stop();
  }
}

function expectPathsUnder(exported: any, root: string, other: string): void {
  const all = parts(exported);
  const files = all.filter((part) => part.type === 'patch').flatMap((part) => part.files as string[]);
  const filepaths = all.filter((part) => part.type === 'tool' && part.state?.metadata?.filepath).map((part) => part.state.metadata.filepath as string);
  expect(files.length).toBeGreaterThan(0);
  expect(filepaths.length).toBeGreaterThan(0);
  for (const file of [...files, ...filepaths]) {
    expect(file.startsWith(`${root}/`), file).toBe(true);
    expect(file.startsWith(`${other}/`), file).toBe(false);
  }
}

describe('one host, the repo copied to another folder (embedded default remote)', () => {
  let host: Host;
  let source: string;
  let copy: string;
  let id: string;
  beforeAll(async () => {
    host = await createHost('files-one', { llm });
    await host.writeOpencodeConfig(llm);
    source = path.join(host.workDir, 'app');
    await createRepo(source);
    id = await makeSession(host, source);
    copy = path.join(host.workDir, 'moved', 'app');
    await cp(source, copy, { recursive: true });
  }, 240_000);
  afterAll(async () => {
    await host?.cleanup();
  });

  it('push --migrate, pull --migrate in the copy: the paths revert acts on name the copy', async () => {
    const pushed = await sessmig(host, ['push', '--migrate', '--json'], { cwd: source });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const pulled = await sessmig(host, ['pull', '--migrate', '--json'], { cwd: copy });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).not.toMatch(/did not travel/);
    const exported = await host.exportSession(id);
    expect(exported.info.directory).toBe(copy);
    expectPathsUnder(exported, copy, source);
    // The copy's snapshot repository exists where opencode 1.18.33 looks for it.
    const projects = await readdir(path.join(host.dataDir, 'opencode', 'snapshot'));
    expect(projects.some((project) => existsSync(path.join(host.dataDir, 'opencode', 'snapshot', project, worktreeHash(copy), 'HEAD')))).toBe(true);
  });

  it('revert to the second turn restores the first turn in the copy and leaves the source folder alone; unrevert brings the second turn back', async () => {
    const exported = await host.exportSession(id);
    const [, secondTurn] = userMessages(exported);
    await undo(host, copy, id, { revertTo: secondTurn! });
    expect(await readFile(path.join(copy, 'notes.txt'), 'utf8')).toBe(FIRST);
    expect(await readFile(path.join(source, 'notes.txt'), 'utf8')).toBe(SECOND);
    await undo(host, copy, id, 'unrevert');
    expect(await readFile(path.join(copy, 'notes.txt'), 'utf8')).toBe(SECOND);
    expect(await readFile(path.join(source, 'notes.txt'), 'utf8')).toBe(SECOND);
  });
});

describe('two hosts (separate data dirs), a folder remote', () => {
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let remoteDir: string;
  let remote: string;
  let id: string;
  let sourceOutput: { path: string; text: string };
  const on = (host: Host, repo: string, args: string[]) => sessmig(host, [...args, '--remote', remote, '--json'], { cwd: repo });
  beforeAll(async () => {
    a = await createHost('files-a', { llm });
    b = await createHost('files-b');
    await a.writeOpencodeConfig(llm);
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'elsewhere', 'app');
    await createRepo(repoA);
    await createRepo(repoB);
    remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    remote = pathToFileURL(remoteDir).href;
    id = await makeSession(a, repoA);
    const bash = parts(await a.exportSession(id)).find((part) => part.type === 'tool' && part.tool === 'bash');
    expect(bash.state.metadata.truncated).toBe(true);
    sourceOutput = { path: bash.state.metadata.outputPath, text: await readFile(bash.state.metadata.outputPath, 'utf8') };
  }, 240_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
  });

  it('an old-style checkpoint (no snapshot objects, no tool outputs) still pulls, with the warning', async () => {
    const pushed = await on(a, repoA, ['push']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    // What an older sessmig wrote: the same manifest without the new fields.
    const file = path.join(remoteDir, 'sessmig', 'v1', 'worktrees', pushed.json.worktree, 'checkpoints', `${pushed.json.checkpoint}.json`);
    const manifest = JSON.parse(await readFile(file, 'utf8'));
    expect(manifest.snapshots.packs.length).toBe(1);
    expect(manifest.sessions[0].toolOutputs).toHaveLength(1);
    delete manifest.snapshots;
    for (const session of manifest.sessions) delete session.toolOutputs;
    await writeFile(file, JSON.stringify(manifest, null, 2));
    const pulled = await on(b, repoB, ['pull']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).toMatch(/undo history \(revert \/ unrevert\) did not travel/);
    expect(pulled.json.sessions.find((session: { id: string }) => session.id === id).action).toBe('new');
    expectPathsUnder(await b.exportSession(id), repoB, repoA);
    await b.opencode(['session', 'delete', id], { cwd: repoB });
  });

  it('the next push carries what the old checkpoint lacked; pull brings snapshots and the truncated output', async () => {
    const pushed = await on(a, repoA, ['push']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    // The box deleted its copy above: deletions travel (#16), so it is brought back by name.
    const pulled = await on(b, repoB, ['pull', '--session', id]);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).not.toMatch(/did not travel/);
    const exported = await b.exportSession(id);
    expectPathsUnder(exported, repoB, repoA);
    const bash = parts(exported).find((part) => part.type === 'tool' && part.tool === 'bash');
    const rebased = path.join(b.dataDir, 'opencode', 'tool-output', path.basename(sourceOutput.path));
    expect(bash.state.metadata.outputPath).toBe(rebased);
    expect(await readFile(rebased, 'utf8')).toBe(sourceOutput.text);
  });

  it('revert to the second turn on the destination restores the first turn; unrevert brings the second back', async () => {
    // The files travel by git (or by hand); the sessions by sessmig.
    await writeFile(path.join(repoB, 'notes.txt'), SECOND);
    const [, secondTurn] = userMessages(await b.exportSession(id));
    await undo(b, repoB, id, { revertTo: secondTurn! });
    expect(await readFile(path.join(repoB, 'notes.txt'), 'utf8')).toBe(FIRST);
    expect(await readFile(path.join(repoA, 'notes.txt'), 'utf8')).toBe(SECOND);
    await undo(b, repoB, id, 'unrevert');
    expect(await readFile(path.join(repoB, 'notes.txt'), 'utf8')).toBe(SECOND);
  });

  it('a pending revert travels: unrevert on the destination restores the source tree it names', async () => {
    const [, secondTurn] = userMessages(await a.exportSession(id));
    await undo(a, repoA, id, { revertTo: secondTurn! });
    expect(await readFile(path.join(repoA, 'notes.txt'), 'utf8')).toBe(FIRST);
    const reverted = await a.exportSession(id);
    expect(reverted.info.revert?.snapshot).toMatch(/^[0-9a-f]{40}$/);
    const pushed = await on(a, repoA, ['push']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    // b reverted and unreverted too (a local change): take the remote copy.
    const pulled = await on(b, repoB, ['pull', '--force']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect((await b.exportSession(id)).info.revert?.snapshot).toBe(reverted.info.revert.snapshot);
    await writeFile(path.join(repoB, 'notes.txt'), FIRST);
    await undo(b, repoB, id, 'unrevert');
    expect(await readFile(path.join(repoB, 'notes.txt'), 'utf8')).toBe(SECOND);
  });
});

// Older destinations keep the snapshot repository elsewhere (1.3.2: per project) and have their own
// revert. 1.18.33 sessions carry summary.diffs patches that 1.3.2 cannot import, so 1.3.2 is tested
// 1.3.2 → 1.3.2, for where the objects go (its fake-LLM sessions carry no patch parts to revert).
describe.each([
  { version: '1.17.19', source: '1.18.33', revert: true },
  { version: '1.14.41', source: '1.18.33', revert: true },
  { version: '1.3.2', source: '1.3.2', revert: false },
])('destination opencode $version (source $source)', ({ version, source, revert }) => {
  const installed = installedOpencode(version);
  const sourceBin = installedOpencode(source).bin;
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let remoteDir: string;
  let id: string;
  beforeAll(async () => {
    if (!installed.bin || !sourceBin) return;
    a = await createHost(`files-src-${version}`, { llm, opencodeBin: sourceBin });
    b = await createHost(`files-dst-${version}`, { opencodeBin: installed.bin });
    await a.writeOpencodeConfig(llm);
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'other', 'app');
    await createRepo(repoA);
    await createRepo(repoB);
    remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    id = await makeSession(a, repoA);
  }, 240_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
  });

  it('pull puts the snapshot objects where this version looks (and its revert restores the first turn)', async (ctx) => {
    if (!installed.bin || !sourceBin) ctx.skip(installed.skip ?? `opencode ${source} is not installed`);
    const remote = pathToFileURL(remoteDir).href;
    const pushed = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const pulled = await sessmig(b, ['pull', '--remote', remote, '--json'], { cwd: repoB });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    const gitDir = snapshotGitDirs(path.join(b.dataDir, 'opencode'), pushed.json.worktree, repoB, version)[0]!;
    const trees = [...new Set(parts(await a.exportSession(id)).map((part) => part.snapshot ?? part.hash).filter(Boolean))] as string[];
    expect(trees.length).toBeGreaterThan(0);
    expect(await presentObjects(gitDir, trees)).toEqual(new Set(trees));
    if (!revert) return;
    await writeFile(path.join(repoB, 'notes.txt'), SECOND);
    const [, secondTurn] = userMessages(await b.exportSession(id));
    await undo(b, repoB, id, { revertTo: secondTurn! });
    expect(await readFile(path.join(repoB, 'notes.txt'), 'utf8')).toBe(FIRST);
    await undo(b, repoB, id, 'unrevert');
    expect(await readFile(path.join(repoB, 'notes.txt'), 'utf8')).toBe(SECOND);
  });
});

describe('through a pull ticket (loopback S3, no credentials on the pulling host)', () => {
  let target: S3Target | undefined;
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let id: string;
  beforeAll(async () => {
    target = await startS3rver();
    a = await createHost('files-ticket-a', { llm });
    b = await createHost('files-ticket-b');
    await a.writeOpencodeConfig(llm);
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'guest', 'app');
    await createRepo(repoA);
    await createRepo(repoB);
    id = await makeSession(a, repoA);
  }, 240_000);
  afterAll(async () => {
    await a?.cleanup();
    await b?.cleanup();
    await target?.dispose();
  });

  it('the ticket carries the snapshot pack and the tool output; the guest gets both', async () => {
    const remote = target!.remoteUrl('files/');
    const pushed = await sessmig(a, ['push', '--remote', remote, '--json'], { cwd: repoA, env: target!.env });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    const shared = await sessmig(a, ['share', '--remote', remote], { cwd: repoA, env: target!.env });
    expect(shared.exitCode, explain(shared)).toBe(0);
    const pulled = await sessmig(b, ['pull', '--from-url', shared.stdout.trim(), '--json'], { cwd: repoB });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).not.toMatch(/could not|did not travel/);
    const source = await a.exportSession(id);
    const trees = [...new Set(parts(source).map((part) => part.snapshot ?? part.hash).filter(Boolean))] as string[];
    const gitDir = snapshotGitDirs(path.join(b.dataDir, 'opencode'), pushed.json.worktree, repoB, '1.18.33')[0]!;
    expect(await presentObjects(gitDir, trees)).toEqual(new Set(trees));
    const bash = parts(await b.exportSession(id)).find((part) => part.type === 'tool' && part.tool === 'bash');
    expect(bash.state.metadata.outputPath.startsWith(path.join(b.dataDir, 'opencode', 'tool-output') + '/')).toBe(true);
    const sourceBash = parts(source).find((part) => part.type === 'tool' && part.tool === 'bash');
    expect(await readFile(bash.state.metadata.outputPath, 'utf8')).toBe(await readFile(sourceBash.state.metadata.outputPath, 'utf8'));
  });
});
