/**
 * Encryption turned on for a worktree that already has plaintext checkpoints (issue 23, item 3), on
 * the real opencode 1.18.33 and a file remote: plain push, `key new`, `push --encrypt` works and
 * seals the current checkpoint and every blob it names (their plaintext copies deleted); a plaintext checkpoint planted later is
 * still refused; `check` reports a damaged sealed manifest or blob (exit 1, the object named)
 * instead of aborting; pull refuses a session whose sealed blob is damaged, alone (exit 3); and
 * SESSMIG_ENCRYPT=1 in the environment changes nothing for pull and status of a plaintext worktree.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { createHost, createRepo, type Host } from '../support/host.js';
import { e2eS3Kinds, startS3Target } from '../support/s3.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

const AGE = 'age-encryption.org/v1';
let scene: Scene;
let laptop: Host;
let box: Host;
let repoL: string;
let repoB: string;
let dir: string;
let url: string;
let worktree = '';
let key = '';
const made = { plain: '', task: '', child: '' };
const extraHosts: Host[] = [];

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  ({ host: box, repo: repoB } = scene.hosts[1]!);
  made.plain = (await laptop.run(repoL, 'plain work')).sessionID;
  made.task = (await laptop.run(repoL, 'delegate [[task look around]]')).sessionID;
  made.child = (await laptop.children(made.task))[0]!;
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-late-enc-'));
  url = pathToFileURL(dir).href;
}, 300_000);

afterAll(async () => {
  await scene?.dispose();
  for (const host of extraHosts) await host.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const wt = () => path.join(dir, 'sessmig', 'v1', 'worktrees', worktree);
const head = async () => JSON.parse(await readFile(path.join(wt(), 'HEAD.json'), 'utf8'));
const checkpointFile = (id: string) => path.join(wt(), 'checkpoints', `${id}.json`);

describe('encryption turned on late', () => {
  it('SESSMIG_ENCRYPT=1 in the environment changes nothing for pull and status of a plaintext worktree', async () => {
    const pushed = await sessmig(laptop, ['push', '--migrate', '--remote', url, '--json'], { cwd: repoL });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    worktree = pushed.json.worktree;
    // The box has no key at all: encryption was never asked of pull or status.
    const env = { SESSMIG_ENCRYPT: '1' };
    const status = await sessmig(box, ['status', '--remote', url, '--json'], { cwd: repoB, env });
    expect(status.exitCode, explain(status)).toBe(0);
    expect(status.json.encrypted).toBeFalsy();
    const pulled = await sessmig(box, ['pull', '--migrate', '--remote', url, '--json'], { cwd: repoB, env });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.sessions).toHaveLength(3);
    expect(pulled.json.claimed).toBe(true);
    expect((await head()).owner.hostname).not.toBe('');
    expect(await readdir(wt())).not.toContain('ENCRYPTION.json');
    // Hand the worktree back to the laptop, still in the clear.
    const back = await sessmig(box, ['push', '--migrate', '--remote', url], { cwd: repoB });
    expect(back.exitCode, explain(back)).toBe(0);
    const claimed = await sessmig(laptop, ['pull', '--migrate', '--remote', url], { cwd: repoL });
    expect(claimed.exitCode, explain(claimed)).toBe(0);
    expect(await readdir(wt())).not.toContain('ENCRYPTION.json');
  });

  it('plain push, key new, push --encrypt: the current checkpoint and its blobs are sealed, readable only with the key', async () => {
    const made1 = await sessmig(laptop, ['key', 'new'], { cwd: repoL });
    expect(made1.exitCode, explain(made1)).toBe(0);
    key = (await sessmig(laptop, ['key', 'show'], { cwd: repoL })).stdout.trim();
    await laptop.run(repoL, 'more work', { session: made.plain }); // one session changed, two reused
    const sealed = await sessmig(laptop, ['push', '--encrypt', '--remote', url, '--json'], { cwd: repoL });
    expect(sealed.exitCode, explain(sealed)).toBe(0);
    const adopted = /sealed 2 blob\(s\) this worktree had in plaintext(?:, and (\d+) other object)?/.exec(sealed.stderr);
    expect(adopted, explain(sealed)).not.toBeNull();
    const current = (await head()).checkpoint;
    const body = await readFile(checkpointFile(current));
    expect(body.subarray(0, AGE.length).toString()).toBe(AGE);
    for (const needle of [made.plain, made.task, made.child, 'Fake title']) expect(body.includes(Buffer.from(needle))).toBe(false);
    expect(await readdir(wt())).toContain('ENCRYPTION.json');
    // Three blobs (one re-exported, two adopted) and what the sessions point at (snapshot packs), all sealed.
    const sealedBlobs = (await readdir(path.join(wt(), 'blobs'))).filter((name) => name.endsWith('.age'));
    expect(sealedBlobs).toHaveLength(3 + Number(adopted?.[1] ?? 0));
    expect((await readdir(path.join(wt(), 'blobs'))).filter((name) => /\.(?:pack|out)\.gz$/.test(name))).toEqual([]);
    // The plaintext copies of what it sealed are gone: left is the old version of the session that
    // changed, which only the older plaintext checkpoints name.
    const plainLeft = (await readdir(path.join(wt(), 'blobs'))).filter((name) => name.endsWith('.json.gz'));
    expect(plainLeft).toHaveLength(1);
    const oldCopy = JSON.parse(gunzipSync(await readFile(path.join(wt(), 'blobs', plainLeft[0]!))).toString('utf8'));
    expect(oldCopy.info.id).toBe(made.plain);
    expect(oldCopy.messages.length).toBeLessThan((await laptop.messageCounts(made.plain)).messages);
    // No key: refused before anything is read; with the key: the sessions arrive.
    const none = await sessmig(box, ['pull', '--remote', url, '--json'], { cwd: repoB });
    expect(none.exitCode, explain(none)).toBe(2);
    expect(none.json.error.code).toBe('no-key');
    const withKey = await sessmig(box, ['pull', '--remote', url, '--json'], { cwd: repoB, env: { SESSMIG_KEY: key } });
    expect(withKey.exitCode, explain(withKey)).toBe(0);
    expect((await box.messageCounts(made.plain)).messages).toBe((await laptop.messageCounts(made.plain)).messages);
    // Later pushes seal without --encrypt; check reads everything through the key, and calls the
    // plaintext checkpoints of before a leftover (a warning), not damage.
    const again = await sessmig(laptop, ['push', '--remote', url], { cwd: repoL });
    expect(again.exitCode, explain(again)).toBe(0);
    const check = await sessmig(laptop, ['check', '--read-data', '--remote', url, '--json'], { cwd: repoL });
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.problems.filter((p: { severity: string }) => p.severity === 'error')).toEqual([]);
    expect(check.json.problems.some((p: { code: string; severity: string }) => p.code === 'not-encrypted' && p.severity === 'warning')).toBe(true);
  });

  it('a plaintext checkpoint planted after encryption is refused by push, pull and check', async () => {
    const pointer = await head();
    const checkpoints = (await readdir(path.join(wt(), 'checkpoints'))).sort();
    const plain = [];
    for (const name of checkpoints) if (!(await readFile(path.join(wt(), 'checkpoints', name))).subarray(0, AGE.length).equals(Buffer.from(AGE))) plain.push(name);
    expect(plain.length).toBeGreaterThan(0);
    const planted = JSON.parse(await readFile(path.join(wt(), 'checkpoints', plain[0]!), 'utf8'));
    const id = `${new Date(Date.now() + 60_000).toISOString().replace(/[-:.]/g, '').replace('Z', '')}Z-0badf00d`;
    planted.id = id;
    await writeFile(checkpointFile(id), JSON.stringify(planted));
    const headFile = path.join(wt(), 'HEAD.json');
    const savedHead = await readFile(headFile);
    await writeFile(headFile, JSON.stringify({ ...pointer, checkpoint: id }));
    try {
      const push = await sessmig(laptop, ['push', '--remote', url, '--json'], { cwd: repoL });
      expect(push.exitCode, explain(push)).toBe(1);
      expect(push.json.error.code).toBe('not-encrypted');
      expect(push.stderr).toMatch(/it was planted/);
      const pull = await sessmig(box, ['pull', '--remote', url, '--json'], { cwd: repoB, env: { SESSMIG_KEY: key } });
      expect(pull.json.error.code, explain(pull)).toBe('not-encrypted');
      const check = await sessmig(laptop, ['check', '--remote', url, '--json'], { cwd: repoL });
      expect(check.exitCode, explain(check)).toBe(1);
      expect(check.json.problems).toContainEqual(expect.objectContaining({ severity: 'error', code: 'not-encrypted', key: expect.stringContaining(id) }));
    } finally {
      await writeFile(headFile, savedHead);
      await rm(checkpointFile(id));
    }
  });

  it('a damaged sealed manifest or blob: check names it (exit 1); pull refuses that session alone (exit 3)', async () => {
    const current = (await head()).checkpoint;
    const manifest = checkpointFile(current);
    const saved = await readFile(manifest);
    const flipped = Buffer.from(saved);
    flipped[flipped.length - 20]! ^= 0x01;
    await writeFile(manifest, flipped);
    try {
      const check = await sessmig(laptop, ['check', '--remote', url, '--json'], { cwd: repoL });
      expect(check.exitCode, explain(check)).toBe(1);
      expect(check.json.problems).toContainEqual(
        expect.objectContaining({ severity: 'error', code: 'sealed-unreadable', key: expect.stringContaining(`checkpoints/${current}.json`), message: expect.stringMatching(/failed authentication/) }),
      );
    } finally {
      await writeFile(manifest, saved);
    }

    // One sealed session blob damaged. Its keyed name hides what it holds (a session blob, or a
    // snapshot pack sealed alike): check names the kind, so the first one it calls a blob is used.
    const blobs = path.join(wt(), 'blobs');
    let name: string | undefined;
    let body: Buffer | undefined;
    for (const candidate of (await readdir(blobs)).filter((file) => file.endsWith('.age')).sort()) {
      const original = await readFile(path.join(blobs, candidate));
      const bad = Buffer.from(original);
      bad[bad.length - 20]! ^= 0x01;
      await writeFile(path.join(blobs, candidate), bad);
      const check = await sessmig(laptop, ['check', '--read-data', '--remote', url, '--json'], { cwd: repoL });
      expect(check.exitCode, explain(check)).toBe(1);
      const problem = (check.json.problems as { code: string; message: string }[]).find((item) => item.message.includes(candidate));
      expect(problem?.code, explain(check)).toMatch(/^(?:blob|pack|output)-corrupt$/);
      if (problem?.code === 'blob-corrupt') {
        [name, body] = [candidate, original];
        break;
      }
      await writeFile(path.join(blobs, candidate), original);
    }
    expect(name, 'no sealed session blob found').toBeDefined();
    try {

      // A host that has none of the sessions: that one is refused (with its children), the others come in.
      const desk = await createHost('desk');
      extraHosts.push(desk);
      const repoD = path.join(desk.workDir, 'app');
      await createRepo(repoD);
      const pull = await sessmig(desk, ['pull', '--remote', url, '--json'], { cwd: repoD, env: { SESSMIG_KEY: key } });
      expect(pull.exitCode, explain(pull)).toBe(3);
      expect(pull.stderr).toMatch(/cannot be opened: .*failed authentication/);
      const actions: string[] = pull.json.sessions.map((s: { action: string }) => s.action);
      expect(actions).toContain('refused');
      const arrived = pull.json.sessions.filter((s: { action: string }) => s.action !== 'refused').map((s: { id: string }) => s.id);
      expect(arrived.length).toBeGreaterThan(0);
      expect((await desk.sessions()).map((row) => row.id).sort()).toEqual([...arrived].sort());
    } finally {
      await writeFile(path.join(blobs, name!), body!);
    }
  });

  it('on S3 too: the switch seals the current checkpoint and deletes the plaintext copies of its blobs', async (ctx) => {
    const started = await startS3Target(e2eS3Kinds().run.at(-1)!);
    if ('skipped' in started) return ctx.skip(started.skipped);
    try {
      const s3url = started.remoteUrl('late/');
      const env = started.env;
      if (!key) {
        expect((await sessmig(laptop, ['key', 'new'], { cwd: repoL })).exitCode).toBe(0);
        key = (await sessmig(laptop, ['key', 'show'], { cwd: repoL })).stdout.trim();
      }
      const plainPush = await sessmig(laptop, ['push', '--remote', s3url, '--json'], { cwd: repoL, env });
      expect(plainPush.exitCode, explain(plainPush)).toBe(0);
      const sealedPush = await sessmig(laptop, ['push', '--encrypt', '--remote', s3url, '--json'], { cwd: repoL, env });
      expect(sealedPush.exitCode, explain(sealedPush)).toBe(0);
      const adopted = /sealed 3 blob\(s\) this worktree had in plaintext(?:, and (\d+) other object)?/.exec(sealedPush.stderr);
      expect(adopted, explain(sealedPush)).not.toBeNull();
      const listed = await started.client.send(new ListObjectsV2Command({ Bucket: started.bucket, Prefix: 'late/' }));
      const keys = (listed.Contents ?? []).map((item) => item.Key!);
      // The 3 blobs and what their sessions point at (snapshot packs, tool outputs), all sealed; no plaintext copy left.
      expect(keys.filter((key) => key.endsWith('.age'))).toHaveLength(3 + Number(adopted?.[1] ?? 0));
      expect(keys.filter((key) => /\.(?:json|pack|out)\.gz$|\.bundle$/.test(key))).toEqual([]);
      expect(keys.some((key) => key.endsWith('/ENCRYPTION.json'))).toBe(true);
      const guest = await createHost('guest');
      extraHosts.push(guest);
      const repoG = path.join(guest.workDir, 'app');
      await createRepo(repoG);
      const none = await sessmig(guest, ['pull', '--remote', s3url, '--json'], { cwd: repoG, env });
      expect(none.json?.error?.code, explain(none)).toBe('no-key');
      const pulled = await sessmig(guest, ['pull', '--remote', s3url, '--json'], { cwd: repoG, env: { ...env, SESSMIG_KEY: key } });
      expect(pulled.exitCode, explain(pulled)).toBe(0);
      expect((await guest.sessions()).length).toBe(3);
    } finally {
      await started.dispose();
    }
  });
});
