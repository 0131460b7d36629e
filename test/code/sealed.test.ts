import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyCode } from '../../src/code/apply.js';
import { captureCode } from '../../src/code/capture.js';
import { fetchCodeLeg, storeCodeLeg } from '../../src/code/codeStore.js';
import { UserKey } from '../../src/crypto/keys.js';
import { SealedRemote } from '../../src/crypto/sealedRemote.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { codeSnapshot, gitIn, makeSandbox } from './gitFixture.js';

const WORKTREE = 'code-sealed';
const MARKER = 'Zq7-code-marker-Xv3';

async function allBytes(dir: string): Promise<{ names: string[]; bytes: Buffer }> {
  const names: string[] = [];
  const chunks: Buffer[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    names.push(path.relative(dir, full));
    if (entry.isFile()) chunks.push(await readFile(full));
  }
  return { names, bytes: Buffer.concat(chunks) };
}

describe('code leg through an encrypted worktree', () => {
  let sandbox: Awaited<ReturnType<typeof makeSandbox>>;
  beforeAll(async () => {
    sandbox = await makeSandbox();
  });
  afterAll(async () => sandbox.cleanup());

  it('seals bundles: no file content, commit message or bundle hash in the store; the box restores the state', async () => {
    const laptop = path.join(sandbox.dir, 'laptop');
    await gitIn(sandbox.dir, sandbox.env)('init', '-q', '-b', 'main', laptop);
    const git = gitIn(laptop, sandbox.env);
    await writeFile(path.join(laptop, 'tracked.txt'), `committed ${MARKER}\n`);
    await git('add', '-A');
    await git('commit', '-q', '-m', `commit message ${MARKER}`);
    await writeFile(path.join(laptop, 'untracked.txt'), `untracked ${MARKER}\n`);
    const tmp = path.join(sandbox.dir, 'tmp');
    await mkdir(tmp);

    const store = path.join(sandbox.dir, 'remote');
    const key = await UserKey.generate();
    const remote = await SealedRemote.open(new LocalRemote(store, 'file://remote'), key, WORKTREE, { tempDir: tmp, hostId: '00000000-0000-4000-8000-000000000000', marker: undefined });
    const captured = await captureCode(laptop, { tempDir: tmp, env: sandbox.env });
    const stored = await storeCodeLeg(remote, WORKTREE, captured);
    expect(stored.uploaded).toHaveLength(1);
    // Stored again: the sealed object is found under its keyed name with its plaintext size.
    expect((await storeCodeLeg(remote, WORKTREE, captured)).uploadedBytes).toBe(0);

    const { names, bytes } = await allBytes(store);
    const sha = captured.state.bundles[0]!.sha256;
    expect(names.some((name) => name.endsWith('.age') && name.includes('/code/'))).toBe(true);
    expect(names.join('\n')).not.toContain(sha);
    expect(bytes.includes(MARKER)).toBe(false);
    expect(bytes.includes('PACK')).toBe(false);
    expect(bytes.includes('git bundle')).toBe(false);
    expect(bytes.includes('refs/sessmig')).toBe(false);

    const box = path.join(sandbox.dir, 'box');
    const fetched = await fetchCodeLeg(remote, WORKTREE, captured.state, tmp);
    await applyCode(box, captured.state, { bundleFiles: fetched.files, tempDir: tmp, backupDir: path.join(sandbox.dir, 'backup'), env: sandbox.env });
    expect(await codeSnapshot(box, sandbox.env)).toEqual(await codeSnapshot(laptop, sandbox.env));
  });
});
