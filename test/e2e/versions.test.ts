/**
 * Version skew on pull, with the real opencode 1.18.33 on both hosts: an older exporter is
 * represented by its recorded version in the manifest (the field pull and doctor read). Real older
 * builds, refusals and adapted blobs are in versionMatrix.test.ts.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let dir: string;
let url: string;
let manifestFile: string;

let scene: Scene;

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  await a.run(repoA, 'some work');
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  url = pathToFileURL(dir).href;
  const pushed = await sessmig(a, ['push', '--remote', url, '--json'], { cwd: repoA });
  expect(pushed.exitCode, explain(pushed)).toBe(0);
  const cpDir = path.join(dir, 'sessmig', 'v1', 'worktrees', pushed.json.worktree, 'checkpoints');
  manifestFile = path.join(cpDir, (await readdir(cpDir))[0]!);
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function setSourceVersion(version: string): Promise<void> {
  const manifest = JSON.parse(await readFile(manifestFile, 'utf8'));
  manifest.source.opencodeVersion = version;
  await writeFile(manifestFile, JSON.stringify(manifest));
}

describe('opencode version skew', () => {
  it('doctor reports both versions and that they are the same', async () => {
    const run = await sessmig(b, ['doctor', '--remote', url, '--json'], { cwd: repoB });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.opencode.version).toBe('1.18.33');
    expect(run.json.remoteExport.opencodeVersion).toBe('1.18.33');
    expect(run.json.compatibility.verdict).toBe('same');
  });

  it('a known break that an adapter carries: doctor says so, the pull adapts and goes', async () => {
    await setSourceVersion('1.3.2');
    const doctor = await sessmig(b, ['doctor', '--remote', url], { cwd: repoB });
    expect(doctor.exitCode, explain(doctor)).toBe(0);
    expect(doctor.stdout).toMatch(/compatible\s+yes — opencode 1\.3\.2 exported these sessions and 1\.18\.33 imports them once adapted: summary\.diffs before\/after become patch/);
    const run = await sessmig(b, ['pull', '--remote', url], { cwd: repoB });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.stderr).toMatch(/warning: opencode 1\.3\.2 exported these sessions and 1\.18\.33 imports them once adapted/);
    expect((await b.sessions()).length).toBe(1);
  });

  it('a different version without a known break warns and goes', async () => {
    await setSourceVersion('1.17.20');
    const run = await sessmig(b, ['pull', '--remote', url], { cwd: repoB });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.stderr).toMatch(/warning: opencode 1\.17\.20 exported these sessions and 1\.18\.33 imports them/);
  });
});
