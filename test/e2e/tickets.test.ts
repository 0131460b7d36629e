/**
 * Pull tickets on real parts: a host with credentials pushes and runs `sessmig share`; a host with
 * no AWS variables at all pulls through the one URL it printed (`sessmig pull --from-url`), checked
 * through opencode's own database. Against s3rver (lenient: no signature checks) and, when its
 * binaries are installed, a real Ceph radosgw (strict: signatures and expiry enforced).
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTicket, parseExpires, parseTicket } from '../../src/core/ticket.js';
import { TicketRemote } from '../../src/remote/ticketRemote.js';
import { SessmigError } from '../../src/util/errors.js';
import { startScene, type Scene } from '../support/scene.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { describeOnE2eS3 } from '../support/e2eTargets.js';
import { startS3Target, type S3Target } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';
import { recordFault } from '../support/reliability.js';

/** A signature value that was not redacted. */
const SIGNATURE = /X-Amz-Signature=(?!REDACTED)[^&\s"'<>]+/i;

describe('ticket documents (no server)', () => {
  const ticket = {
    formatVersion: 1,
    kind: 'sessmig.ticket',
    direction: 'pull',
    id: '20261125T214617123Z-0123456789abcdef',
    worktree: 'app',
    checkpoint: '20261125T214617123Z-1a2b3c4d',
    createdAt: '2026-11-25T21:46:17.000Z',
    expiresAt: '2026-11-25T22:46:17.000Z',
    remote: 's3://bucket/team/',
    issuedBy: { hostId: '0f8fad5b-d9cb-469f-a165-70867728950e', hostname: 'laptop' },
    urls: {
      manifest: 'https://s3.example/bucket/x.json?X-Amz-Signature=abc',
      blobs: { ['a'.repeat(64)]: 'https://s3.example/bucket/b.json.gz?X-Amz-Signature=def' },
    },
  };
  const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
  const codeOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      return { code: (error as SessmigError).code, message: (error as Error).message };
    }
    return undefined;
  };
  const before = new Date('2026-11-25T22:00:00Z');

  it('reads a valid ticket and refuses an expired one before anything else', () => {
    expect(parseTicket(bytes(ticket), before).checkpoint).toBe(ticket.checkpoint);
    const expired = codeOf(() => parseTicket(bytes(ticket), new Date('2026-11-25T22:46:18Z')));
    expect(expired?.code).toBe('ticket-expired');
    expect(expired?.message).toMatch(/expired at 2026-11-25T22:46:17.000Z \(1 s ago\); nothing was downloaded/);
  });

  it('tells apart not-JSON, not-a-ticket, a newer format, a push ticket and a schema error', () => {
    expect(codeOf(() => parseTicket(Buffer.from('<Error/>'), before))?.code).toBe('ticket-malformed');
    expect(codeOf(() => parseTicket(bytes({ formatVersion: 1, kind: 'sessmig.checkpoint' }), before))?.code).toBe('not-a-ticket');
    expect(codeOf(() => parseTicket(bytes({ ...ticket, formatVersion: 2 }), before))?.message).toMatch(/upgrade sessmig/);
    expect(codeOf(() => parseTicket(bytes({ ...ticket, direction: 'push' }), before))?.code).toBe('ticket-wrong-direction');
    expect(codeOf(() => parseTicket(bytes({ ...ticket, direction: 'sideways' }), before))?.message).toMatch(/direction "sideways", which this sessmig does not know: upgrade sessmig/);
    const bad = codeOf(() => parseTicket(bytes({ ...ticket, urls: { ...ticket.urls, manifest: 'file:///etc/passwd' } }), before));
    expect(bad).toMatchObject({ code: 'ticket-invalid' });
    expect(bad?.message).toMatch(/urls\.manifest: not an http\(s\) URL/);
  });

  it('--expires takes 30s to 7d', () => {
    expect(parseExpires(undefined)).toBe(3600);
    expect([parseExpires('30s'), parseExpires('15m'), parseExpires('1h'), parseExpires('7d')]).toEqual([30, 900, 3600, 604800]);
    // One grammar with prune's durations (#19): weeks and compound durations read the same everywhere.
    expect([parseExpires('1w'), parseExpires('1h30m')]).toEqual([604800, 5400]);
    for (const bad of ['1s', '8d', '2w', '1.5h', 'h', '-1h', '', '500ms']) expect(codeOf(() => parseExpires(bad))?.code, bad).toBe('bad-flag');
  });
});

let scene: Scene;
let a: Host;
let repoA: string;
const made = { plain: '', task: '', child: '' };

beforeAll(async () => {
  scene = await startScene(['laptop']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  made.plain = (await a.run(repoA, 'plain session MARK-TICKET')).sessionID;
  made.task = (await a.run(repoA, 'delegate [[task look around MARK-TICKET-CHILD]]')).sessionID;
  const children = await a.children(made.task);
  expect(children).toHaveLength(1);
  made.child = children[0]!;
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

describeOnE2eS3('pull tickets', (kind) => {
  let target: S3Target | undefined;
  let skipped: string | undefined;
  let b: Host;
  let repoB: string;
  let url: string;
  let pushed: string;
  /** Every run of this block: share's stdout may hold its URL, nothing else may. */
  const runs: { run: SessmigRun; share: boolean }[] = [];

  const onA = async (args: string[], env: Record<string, string> = {}) => {
    const run = await sessmig(a, [...args, '--remote', url], { cwd: repoA, env: { ...target!.env, ...env } });
    runs.push({ run, share: args[0] === 'share' });
    return run;
  };
  const onB = async (args: string[]) => {
    const run = await sessmig(b, args, { cwd: repoB });
    runs.push({ run, share: false });
    return run;
  };
  const share = async (args: string[] = [], env: Record<string, string> = {}) => {
    const run = await onA(['share', ...args], env);
    expect(run.exitCode, explain(run)).toBe(0);
    const ticketUrl = run.stdout.trim();
    expect(ticketUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\S+X-Amz-Signature=[0-9a-f]{64}/);
    expect(ticketUrl.split('\n')).toHaveLength(1);
    return ticketUrl;
  };
  const need = (ctx: { skip: (note?: string) => void }) => {
    if (skipped) ctx.skip(skipped);
  };

  beforeAll(async () => {
    const started = await startS3Target(kind);
    if ('skipped' in started) {
      skipped = started.skipped;
      console.warn(`[tickets] ${kind} target skipped: ${skipped}`);
      return;
    }
    target = started;
    url = target.remoteUrl('team/');
    b = await createHost('box');
    repoB = path.join(b.workDir, 'elsewhere', 'app-clone');
    await createRepo(repoB);
    const push = await onA(['push', '--json']);
    expect(push.exitCode, explain(push)).toBe(0);
    expect(push.json.sessions).toHaveLength(3);
    pushed = push.json.checkpoint;
  }, 240_000);

  afterAll(async () => {
    await b?.cleanup();
    await target?.dispose();
  });

  it('the pulling host has no AWS variables at all', (ctx) => {
    need(ctx);
    expect(Object.keys(b.env).filter((name) => name.startsWith('AWS_'))).toEqual([]);
    expect(b.env.SESSMIG_REMOTE).toBeUndefined();
  });

  it('share: one URL on stdout (url in --json); refuses a bad --expires and a file:// remote', async (ctx) => {
    need(ctx);
    const json = await onA(['share', '--json', '--expires', '15m', '--checkpoint', pushed]);
    expect(json.exitCode, explain(json)).toBe(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.checkpoint).toBe(pushed);
    console.info(`[tickets] ${kind}: a ticket of ${doc.blobs} blobs is ${doc.bytes} bytes`);
    expect(doc.url).toMatch(/X-Amz-Signature=[0-9a-f]{64}/);
    expect(doc.url).toMatch(/X-Amz-Expires=900&/);
    expect(doc).toMatchObject({ command: 'share', sessions: 3, blobs: 3 });
    expect(doc.key).toMatch(new RegExp(`^sessmig/v1/worktrees/${doc.worktree}/tickets/${doc.ticket}\\.json$`));
    expect(json.stderr).not.toMatch(SIGNATURE);

    const badExpiry = await onA(['share', '--expires', '2w']);
    expect(badExpiry.exitCode, explain(badExpiry)).toBe(2);
    expect(badExpiry.stderr).toMatch(/--expires "2w" is not a duration from 30s to 7d/);
    expect(badExpiry.stderr).toMatch(/30s, 15m, 1h .*7d/);
    expect(badExpiry.stdout).toBe('');

    const folder = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    try {
      const run = await sessmig(a, ['share', '--remote', pathToFileURL(folder).href], { cwd: repoA });
      runs.push({ run, share: false });
      expect(run.exitCode, explain(run)).toBe(2);
      expect(run.stderr).toMatch(/tickets need an s3:\/\/ remote/);
      expect(run.stdout).toBe('');
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('an expired ticket is refused before any download; nothing is imported', async (ctx) => {
    need(ctx);
    const ticketUrl = await share([], { SESSMIG_TEST_TICKET_SECONDS: '1' });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const run = await onB(['pull', '--from-url', ticketUrl, '--json']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.json.error.code).toBe('ticket-expired');
    expect(run.stderr).toMatch(/sessmig: the ticket URL expired at \S+ \(\d+ s ago\); nothing was downloaded/);
    expect(run.stderr).toMatch(/hint: ask the host that shared it for a new ticket/);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'security', fault: 'expired ticket URL', target: kind, outcome: 'refused before any download; nothing imported' });
  });

  it('a blob URL that expires mid-pull is refused by the server with a clear message', async (ctx) => {
    need(ctx);
    // What a pull meets when the ticket runs out between reading it and downloading a blob.
    const ticketUrl = await share([], { SESSMIG_TEST_TICKET_SECONDS: '6' });
    const ticket = await fetchTicket(ticketUrl);
    const remote = new TicketRemote(ticket);
    const key = remote.keys().find((k) => k.endsWith('.json.gz'))!;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(ticket.expiresAt) - Date.now()) + 1500));
    const error = await remote.getStream(key).then(
      () => undefined,
      (e: unknown) => e as SessmigError,
    );
    expect(error).toBeInstanceOf(SessmigError);
    expect(error!.code, error!.message).toBe('url-expired');
    expect(error!.message).toMatch(/^download of sessmig\/v1\/worktrees\/\S+\/blobs\/[0-9a-f]{64}\.json\.gz: download failed with HTTP 403 \S+: the presigned URL (has expired|expired at \S+)$/);
    expect(`${error!.message} ${error!.hint} ${JSON.stringify(error!.data)}`).not.toMatch(SIGNATURE);
    await expect(remote.put(key, Buffer.from('x'))).rejects.toThrow(/a pull ticket is read-only: cannot write/);
    expect(await remote.get('sessmig/v1/worktrees/x/HEAD.json', 1024)).toBeUndefined();
    recordFault({ area: 'security', fault: 'ticket blob URL expires mid-pull', target: kind, outcome: 'refused by the server, clear message; nothing imported' });
  });

  it('a ticket for another worktree is refused; nothing is imported', async (ctx) => {
    need(ctx);
    const ticketUrl = await share();
    const run = await onB(['pull', '--from-url', ticketUrl, '--worktree', 'some-other-worktree', '--json']);
    expect(run.exitCode, explain(run)).toBe(2);
    expect(run.json.error.code).toBe('ticket-other-worktree');
    expect(run.stderr).toMatch(/the ticket is for worktree [0-9a-f]{40}, but this worktree's key is some-other-worktree; nothing was pulled/);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'security', fault: 'ticket for another worktree', target: kind, outcome: 'refused; nothing imported' });
  });

  it('a tampered ticket URL is refused (signature mismatch); nothing is imported', async (ctx) => {
    need(ctx);
    if (!target!.strict) ctx.skip(`${kind} does not verify signatures: tampering can only be shown on a strict store (ceph)`);
    const ticketUrl = await share();
    const tampered = ticketUrl.replace(/(X-Amz-Signature=[0-9a-f]{10})([0-9a-f])/, (_, head: string, c: string) => `${head}${c === '0' ? '1' : '0'}`);
    expect(tampered).not.toBe(ticketUrl);
    const run = await onB(['pull', '--from-url', tampered, '--json']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.json.error.code).toBe('url-tampered');
    expect(run.stderr).toMatch(/ticket: download failed with HTTP 403 SignatureDoesNotMatch: the URL's signature does not match/);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'security', fault: 'tampered ticket URL', target: kind, outcome: 'refused (signature mismatch); nothing imported' });
  });

  it('a deleted ticket object is refused as missing; nothing is imported', async (ctx) => {
    need(ctx);
    const run0 = await onA(['share', '--json']);
    expect(run0.exitCode, explain(run0)).toBe(0);
    const doc = JSON.parse(run0.stdout);
    await target!.client.send(new DeleteObjectCommand({ Bucket: target!.bucket, Key: `team/${doc.key}` }));
    const run = await onB(['pull', '--from-url', doc.url, '--json']);
    expect(run.exitCode, explain(run)).toBe(1);
    expect(run.json.error.code).toBe('not-found');
    expect(run.stderr).toMatch(/ticket: download failed with HTTP 404.*the object is missing \(the ticket was deleted, or the URL was cut short\)/);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'security', fault: 'deleted ticket object', target: kind, outcome: 'refused as missing; nothing imported' });
  });

  it('--remote and --checkpoint are refused with --from-url', async (ctx) => {
    need(ctx);
    // Refused before any request: even a URL that names no server shows the flag checks.
    const ticketUrl = `http://127.0.0.1:9/nowhere.json?X-Amz-Signature=${'f'.repeat(64)}`;
    const checkpoint = await onB(['pull', '--from-url', ticketUrl, '--checkpoint', '20261125T214617123Z-1a2b3c4d']);
    expect(checkpoint.exitCode, explain(checkpoint)).toBe(2);
    expect(checkpoint.stderr).toMatch(/--from-url and --checkpoint contradict each other/);
    const remote = await onB(['pull', '--from-url', ticketUrl, '--remote', url]);
    expect(remote.exitCode, explain(remote)).toBe(2);
    expect(remote.stderr).toMatch(/--from-url and --remote contradict each other/);
    const notUrl = await onB(['pull', '--from-url', 'ftp://example/ticket.json']);
    expect(notUrl.exitCode, explain(notUrl)).toBe(2);
    expect(notUrl.stderr).toMatch(/--from-url takes an http\(s\) URL/);
    expect(await b.sessions()).toEqual([]);
  });

  it('a host without credentials pulls through the ticket, as opencode sees it', async (ctx) => {
    need(ctx);
    const ticketUrl = await share(['--expires', '5m']);
    const run = await onB(['pull', '--from-url', ticketUrl, '--json']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json.remote).toBe(url.endsWith('/') ? url : `${url}/`);
    expect(run.json.ticket.id).toMatch(/^\d{8}T\d{9}Z-[0-9a-f]{16}$/);
    expect(run.json.sessions.map((s: { action: string }) => s.action)).toEqual(['new', 'new', 'new']);
    // one `opencode db` per host for all of them
    const [sources, dests] = await Promise.all([a.views([made.plain, made.task, made.child]), b.views([made.plain, made.task, made.child])]);
    for (const [index, source] of sources.entries()) {
      const dest = dests[index]!;
      expect(dest.title).toBe(source.title);
      expect(dest.messages).toBe(source.messages);
      expect(dest.parts).toBe(source.parts);
      expect(dest.parentID).toBe(source.parentID);
      expect(dest.directory).toBe(repoB);
    }
    expect(dests[2]!.parentID).toBe(made.task);
    expect(JSON.stringify(await b.exportSession(made.plain))).toContain('MARK-TICKET');
  });

  it('a second ticket pull changes nothing (the sync state is the remote\'s)', async (ctx) => {
    need(ctx);
    const ticketUrl = await share();
    const run = await onB(['pull', '--from-url', ticketUrl]);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.stderr.match(/ unchanged /g)).toHaveLength(3);
    expect((await b.sessions()).length).toBe(3);
  });

  it('no output but share\'s stdout holds a URL signature', (ctx) => {
    need(ctx);
    expect(runs.length).toBeGreaterThan(10);
    for (const { run, share: isShare } of runs) {
      expect(run.stderr, explain(run)).not.toMatch(SIGNATURE);
      if (!isShare) expect(run.stdout, explain(run)).not.toMatch(SIGNATURE);
    }
    recordFault({ area: 'security', fault: 'URL signatures in output (every run of the ticket tests)', target: kind, outcome: "none printed, except share's own ticket URL on stdout" });
  });
});
