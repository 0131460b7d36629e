/**
 * `opencode --version` is asked once per binary file, not once per command: a wrapper around the
 * real opencode counts how often it is started.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Opencode } from '../../src/opencode/opencode.js';
import { resolveBinary, VersionCache } from '../../src/opencode/versionCache.js';
import { defaultOpencodeBin } from '../support/host.js';

describe('the opencode version cache', () => {
  let dir: string;
  let wrapper: string;
  let counter: string;
  const starts = async () => Number((await readFile(counter, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean).length);

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-version-cache-'));
    counter = path.join(dir, 'starts');
    wrapper = path.join(dir, 'bin', 'opencode');
    await writeWrapper();
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeWrapper(extra = ''): Promise<void> {
    await mkdir(path.dirname(wrapper), { recursive: true });
    await writeFile(wrapper, `#!/bin/bash\necho started >> ${JSON.stringify(counter)}\n${extra}exec ${JSON.stringify(defaultOpencodeBin())} "$@"\n`);
    await chmod(wrapper, 0o755);
  }

  function opencode(cacheFile: string, bin = wrapper, env: NodeJS.ProcessEnv = {}): Opencode {
    return new Opencode({ bin, env: { PATH: process.env.PATH, HOME: dir, ...env }, timeoutMs: 60_000, tempDir: dir, versionCache: new VersionCache(cacheFile) });
  }

  it('asks the binary once, then answers from the cache until the file changes', async () => {
    const cacheFile = path.join(dir, 'cache', 'sessmig', 'opencode-versions.json');
    const first = await opencode(cacheFile).version();
    expect(first).toMatch(/^\d+\.\d+\.\d+$/);
    expect(await starts()).toBe(1);
    // A new command (a new Opencode) with the same cache: no process.
    expect(await opencode(cacheFile).version()).toBe(first);
    expect(await starts()).toBe(1);
    const stored = JSON.parse(await readFile(cacheFile, 'utf8'));
    expect(Object.values(stored)).toEqual([expect.objectContaining({ version: first })]);
    // The same name found on PATH is the same file.
    expect(await opencode(cacheFile, 'opencode', { PATH: `${path.dirname(wrapper)}:${process.env.PATH}` }).version()).toBe(first);
    expect(await starts()).toBe(1);
    // An upgrade writes the file anew: asked again.
    await writeWrapper('# upgraded\n');
    expect(await opencode(cacheFile).version()).toBe(first);
    expect(await starts()).toBe(2);
    // Only the modification time changed: asked again too.
    const later = new Date(Date.now() + 5_000);
    await utimes(wrapper, later, later);
    await opencode(cacheFile).version();
    expect(await starts()).toBe(3);
  });

  it('a damaged or unwritable cache only means asking opencode', async () => {
    const cacheFile = path.join(dir, 'damaged.json');
    await writeFile(cacheFile, '{not json');
    const before = await starts();
    await opencode(cacheFile).version();
    expect(await starts()).toBe(before + 1);
    expect(JSON.parse(await readFile(cacheFile, 'utf8'))).toBeTypeOf('object');
    const unwritable = path.join(dir, 'starts', 'cannot', 'be', 'here.json'); // under a regular file
    await opencode(unwritable).version();
    await opencode(unwritable).version();
    expect(await starts()).toBe(before + 3);
  });

  it('remembers facts of a binary beside its version, and forgets them with the file', async () => {
    const cacheFile = path.join(dir, 'facts.json');
    const cache = new VersionCache(cacheFile);
    const binary = (await resolveBinary(wrapper, {}))!;
    // No version remembered yet: a fact has nothing to ride on.
    await cache.setFact(binary, 'replayRoutes', '1.0.0');
    expect(await cache.getFact(binary, 'replayRoutes')).toBeUndefined();
    const version = await opencode(cacheFile).version();
    await cache.setFact(binary, 'replayRoutes', version);
    expect(await cache.getFact(binary, 'replayRoutes')).toBe(version);
    expect(await cache.get(binary)).toBe(version);
    // The file changed (an upgrade): the fact is not trusted, and a new version drops it.
    const later = new Date(Date.now() + 10_000);
    await utimes(wrapper, later, later);
    expect(await cache.getFact(binary, 'replayRoutes')).toBeUndefined();
    await cache.set(binary, version);
    expect(await cache.getFact(binary, 'replayRoutes')).toBeUndefined();
  });

  it('resolves a bare name on PATH, and nothing when it is not there', async () => {
    expect(await resolveBinary('opencode', { PATH: path.dirname(wrapper) })).toBe(wrapper);
    expect(await resolveBinary('opencode', { PATH: path.join(dir, 'nowhere') })).toBeUndefined();
    expect(await resolveBinary(path.join(dir, 'missing'), {})).toBeUndefined();
  });
});
