/**
 * End-to-end encryption on real parts: the real opencode on simulated hosts and a real S3 API on
 * loopback (the strictest target available). The laptop pushes with --encrypt; then every byte the
 * S3 server stored is read back and searched for what the sessions hold; a box without the key, or
 * with another one, is refused before anything is imported; with the key the round trip is exact
 * in opencode's own view; a flipped ciphertext byte is refused.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { hostWithRepo, startScene, type Scene } from '../support/scene.js';
import { e2eS3Kinds, startS3Target, type S3Target } from '../support/s3.js';
import { explain, sessmig } from './harness.js';

const MARK = 'MARK-SEALED-PLAN-7f3a';
let scene: Scene;
let laptop: Host;
let box: Host;
let repoL: string;
let repoB: string;
let target: S3Target | undefined;
let skipped: string | undefined;
let url: string;
const made = { plain: '', task: '', child: '' };
const prefix = 'enc/';

beforeAll(async () => {
  const kind = e2eS3Kinds().run.at(-1)!;
  const started = await startS3Target(kind);
  if ('skipped' in started) {
    skipped = started.skipped;
    return;
  }
  target = started;
  url = target.remoteUrl(prefix);
  scene = await startScene(['laptop', 'box']);
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  ({ host: box, repo: repoB } = scene.hosts[1]!);
  made.plain = (await laptop.run(repoL, `the plan is ${MARK}`)).sessionID;
  made.task = (await laptop.run(repoL, `delegate [[task look at ${MARK}-CHILD]]`)).sessionID;
  made.child = (await laptop.children(made.task))[0]!;
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
  await target?.dispose();
});

const onLaptop = (args: string[], env: Record<string, string> = {}) => sessmig(laptop, [...args, '--remote', url], { cwd: repoL, env: { ...target!.env, ...env } });
const onBox = (args: string[], env: Record<string, string> = {}) => sessmig(box, [...args, '--remote', url], { cwd: repoB, env: { ...target!.env, ...env } });

const stored_ = () => stored();
async function stored(): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const list = await target!.client.send(new ListObjectsV2Command({ Bucket: target!.bucket, Prefix: prefix }));
  for (const item of list.Contents ?? []) {
    const got = await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: item.Key! }));
    out.set(item.Key!.slice(prefix.length), Buffer.from(await got.Body!.transformToByteArray()));
  }
  return out;
}

describe('end-to-end encryption', () => {
  let laptopKey = '';

  it('key new keeps a 0600 key file; key show prints it; a second key new refuses to replace it', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const made1 = await sessmig(laptop, ['key', 'new'], { cwd: repoL });
    expect(made1.exitCode, explain(made1)).toBe(0);
    expect(made1.stderr).toMatch(/made key [0-9a-f]{16} in .*sessmig\/key/);
    expect(made1.stderr).toMatch(/without it, sessions pushed with --encrypt cannot be read by anyone/);
    expect(made1.stdout).toBe('');
    expect((await stat(path.join(laptop.configDir, 'sessmig', 'key'))).mode & 0o777).toBe(0o600);
    const shown = await sessmig(laptop, ['key', 'show'], { cwd: repoL });
    expect(shown.exitCode, explain(shown)).toBe(0);
    laptopKey = shown.stdout.trim();
    expect(laptopKey).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    const again = await sessmig(laptop, ['key', 'new'], { cwd: repoL });
    expect(again.exitCode, explain(again)).toBe(2);
    expect(again.stderr).toMatch(/already holds another key .*it was not replaced/);
    expect((await sessmig(laptop, ['key', 'show'], { cwd: repoL })).stdout.trim()).toBe(laptopKey);
  });

  it('push --encrypt: the bucket holds no session text, title, id or path, nothing gunzips, and blob names are keyed', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const pushed = await onLaptop(['push', '--encrypt', '--migrate', '--json']);
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(pushed.json.sessions).toHaveLength(3);
    const objects = await stored();
    const worktree = pushed.json.worktree as string;
    const root = `sessmig/v1/worktrees/${worktree}/`;
    expect([...objects.keys()].filter((key) => key.includes('/blobs/')).every((key) => /\/blobs\/[0-9a-f]{64}\.age$/.test(key))).toBe(true);
    const needles = [MARK, made.plain, made.task, made.child, repoL, laptop.workDir, 'Fake title'];
    for (const [key, body] of objects) {
      for (const needle of needles) expect(body.includes(Buffer.from(needle)), `${key} holds ${needle}`).toBe(false);
      expect(() => gunzipSync(body), `${key} gunzips`).toThrow();
      if (key.startsWith(`${root}checkpoints/`) || key.includes('/blobs/')) expect(body.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    }
    const pointer = JSON.parse(objects.get(`${root}HEAD.json`)!.toString());
    expect(pointer.owner).toBeNull();
    expect(pointer.updatedBy.hostname).toBe('');
    const marker = JSON.parse(objects.get(`${root}ENCRYPTION.json`)!.toString());
    expect(marker).toMatchObject({ kind: 'sessmig.encryption', scheme: 'age-x25519-v1' });
    const status = await onLaptop(['status', '--json']);
    expect(status.json.encrypted.keyId).toBe(marker.keyId);
    const ls = await onLaptop(['ls']);
    expect(ls.stdout).toMatch(new RegExp(`encrypted \\(key ${marker.keyId}\\)`));
    expect(ls.stdout).toMatch(/3 sessions/);
    // check reads the sealed manifests and blobs through the key.
    const check = await onLaptop(['check', '--read-data', '--json']);
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.problems).toEqual([]);
  });

  it('a box without the key, or with another key, is refused before anything is imported; a plain push too', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const none = await onBox(['pull', '--json']);
    expect(none.exitCode, explain(none)).toBe(2);
    expect(none.json.error.code).toBe('no-key');
    expect(none.stderr).toMatch(/is encrypted \(key [0-9a-f]{16}\) and this host has no key; nothing was read or written/);
    const plainPush = await onBox(['push', '--json']);
    expect(plainPush.exitCode, explain(plainPush)).toBe(2);
    expect(plainPush.json.error.code).toBe('no-key');
    const other = await sessmig(box, ['key', 'new'], { cwd: repoB });
    expect(other.exitCode, explain(other)).toBe(0);
    const wrong = await onBox(['pull', '--json']);
    expect(wrong.exitCode, explain(wrong)).toBe(2);
    expect(wrong.json.error.code).toBe('wrong-key');
    const ls = await onBox(['ls']);
    expect(ls.stdout).toMatch(/encrypted \(key [0-9a-f]{16}, not this host's\)/);
    expect(await box.sessions()).toEqual([]);
  });

  it('a flipped ciphertext byte in a blob or the manifest is refused; nothing is imported', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const objects = await stored();
    // Every object under blobs/ damaged — the sessions' blobs and the snapshot pack beside them
    // (sealed under keyed names, they look alike): the pack is read first and a damaged one fails
    // the pull whole (exit 1) before any session is touched. A damaged session blob alone is
    // refused per session (exit 3): test/e2e/lateEncryption.test.ts. The manifest damaged: exit 1.
    for (const [pick, exitCode] of [
      [(key: string) => key.includes('/blobs/'), 1],
      [(key: string) => key.includes('/checkpoints/'), 1],
    ] as const) {
      const damaged = [...objects].filter(([name]) => pick(name));
      for (const [key, body] of damaged) {
        const flipped = Buffer.from(body);
        flipped[flipped.length - 20]! ^= 0x01;
        await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: prefix + key, Body: flipped }));
      }
      try {
        const run = await onBox(['pull', '--json'], { SESSMIG_KEY: laptopKey });
        expect(run.exitCode, explain(run)).toBe(exitCode);
        expect(run.stderr).toMatch(/failed authentication: the ciphertext was changed or cut short/);
        expect(await box.sessions()).toEqual([]);
      } finally {
        for (const [key, body] of damaged) await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: prefix + key, Body: body }));
      }
    }
  });

  it('with the key (key import), the round trip is exact as opencode sees it, and pushing back stays encrypted', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const imported = await sessmig(box, ['key', 'import', '--force'], { cwd: repoB, input: `${laptopKey}\n` });
    expect(imported.exitCode, explain(imported)).toBe(0);
    const pulled = await onBox(['pull', '--migrate', '--json']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.json.sessions.map((s: { action: string }) => s.action)).toEqual(['new', 'new', 'new']);
    // one `opencode db` per host for all of them
    const [sources, dests] = await Promise.all([laptop.views([made.plain, made.task, made.child]), box.views([made.plain, made.task, made.child])]);
    for (const [index, source] of sources.entries()) {
      const dest = dests[index]!;
      expect({ ...dest, directory: undefined, projectID: undefined }).toEqual({ ...source, directory: undefined, projectID: undefined });
      expect(dest.directory).toBe(repoB);
    }
    expect(JSON.stringify(await box.exportSession(made.plain))).toContain(MARK);
    // The box pushes without --encrypt: the worktree stays encrypted.
    const back = await onBox(['push', '--json']);
    expect(back.exitCode, explain(back)).toBe(0);
    for (const [key, body] of await stored()) expect(body.includes(Buffer.from(MARK)), key).toBe(false);
  });

  it('a ticket carries the checkpoint key in its fragment: a host with no AWS variables and no key pulls; without the fragment, or with a flipped byte, it is refused', async (ctx) => {
    if (skipped) ctx.skip(skipped);
    const guest = await hostWithRepo('guest', { llm: scene.llm });
    try {
      expect(Object.keys(guest.host.env).filter((name) => name.startsWith('AWS_') || name === 'SESSMIG_KEY')).toEqual([]);
      const shared = await onLaptop(['share', '--json']);
      expect(shared.exitCode, explain(shared)).toBe(0);
      const doc = JSON.parse(shared.stdout);
      const ticketUrl = doc.url as string;
      const [bare, fragment] = ticketUrl.split('#');
      expect(fragment).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
      expect(fragment).not.toBe(laptopKey);
      const onGuest = (args: string[]) => sessmig(guest.host, args, { cwd: guest.repo });
      // The ticket object itself is ciphertext.
      const stored = await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: `${prefix}${doc.key}` }));
      const ticketBytes = Buffer.from(await stored.Body!.transformToByteArray());
      expect(ticketBytes.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
      for (const needle of [MARK, made.plain, 'X-Amz-Signature']) expect(ticketBytes.includes(Buffer.from(needle)), needle).toBe(false);

      const noKey = await onGuest(['pull', '--from-url', bare!, '--json']);
      expect(noKey.exitCode, explain(noKey)).toBe(2);
      expect(noKey.json.error.code).toBe('ticket-key-missing');
      expect(await guest.host.sessions()).toEqual([]);

      // Every object under blobs/ damaged, the snapshot pack included: the pack is read first and
      // a damaged one fails the pull whole (exit 1) before any session is touched.
      const objects = await stored_();
      const damaged = [...objects].filter(([name]) => name.includes('/blobs/'));
      for (const [blobKey, body] of damaged) {
        const flipped = Buffer.from(body);
        flipped[flipped.length - 20]! ^= 0x01;
        await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: prefix + blobKey, Body: flipped }));
      }
      try {
        const bad = await onGuest(['pull', '--from-url', ticketUrl, '--json']);
        expect(bad.exitCode, explain(bad)).toBe(1);
        expect(bad.stderr).toMatch(/failed authentication/);
        expect(await guest.host.sessions()).toEqual([]);
      } finally {
        for (const [blobKey, body] of damaged) await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: prefix + blobKey, Body: body }));
      }

      const good = await onGuest(['pull', '--from-url', ticketUrl, '--json']);
      expect(good.exitCode, explain(good)).toBe(0);
      expect(good.json.sessions).toHaveLength(3);
      const view = await guest.host.view(made.plain);
      expect(view.messages).toBe((await box.view(made.plain)).messages);
      expect(view.directory).toBe(guest.repo);
      expect(JSON.stringify(await guest.host.exportSession(made.plain))).toContain(MARK);

      // The way back through an upload ticket: sealed on the guest, verified and taken in by the laptop.
      const up = await onLaptop(['share', '--upload', '--max-sessions', '5', '--json']);
      expect(up.exitCode, explain(up)).toBe(0);
      const upload = JSON.parse(up.stdout);
      expect(upload.url).toMatch(/#AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
      await guest.host.run(guest.repo, 'the guest adds MARK-GUEST-TURN-91', { session: made.plain });
      const sent = await onGuest(['push', '--to-url', upload.url, '--json']);
      expect(sent.exitCode, explain(sent)).toBe(0);
      const incoming = [...(await stored_())].filter(([name]) => name.includes('/incoming/'));
      expect(incoming.length).toBeGreaterThan(3);
      for (const [name, body] of incoming) {
        expect(body.subarray(0, 21).toString(), name).toBe('age-encryption.org/v1');
        for (const needle of [MARK, 'MARK-GUEST-TURN-91', made.plain]) expect(body.includes(Buffer.from(needle)), `${name} holds ${needle}`).toBe(false);
      }
      const home = await onLaptop(['pull', '--migrate', '--force', '--json']);
      expect(home.exitCode, explain(home)).toBe(0);
      expect(home.json.uploads).toEqual([expect.objectContaining({ ticket: upload.ticket, sessions: 3 })]);
      expect(JSON.stringify(await laptop.exportSession(made.plain))).toContain('MARK-GUEST-TURN-91');
      expect((await laptop.view(made.plain)).messages).toBe((await guest.host.view(made.plain)).messages);
      for (const [name, body] of await stored_()) {
        expect(body.includes(Buffer.from('MARK-GUEST-TURN-91')), name).toBe(false);
        expect(name.includes('/blobs/') ? /\/blobs\/[0-9a-f]{64}\.age$/.test(name) : true, name).toBe(true);
      }
    } finally {
      await guest.host.cleanup();
    }
  });
});
