/**
 * Version skew on pull, with the real opencode 1.18.33 on both hosts: an older exporter is
 * represented by its recorded version in the manifest (the field pull and doctor read). Real older
 * builds, refusals and adapted blobs are in versionMatrix.test.ts.
 *
 * opencode 2.x is not installable here (published apart from `opencode-ai`), so its part is played
 * by a stand-in script: `--version` prints 2.0.4, anything else prints a usage page and exits 0 —
 * what 2.x does for `opencode export` / `import` (see ../shared/OPENCODE.md). It logs its arguments.
 */
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
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

/** A stand-in for opencode 2.x: what it does for the commands sessmig knows from 1.x. */
async function opencode2(): Promise<{ bin: string; calls: () => Promise<string[]> }> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'sessmig-opencode2-'));
  const bin = path.join(folder, 'opencode');
  const log = path.join(folder, 'calls.log');
  await writeFile(
    bin,
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n` +
      `if [ "$1" = "--version" ]; then echo 2.0.4; exit 0; fi\n` +
      `cat <<'USAGE'\nopencode <command>\n\nCommands:\n  opencode session export <id>  export a session\n  opencode session import <file>  import a session\nUSAGE\nexit 0\n`,
  );
  await chmod(bin, 0o755);
  return { bin, calls: async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean) };
}

/** Every file under `dir` with its size and mtime: what "nothing was written" compares. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const file = path.join(entry.parentPath, entry.name);
    const info = await stat(file);
    out.push(`${path.relative(root, file)} ${info.isFile() ? info.size : 'dir'} ${info.mtimeMs}`);
  }
  return out.sort();
}

describe('an opencode major sessmig does not know (issue 23, item 2)', () => {
  it('doctor, push, pull and status refuse opencode 2.0.4 before reading or writing anything', async () => {
    await setSourceVersion('1.18.33');
    const oc2 = await opencode2();
    const env = { SESSMIG_OPENCODE: oc2.bin };
    const before = await snapshot(dir);
    const sessionsBefore = (await b.sessions()).map((row) => row.id).sort();

    const doctor = await sessmig(b, ['doctor', '--remote', url], { cwd: repoB, env });
    expect(doctor.exitCode, explain(doctor)).toBe(1);
    expect(doctor.stderr).toMatch(/opencode 2\.0\.4 \(.*opencode\) is not supported: this sessmig knows opencode 1\.x \(tested: 1\.2\.27 to 1\.18\.33\)/);
    expect(doctor.stdout).not.toMatch(/compatible\s+yes/);

    for (const args of [['pull'], ['pull', '--migrate'], ['push'], ['status']]) {
      const run = await sessmig(args[0] === 'push' ? a : b, [...args, '--remote', url, '--json'], { cwd: args[0] === 'push' ? repoA : repoB, env });
      expect(run.exitCode, `${args.join(' ')}: ${explain(run)}`).toBe(2);
      expect(run.json.error).toMatchObject({ code: 'opencode-unsupported', opencodeVersion: '2.0.4', supported: '>=1.0.0 <2.0.0' });
      expect(run.stderr).toMatch(/opencode 2\.0\.4 .*is not supported.*opencode 1\.x.*nothing was read or written/);
      expect(run.stderr).not.toMatch(/invalid JSON|usage|import of/i);
    }
    // A remote that cannot even be read: the refusal comes first, so it is the one reported.
    const notAFolder = path.join(dir, 'not-a-folder');
    await writeFile(notAFolder, 'x');
    const unread = await sessmig(a, ['push', '--remote', pathToFileURL(notAFolder).href, '--json'], { cwd: repoA, env });
    expect(unread.json?.error?.code, explain(unread)).toBe('opencode-unsupported');
    await rm(notAFolder);

    expect(await snapshot(dir)).toEqual(before);
    expect((await b.sessions()).map((row) => row.id).sort()).toEqual(sessionsBefore);
    // opencode 2 was asked its version, and nothing else (no export, import, db or serve).
    const calls = await oc2.calls();
    expect(calls.length).toBeGreaterThan(0);
    expect(new Set(calls)).toEqual(new Set(['--version']));
    await rm(path.dirname(oc2.bin), { recursive: true, force: true });
  });

  it('a checkpoint exported by opencode 2.x is not called compatible either', async () => {
    await setSourceVersion('2.0.4');
    const doctor = await sessmig(b, ['doctor', '--remote', url], { cwd: repoB });
    expect(doctor.exitCode, explain(doctor)).toBe(1);
    expect(doctor.stdout).toMatch(/compatible\s+NO/);
    expect(doctor.stdout).toMatch(/unknown-opencode-major: opencode 2\.0\.4 is outside what this sessmig knows/);
    const pull = await sessmig(b, ['pull', '--remote', url, '--json'], { cwd: repoB });
    expect(pull.exitCode, explain(pull)).toBe(1);
    expect(pull.json.error).toMatchObject({ code: 'version-skew', breaks: ['unknown-opencode-major'] });
    await setSourceVersion('1.18.33');
  });
});
