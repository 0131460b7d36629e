/**
 * The code leg through tickets (issue #17): a host without credentials receives a worktree's code
 * with its sessions through a pull ticket (`pull --from-url - --migrate` into an empty folder) and
 * hands both back through an upload ticket (`push --to-url - --migrate`); the host with credentials
 * verifies the uploaded bundles when it takes the upload in, and its `pull --migrate` restores the
 * box's code exactly. Real git, real opencode (its own view of the sessions), a real S3 API on
 * loopback (Ceph RGW when installed, s3rver otherwise). Plus: a damaged uploaded bundle is refused
 * with nothing made current, and on an encrypted worktree no file content, commit message or
 * commit id is readable anywhere in the bucket, ticket documents included.
 */
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { describeOnE2eS3 } from '../support/e2eTargets.js';
import { startS3Target, type S3Target } from '../support/s3.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';
import { git, gitState } from '../support/gitView.js';

let scene: Scene;
let laptop: Host;
let box: Host;
let box2: Host;
let box3: Host;
let repoB3: string;
let repoL: string;
let session: string;

/** What git says about a checkout, and the bytes of the files the test writes. */
async function gitView(cwd: string) {
  const read = (name: string) => readFile(path.join(cwd, name), 'utf8').catch(() => null);
  return {
    ...(await gitState(cwd)),
    files: { notes: await read('notes.md'), draft: await read('draft.txt'), box: await read('box.txt'), secret: await read('secret.env') },
  };
}

beforeAll(async () => {
  scene = await startScene(['laptop', 'box', 'box2', 'box3'], { llmOnAll: true });
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  box = scene.hosts[1]!.host;
  box2 = scene.hosts[2]!.host;
  ({ host: box3, repo: repoB3 } = scene.hosts[3]!);
  // Work the box does not have: a commit on a branch, staged, unstaged and untracked changes, an ignored file.
  await git(repoL, ['checkout', '-q', '-b', 'feature']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\n');
  await writeFile(path.join(repoL, '.gitignore'), 'secret.env\n');
  await git(repoL, ['add', 'notes.md', '.gitignore']);
  await git(repoL, ['commit', '-q', '--no-gpg-sign', '-m', 'laptop commit']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\nstaged line\n');
  await git(repoL, ['add', 'notes.md']);
  await writeFile(path.join(repoL, 'notes.md'), 'committed line\nstaged line\nunstaged line\n');
  await writeFile(path.join(repoL, 'draft.txt'), 'untracked draft\n');
  await writeFile(path.join(repoL, 'secret.env'), 'TOKEN=stays-home\n');
  session = (await laptop.run(repoL, 'work on the feature MARK-CODE-TICKET')).sessionID;
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

describeOnE2eS3('the code leg through tickets', (kind) => {
  let target: S3Target | undefined;
  let skipped: string | undefined;
  const need = (ctx: { skip: (note?: string) => void }) => {
    if (skipped) ctx.skip(skipped);
  };
  const onLaptop = (args: string[], prefix = 'team/') => sessmig(laptop, [...args, '--remote', target!.remoteUrl(prefix), '--json'], { cwd: repoL, env: target!.env });
  const share = async (args: string[], prefix = 'team/') => {
    const run = await onLaptop(['share', ...args], prefix);
    expect(run.exitCode, explain(run)).toBe(0);
    return run.json as { url: string; ticket: string; worktree: string; checkpoint: string };
  };
  const objectKeys = async (under: string) => {
    const out = await target!.client.send(new ListObjectsV2Command({ Bucket: target!.bucket, Prefix: under }));
    return (out.Contents ?? []).map((item) => item.Key!);
  };
  const pointerOf = async (prefix = 'team/') => {
    const status = (await onLaptop(['status'], prefix)).json;
    return { checkpoint: status.checkpoint, generation: status.generation, owner: status.owner };
  };

  beforeAll(async () => {
    const started = await startS3Target(kind);
    if ('skipped' in started) {
      skipped = started.skipped;
      return;
    }
    target = started;
  }, 120_000);

  afterAll(async () => {
    await target?.dispose();
  });

  let fresh: string;

  it('laptop → box without credentials → laptop: the checkout and the sessions travel both ways', async (ctx) => {
    need(ctx);
    expect(Object.keys(box.env).filter((name) => name.startsWith('AWS_'))).toEqual([]);
    const handOver = await onLaptop(['push', '--migrate']);
    expect(handOver.exitCode, explain(handOver)).toBe(0);
    expect(handOver.json.code).toMatchObject({ branch: 'feature', bundle: 'full' });
    const pullTicket = await share([]);

    // The box: an empty folder becomes the checkout; the ticket names the worktree.
    fresh = path.join(box.workDir, 'fresh');
    await mkdir(fresh, { recursive: true });
    const taken = await sessmig(box, ['pull', '--from-url', '-', '--migrate', '--json'], { cwd: fresh, input: pullTicket.url });
    expect(taken.exitCode, explain(taken)).toBe(0);
    expect(taken.json.code).toMatchObject({ branch: 'feature', created: true });
    const laptopView = await gitView(repoL);
    expect(await gitView(fresh)).toEqual({ ...laptopView, files: { ...laptopView.files, secret: null } });
    expect((await box.view(session)).directory).toBe(fresh);

    // The box works: a commit, an unstaged edit, a new untracked file, a turn in the session.
    await writeFile(path.join(fresh, 'notes.md'), 'committed line\nstaged line\nunstaged line\nbox line\n');
    await git(fresh, ['add', 'notes.md']);
    await git(fresh, ['commit', '-q', '--no-gpg-sign', '-m', 'box commit']);
    await writeFile(path.join(fresh, 'notes.md'), 'committed line\nstaged line\nunstaged line\nbox line\nbox unstaged\n');
    await writeFile(path.join(fresh, 'box.txt'), 'made on the box\n');
    await box.run(fresh, 'continued on the box MARK-BOX-CODE-TURN', { session });
    const boxSession = await box.messageCounts(session);

    const upload = await share(['--upload', '--max-sessions', '10']);
    const back = await sessmig(box, ['push', '--to-url', '-', '--migrate', '--json'], { cwd: fresh, input: upload.url });
    expect(back.exitCode, explain(back)).toBe(0);
    expect(back.json.code).toMatchObject({ branch: 'feature', bundle: 'incremental', bundles: 1 });
    // An increment against the ticket's base (not the whole history again): one 16 KiB class with its padding.
    expect(back.json.code.bundleBytes).toBeGreaterThan(0);
    expect(back.json.code.bundleBytes).toBeLessThan(16 * 1024);
    expect(back.json.code.uploadedBytes).toBe(16 * 1024);
    expect(await objectKeys(`team/sessmig/v1/worktrees/${upload.worktree}/incoming/${upload.ticket}/code/`)).toHaveLength(1);
    expect((await pointerOf()).checkpoint).toBe(handOver.json.checkpoint);

    // The laptop takes it in, verifies it, and restores the box's code and sessions exactly.
    const home = await onLaptop(['pull', '--migrate']);
    expect(home.exitCode, explain(home)).toBe(0);
    expect(home.json.uploads).toEqual([expect.objectContaining({ ticket: upload.ticket, checkpoint: upload.checkpoint })]);
    expect(home.json.claimed).toBe(true);
    expect(home.json.code).toMatchObject({ branch: 'feature', created: false });
    const boxView = await gitView(fresh);
    expect(await gitView(repoL)).toEqual({ ...boxView, files: { ...boxView.files, secret: 'TOKEN=stays-home\n' } });
    expect(await laptop.messageCounts(session)).toEqual(boxSession);
    expect((await laptop.view(session)).directory).toBe(repoL);
    expect(JSON.stringify(await laptop.exportSession(session))).toContain('MARK-BOX-CODE-TURN');
    // The uploaded bundle is an ordinary code object now; the upload's objects are gone.
    expect(await objectKeys(`team/sessmig/v1/worktrees/${upload.worktree}/incoming/`)).toEqual([]);
    expect((await objectKeys(`team/sessmig/v1/worktrees/${upload.worktree}/code/`)).length).toBe(2);
  });

  it('a damaged uploaded bundle is refused at take-in: nothing current, the checkout untouched', async (ctx) => {
    need(ctx);
    expect(fresh, 'needs the round trip before').toBeTruthy();
    const upload = await share(['--upload']);
    await writeFile(path.join(fresh, 'box.txt'), 'made on the box\nand changed again\n');
    await git(fresh, ['add', 'box.txt']);
    await git(fresh, ['commit', '-q', '--no-gpg-sign', '-m', 'second box commit']);
    const sent = await sessmig(box, ['push', '--to-url', '-', '--migrate', '--json'], { cwd: fresh, input: upload.url });
    expect(sent.exitCode, explain(sent)).toBe(0);
    const slotKey = `team/sessmig/v1/worktrees/${upload.worktree}/incoming/${upload.ticket}/code/0.bundle`;
    const slot = await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: slotKey }));
    const bytes = Buffer.from(await slot.Body!.transformToByteArray());
    bytes[bytes.indexOf(Buffer.from('PACK')) + 20] ^= 0xff;
    await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: slotKey, Body: bytes }));

    const before = { pointer: await pointerOf(), view: await gitView(repoL), messages: await laptop.messageCounts(session) };
    const refused = await onLaptop(['pull', '--migrate']);
    expect(refused.exitCode, explain(refused)).toBe(1);
    expect(refused.json.error.code).toBe('upload-rejected');
    expect(refused.stderr).toMatch(new RegExp(`upload ${upload.ticket} .* was refused: code bundle [0-9a-f]{64} \\(code slot 0\\) does not match its sha256 and size in the manifest`));
    expect({ pointer: await pointerOf(), view: await gitView(repoL), messages: await laptop.messageCounts(session) }).toEqual(before);
    expect(await objectKeys(`team/sessmig/v1/worktrees/${upload.worktree}/incoming/${upload.ticket}/rejected.json`)).toHaveLength(1);
  });

  it('a pull ticket of an older sessmig (no urls.code) (and an upload ticket without code slots) move the sessions only, saying the code did not travel', async (ctx) => {
    need(ctx);
    const ticket = await share([]);
    // What an older sessmig minted: the same document without the code leg's URLs (the URL signs the key, not the bytes).
    const key = `team/sessmig/v1/worktrees/${ticket.worktree}/tickets/${ticket.ticket}.json`;
    const stored = JSON.parse(Buffer.from(await (await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: key }))).Body!.transformToByteArray()).toString());
    expect(Object.keys(stored.urls.code)).toHaveLength(2);
    delete stored.urls.code;
    await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: key, Body: JSON.stringify(stored) }));

    const before = { head: await git(repoB3, ['rev-parse', 'HEAD']), status: await git(repoB3, ['status', '--porcelain']) };
    const pulled = await sessmig(box3, ['pull', '--from-url', '-', '--migrate', '--json'], { cwd: repoB3, input: ticket.url });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).toMatch(new RegExp(`checkpoint ${ticket.checkpoint} carries code, but ticket ${ticket.ticket} has no URLs for it \\(minted by an older sessmig\\): only the sessions are pulled, the code did not travel`));
    expect(pulled.json.code).toBeUndefined();
    expect({ head: await git(repoB3, ['rev-parse', 'HEAD']), status: await git(repoB3, ['status', '--porcelain']) }).toEqual(before);
    expect((await box3.view(session)).directory).toBe(repoB3);

    // And an upload ticket without code slots: the sessions go back, the code stays, and the laptop's checkout is left alone.
    const upload = await share(['--upload']);
    const uploadKey = `team/sessmig/v1/worktrees/${upload.worktree}/tickets/${upload.ticket}.json`;
    const doc = JSON.parse(Buffer.from(await (await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: uploadKey }))).Body!.transformToByteArray()).toString());
    expect(doc.urls.code).toHaveLength(2);
    expect(doc.base.code.head).toBe(await git(repoL, ['rev-parse', 'HEAD']));
    delete doc.urls.code;
    delete doc.limits.maxCodeBytes;
    delete doc.base;
    await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: uploadKey, Body: JSON.stringify(doc) }));
    await box3.run(repoB3, 'a turn on box3 MARK-BOX3-TURN', { session });
    const back = await sessmig(box3, ['push', '--to-url', '-', '--migrate', '--json'], { cwd: repoB3, input: upload.url });
    expect(back.exitCode, explain(back)).toBe(0);
    expect(back.stderr).toMatch(new RegExp(`upload ticket ${upload.ticket} has no code slots \\(minted by an older sessmig\\): only the sessions are uploaded, the code does not travel`));
    expect(back.json.code).toBeUndefined();
    const laptopBefore = await gitView(repoL);
    const home = await onLaptop(['pull', '--migrate']);
    expect(home.exitCode, explain(home)).toBe(0);
    expect(home.json.uploads).toEqual([expect.objectContaining({ ticket: upload.ticket })]);
    expect(home.json.code).toBeUndefined();
    expect(await gitView(repoL)).toEqual(laptopBefore);
    expect(JSON.stringify(await laptop.exportSession(session))).toContain('MARK-BOX3-TURN');
  });

  it('an encrypted worktree: the code travels both ways, and the bucket holds no file content, message or commit id', async (ctx) => {
    need(ctx);
    const sealed = 'sealed/';
    expect((await sessmig(laptop, ['key', 'new'], { cwd: repoL })).exitCode).toBe(0);
    await writeFile(path.join(repoL, 'draft.txt'), 'untracked MARK-SEALED-FILE\n');
    await git(repoL, ['add', '-A']);
    await git(repoL, ['commit', '-q', '--no-gpg-sign', '-m', 'sealed commit MARK-SEALED-MESSAGE']);
    await writeFile(path.join(repoL, 'notes.md'), 'unstaged MARK-SEALED-FILE\n');
    const handOver = await onLaptop(['push', '--migrate', '--encrypt'], sealed);
    expect(handOver.exitCode, explain(handOver)).toBe(0);
    const pullTicket = await share([], sealed);
    expect(pullTicket.url).toMatch(/#AGE-SECRET-KEY-1/);

    const fresh2 = path.join(box2.workDir, 'fresh');
    await mkdir(fresh2, { recursive: true });
    const taken = await sessmig(box2, ['pull', '--from-url', '-', '--migrate', '--json'], { cwd: fresh2, input: pullTicket.url });
    expect(taken.exitCode, explain(taken)).toBe(0);
    expect(await gitView(fresh2)).toEqual({ ...(await gitView(repoL)), files: { ...(await gitView(repoL)).files, secret: null } });

    await writeFile(path.join(fresh2, 'box.txt'), 'box2 MARK-SEALED-FILE\n');
    await git(fresh2, ['add', 'box.txt']);
    await git(fresh2, ['commit', '-q', '--no-gpg-sign', '-m', 'box2 commit MARK-SEALED-MESSAGE']);
    const upload = await share(['--upload'], sealed);
    const back = await sessmig(box2, ['push', '--to-url', '-', '--migrate', '--json'], { cwd: fresh2, input: upload.url });
    expect(back.exitCode, explain(back)).toBe(0);
    expect(back.json.code).toMatchObject({ bundle: 'incremental', bundles: 1 });
    // Before the take-in (the upload's objects are in the bucket) and after it.
    const secrets = ['MARK-SEALED', await git(repoL, ['rev-parse', 'HEAD']), await git(fresh2, ['rev-parse', 'HEAD']), 'sealed commit', 'box2 commit'];
    const assertNothingReadable = async () => {
      const objects = await target!.readAll();
      const under = [...objects].filter(([key]) => key.startsWith(sealed));
      expect(under.some(([key]) => key.includes('/tickets/'))).toBe(true);
      for (const [key, body] of under) {
        for (const secret of secrets) expect(body.includes(secret), `${key} holds ${secret}`).toBe(false);
        expect(body.subarray(0, 16).toString('latin1'), key).not.toMatch(/^# v\d git bundle/);
        expect(key).not.toMatch(/\/code\/[0-9a-f]{64}\.bundle$/);
      }
      return under.map(([key]) => key);
    };
    expect((await assertNothingReadable()).some((key) => key.includes('/incoming/'))).toBe(true);

    const home = await onLaptop(['pull', '--migrate'], sealed);
    expect(home.exitCode, explain(home)).toBe(0);
    expect(home.json.uploads).toHaveLength(1);
    const boxView = await gitView(fresh2);
    expect(await gitView(repoL)).toEqual({ ...boxView, files: { ...boxView.files, secret: 'TOKEN=stays-home\n' } });
    expect((await assertNothingReadable()).filter((key) => key.includes('/code/')).length).toBe(2);
  });
});
