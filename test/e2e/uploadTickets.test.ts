/**
 * Upload tickets and the credential-less migrate round trip, on real parts: a laptop with
 * credentials hands its sessions to a box that has no AWS variables at all (a pull ticket), the box
 * continues a session with the real opencode and hands everything back through an upload ticket
 * (`sessmig push --to-url`), and the laptop's `sessmig pull --migrate` verifies the upload, makes it
 * current and claims ownership. Every outcome is read from opencode's own database. Against s3rver
 * (lenient) and, when its binaries are installed, a real Ceph radosgw (strict: signatures,
 * signed Content-Length and expiry enforced by the store).
 */
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSize } from '../../src/core/uploadTicket.js';
import { sizeClasses } from '../../src/format/ticketSchema.js';
import { startScene, type Scene } from '../support/scene.js';
import type { Host } from '../support/host.js';
import { describeOnE2eS3 } from '../support/e2eTargets.js';
import { startS3Target, type S3Target, type S3TargetKind } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';

describe('upload ticket parameters (no server)', () => {
  it('--max-bytes takes bytes or a unit, 16 KiB to 5 GiB', () => {
    expect(parseSize(undefined, '--max-bytes', 7)).toBe(7);
    expect([parseSize('16KiB', '--max-bytes', 0), parseSize('256M', '--max-bytes', 0), parseSize('1.5GiB', '--max-bytes', 0), parseSize('2GB', '--max-bytes', 0)]).toEqual([
      16384,
      256 * 1024 ** 2,
      1.5 * 1024 ** 3,
      2e9,
    ]);
    for (const bad of ['1k', '6GiB', '-1M', 'lots', '1e9', '']) expect(() => parseSize(bad, '--max-bytes', 0), bad).toThrow(/is not a size from 16KiB to 5GiB/);
  });

  it('size classes double from 16 KiB and end at the cap', () => {
    expect(sizeClasses(16384)).toEqual([16384]);
    expect(sizeClasses(100_000)).toEqual([16384, 32768, 65536, 100_000]);
    expect(sizeClasses(1024 ** 3).length).toBe(17);
  });
});

let scene: Scene;
let laptop: Host;
let box: Host;
let repoL: string;
let repoB: string;
const made = { plain: '', task: '', child: '' };

beforeAll(async () => {
  scene = await startScene(['laptop', 'box'], { llmOnAll: true });
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  ({ host: box, repo: repoB } = scene.hosts[1]!);
  made.plain = (await laptop.run(repoL, 'plain session MARK-UPLOAD')).sessionID;
  made.task = (await laptop.run(repoL, 'delegate [[task look around MARK-UPLOAD-CHILD]]')).sessionID;
  made.child = (await laptop.children(made.task))[0]!;
  expect(made.child).toBeTruthy();
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

describeOnE2eS3('upload tickets', (kind) => {
  let target: S3Target | undefined;
  let skipped: string | undefined;
  let url: string;
  let prefix: string;
  const runs: { run: SessmigRun; share: boolean }[] = [];

  const onLaptop = async (args: string[], env: Record<string, string> = {}) => {
    const run = await sessmig(laptop, [...args, '--remote', url], { cwd: repoL, env: { ...target!.env, ...env } });
    runs.push({ run, share: args[0] === 'share' });
    return run;
  };
  const onBox = async (args: string[]) => {
    const run = await sessmig(box, args, { cwd: repoB });
    runs.push({ run, share: false });
    return run;
  };
  const share = async (args: string[] = [], env: Record<string, string> = {}) => {
    const run = await onLaptop(['share', ...args], env);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
    return run.stdout.trim();
  };
  const keys = async (under: string): Promise<string[]> => {
    const out = await target!.client.send(new ListObjectsV2Command({ Bucket: target!.bucket, Prefix: `${prefix}${under}` }));
    return (out.Contents ?? []).map((item) => item.Key!.slice(prefix.length)).sort();
  };
  const status = async () => (await onLaptop(['status', '--json'])).json;
  const need = (ctx: { skip: (note?: string) => void }) => {
    if (skipped) ctx.skip(skipped);
  };

  beforeAll(async () => {
    const started = await startS3Target(kind);
    if ('skipped' in started) {
      skipped = started.skipped;
      return;
    }
    target = started;
    prefix = 'team/';
    url = target.remoteUrl(prefix);
  }, 120_000);

  afterAll(async () => {
    await target?.dispose();
  });

  it('the box has no AWS variables at all', (ctx) => {
    need(ctx);
    expect(Object.keys(box.env).filter((name) => name.startsWith('AWS_'))).toEqual([]);
  });

  it('the full migrate round trip with URLs alone: laptop → box → laptop', async (ctx) => {
    need(ctx);
    const handOver = await onLaptop(['push', '--migrate', '--json']);
    expect(handOver.exitCode, explain(handOver)).toBe(0);
    expect(handOver.json.owner).toBeNull();
    const pullUrl = await share();
    const uploadRun = await onLaptop(['share', '--upload', '--max-sessions', '10', '--max-bytes', '64MiB', '--json']);
    expect(uploadRun.exitCode, explain(uploadRun)).toBe(0);
    const upload = uploadRun.json ?? JSON.parse(uploadRun.stdout);
    expect(upload).toMatchObject({ direction: 'push', maxSessions: 10, maxBytes: 64 * 1024 ** 2, parent: handOver.json.checkpoint });
    expect(upload.url).toMatch(/X-Amz-Signature=[0-9a-f]{64}/);

    // Box: take the sessions over through the pull ticket, continue one, hand everything back.
    const taken = await onBox(['pull', '--from-url', pullUrl, '--migrate', '--json']);
    expect(taken.exitCode, explain(taken)).toBe(0);
    expect(taken.stderr).toMatch(/the remote's ownership is left to \S+, which shared it/);
    const before = await box.view(made.plain);
    await box.run(repoB, 'continued on the box MARK-BOX-TURN', { session: made.plain });
    const continued = await box.view(made.plain);
    expect(continued.messages).toBe(before.messages + 2);
    const made2 = (await box.run(repoB, 'a new session on the box MARK-BOX-NEW')).sessionID;

    const back = await onBox(['push', '--to-url', upload.url, '--migrate', '--json']);
    expect(back.exitCode, explain(back)).toBe(0);
    expect(back.json.status).toBe('uploaded');
    expect(back.json.checkpoint).toBe(upload.checkpoint);
    expect(back.json.sessions).toHaveLength(4);
    const incoming = await keys(`sessmig/v1/worktrees/${upload.worktree}/incoming/${upload.ticket}/`);
    expect(incoming.filter((key) => key.endsWith('manifest.json'))).toHaveLength(1);
    expect(incoming.filter((key) => /\/slots\/\d+\.json\.gz$/.test(key))).toHaveLength(4);
    // Nothing is current before the laptop verifies it.
    expect((await status()).checkpoint).toBe(handOver.json.checkpoint);

    // Laptop: take the upload in, claim, and see the box's work through opencode.
    const home = await onLaptop(['pull', '--migrate', '--json']);
    expect(home.exitCode, explain(home)).toBe(0);
    expect(home.json.uploads).toEqual([expect.objectContaining({ ticket: upload.ticket, checkpoint: upload.checkpoint, sessions: 4 })]);
    expect(home.json.checkpoint).toBe(upload.checkpoint);
    expect(home.json.claimed).toBe(true);
    const bySession = Object.fromEntries(home.json.sessions.map((s: { id: string; action: string }) => [s.id, s.action]));
    expect(bySession).toEqual({ [made.plain]: 'replace', [made.task]: 'unchanged', [made.child]: 'unchanged', [made2]: 'new' });
    const onLaptopNow = await laptop.view(made.plain);
    expect(onLaptopNow.messages).toBe(continued.messages);
    expect(onLaptopNow.parts).toBe(continued.parts);
    expect(onLaptopNow.directory).toBe(repoL);
    expect(JSON.stringify(await laptop.exportSession(made.plain))).toContain('MARK-BOX-TURN');
    expect((await laptop.view(made2)).directory).toBe(repoL);
    const after = await status();
    expect(after.ownedByThisHost).toBe(true);
    expect(after.checkpoint).toBe(upload.checkpoint);
    // The upload's objects are gone once taken in; a re-run changes nothing.
    expect(await keys(`sessmig/v1/worktrees/${upload.worktree}/incoming/`)).toEqual([]);
    const again = await onLaptop(['pull', '--json']);
    expect(again.exitCode, explain(again)).toBe(0);
    expect(again.json.uploads).toEqual([]);
    expect(again.json.sessions.every((s: { action: string }) => s.action === 'unchanged')).toBe(true);
  });

  it('refused on the box before any upload: too many sessions, a blob over the cap, another worktree, a pull ticket', async (ctx) => {
    need(ctx);
    const small = await share(['--upload', '--max-sessions', '1']);
    const tooMany = await onBox(['push', '--to-url', small, '--json']);
    expect(tooMany.exitCode, explain(tooMany)).toBe(2);
    expect(tooMany.json.error.code).toBe('ticket-too-small');
    expect(tooMany.stderr).toMatch(/this worktree has \d+ session\(s\) .* but upload ticket \S+ holds 1 slot\(s\); nothing was uploaded/);
    expect(tooMany.stderr).toMatch(/--max-sessions \d+/);

    const tiny = await share(['--upload', '--max-bytes', '16KiB']);
    const big = (await box.run(repoB, 'a large answer [[big 2000]]')).sessionID;
    const over = await onBox(['push', '--to-url', tiny, '--session', big, '--json']);
    expect(over.exitCode, explain(over)).toBe(2);
    expect(over.json.error.code).toBe('blob-too-large');
    expect(over.stderr).toMatch(new RegExp(`session ${big} is \\d+ bytes compressed, over upload ticket \\S+'s cap of 16384 bytes per session; nothing was uploaded`));

    const other = await onBox(['push', '--to-url', small, '--worktree', 'another-worktree', '--json']);
    expect(other.exitCode, explain(other)).toBe(2);
    expect(other.json.error.code).toBe('ticket-other-worktree');

    const pullTicket = await share();
    const wrong = await onBox(['push', '--to-url', pullTicket, '--json']);
    expect(wrong.exitCode, explain(wrong)).toBe(2);
    expect(wrong.stderr).toMatch(/the URL is a pull ticket \(for `sessmig pull --from-url`\), not an upload ticket/);
    const wrongWay = await onBox(['pull', '--from-url', small, '--json']);
    expect(wrongWay.exitCode, explain(wrongWay)).toBe(2);
    expect(wrongWay.stderr).toMatch(/the URL is an upload ticket \(for `sessmig push --to-url`\), not a pull ticket/);

    expect(await keys('sessmig/v1/worktrees/')).not.toContainEqual(expect.stringMatching(/\/incoming\/.*manifest\.json$/));
  });

  it('an expired upload ticket is refused before anything is exported or uploaded', async (ctx) => {
    need(ctx);
    const soon = await share(['--upload'], { SESSMIG_TEST_TICKET_SECONDS: '1' });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const run = await onBox(['push', '--to-url', soon, '--json']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.json.error.code).toBe('ticket-expired');
    expect(run.stderr).toMatch(/expired at \S+ \(\d+ s ago\); nothing was uploaded/);
  });

  it('a bad upload is refused by the laptop: nothing imported, nothing made current, and it stays rejected', async (ctx) => {
    need(ctx);
    const pointerOf = async () => {
      const now = await status();
      return { checkpoint: now.checkpoint, generation: now.generation, owner: now.owner };
    };
    const pointerBefore = await pointerOf();
    const sessionsBefore = await laptop.sessions();
    const countsBefore = await Promise.all(sessionsBefore.map((row) => laptop.messageCounts(row.id)));

    // Tampered slot: the same size, other bytes (an uploader that lies about its blob).
    const first = JSON.parse((await onLaptop(['share', '--upload', '--json'])).stdout);
    await box.run(repoB, 'one more turn MARK-TAMPER', { session: made.plain });
    const up = await onBox(['push', '--to-url', first.url, '--session', made.plain, '--json']);
    expect(up.exitCode, explain(up)).toBe(0);
    const slotKey = `${prefix}sessmig/v1/worktrees/${first.worktree}/incoming/${first.ticket}/slots/0.json.gz`;
    const slot = await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: slotKey }));
    const bytes = Buffer.from(await slot.Body!.transformToByteArray());
    bytes[20] = bytes[20]! ^ 0xff;
    await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: slotKey, Body: bytes }));
    const refused = await onLaptop(['pull', '--json']);
    expect(refused.exitCode, explain(refused)).toBe(1);
    expect(refused.json.error.code).toBe('upload-rejected');
    expect(refused.stderr).toMatch(new RegExp(`upload ${first.ticket} \\(through an upload ticket\\) was refused: session ${made.plain} \\(slot 0\\) (does not match its sha256|is not a gzip stream)`));
    expect(await pointerOf()).toEqual(pointerBefore);
    expect(await Promise.all(sessionsBefore.map((row) => laptop.messageCounts(row.id)))).toEqual(countsBefore);

    // A missing slot, and a manifest that names a slot outside its ticket.
    const second = JSON.parse((await onLaptop(['share', '--upload', '--max-sessions', '2', '--json'])).stdout);
    expect((await onBox(['push', '--to-url', second.url, '--session', made.plain])).exitCode).toBe(0);
    await target!.client.send(
      new DeleteObjectCommand({ Bucket: target!.bucket, Key: `${prefix}sessmig/v1/worktrees/${second.worktree}/incoming/${second.ticket}/slots/0.json.gz` }),
    );
    const third = JSON.parse((await onLaptop(['share', '--upload', '--max-sessions', '2', '--json'])).stdout);
    expect((await onBox(['push', '--to-url', third.url, '--session', made.plain])).exitCode).toBe(0);
    const manifestKey = `${prefix}sessmig/v1/worktrees/${third.worktree}/incoming/${third.ticket}/manifest.json`;
    const manifest = JSON.parse(Buffer.from(await (await target!.client.send(new GetObjectCommand({ Bucket: target!.bucket, Key: manifestKey }))).Body!.transformToByteArray()).toString());
    manifest.sessions[0].slot = 7;
    await target!.client.send(new PutObjectCommand({ Bucket: target!.bucket, Key: manifestKey, Body: JSON.stringify(manifest) }));
    await target!.client.send(
      new CopyObjectCommand({
        Bucket: target!.bucket,
        Key: `${prefix}sessmig/v1/worktrees/${third.worktree}/incoming/${third.ticket}/slots/7.json.gz`,
        CopySource: `${target!.bucket}/${prefix}sessmig/v1/worktrees/${third.worktree}/incoming/${third.ticket}/slots/0.json.gz`,
      }),
    );

    const missing = await onLaptop(['pull', '--json']);
    expect(missing.exitCode, explain(missing)).toBe(1);
    expect(missing.stderr).toMatch(/rejected earlier and are ignored/);
    expect(missing.stderr).toMatch(new RegExp(`upload ${second.ticket} .* was refused: session ${made.plain} \\(slot 0\\) is missing from its slot`));
    const outside = await onLaptop(['pull', '--json']);
    expect(outside.exitCode, explain(outside)).toBe(1);
    expect(outside.stderr).toMatch(new RegExp(`upload ${third.ticket} .* was refused: its manifest names a slot twice or a slot outside the ticket`));
    expect(await pointerOf()).toEqual(pointerBefore);

    // All three are ignored from now on; the pull goes on with the current checkpoint.
    const calm = await onLaptop(['pull', '--json']);
    expect(calm.exitCode, explain(calm)).toBe(0);
    expect(calm.stderr).toMatch(/3 upload\(s\) .* were rejected earlier and are ignored/);
    expect(calm.json.checkpoint).toBe(pointerBefore.checkpoint);
    expect(await Promise.all(sessionsBefore.map((row) => laptop.messageCounts(row.id)))).toEqual(countsBefore);
  });

  it('a tampered upload URL is refused by the store itself (strict target)', async (ctx) => {
    need(ctx);
    if (!target!.strict) ctx.skip(`${kind} does not verify signatures: tampering can only be shown on a strict store (ceph)`);
    const good = await share(['--upload']);
    const tampered = good.replace(/(X-Amz-Signature=[0-9a-f]{10})([0-9a-f])/, (_, head: string, c: string) => `${head}${c === '0' ? '1' : '0'}`);
    const run = await onBox(['push', '--to-url', tampered, '--json']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.json.error.code).toBe('url-tampered');
  });

  it("no output but share's stdout holds a URL signature", (ctx) => {
    need(ctx);
    for (const { run, share: isShare } of runs) {
      expect(run.stderr, explain(run)).not.toMatch(/X-Amz-Signature=(?!REDACTED)/i);
      if (!isShare) expect(run.stdout, explain(run)).not.toMatch(/X-Amz-Signature=(?!REDACTED)/i);
    }
  });
});
