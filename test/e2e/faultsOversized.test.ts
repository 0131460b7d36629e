/**
 * Oversized inputs through the real CLI: a pointer, a manifest and a ticket one byte over their
 * documented caps (docs/FORMAT.md: 64 KiB, 16 MiB, 4 MiB) are refused loudly, "exceeds N bytes",
 * never read whole nor parsed into a confusing error; and an S3 error response with a huge body
 * is reported by its status and code without sessmig reading the body (a bounded preview).
 * Remotes: a local folder and s3rver; the ticket and the error come from a small HTTP server
 * on loopback, the way a host without credentials reads a ticket URL. No opencode session is
 * needed: the documents are refused before sessmig asks opencode anything.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import http from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointKey, MAX_MANIFEST_BYTES, MAX_POINTER_BYTES, pointerKey } from '../../src/format/layout.js';
import { MAX_TICKET_BYTES } from '../../src/format/ticketSchema.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { recordFault } from '../support/reliability.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';

const WORKTREE = 'oversized';
const CHECKPOINT = '20261126T010000000Z-0a0b0c0d';
const host = { hostId: '00000000-0000-4000-8000-000000000001', hostname: 'elsewhere' };

/** A valid JSON document padded with spaces to exactly `size` bytes. */
function padded(value: unknown, size: number): Buffer {
  const text = JSON.stringify(value);
  return Buffer.concat([Buffer.from(text), Buffer.alloc(size - text.length, 0x20)]);
}

const pointer = (generation = 1) => ({
  formatVersion: 1,
  kind: 'sessmig.pointer',
  worktree: WORKTREE,
  generation,
  checkpoint: CHECKPOINT,
  owner: host,
  updatedAt: '2026-11-26T01:00:00.000Z',
  updatedBy: host,
  writeId: '0123456789abcdef',
});
const manifest = {
  formatVersion: 1,
  kind: 'sessmig.checkpoint',
  id: CHECKPOINT,
  worktree: WORKTREE,
  parent: null,
  createdAt: '2026-11-26T01:00:00.000Z',
  source: { host, worktreeRoot: '/elsewhere/app', opencodeVersion: '1.18.33', sessmigVersion: '0.1.0' },
  sessions: [],
  skipped: [],
};

function expectLoudRefusal(run: SessmigRun, cap: number): void {
  expect(run.exitCode, explain(run)).toBe(1);
  expect(run.stderr).toContain(`exceeds ${cap} bytes`);
  expect(run.stderr).toMatch(/hint: /);
  expect(run.stderr).not.toMatch(/not valid JSON|malformed|^\s+at .+:\d+:\d+\)?$/m);
}

let b: Host;
let repoB: string;
let remoteDir: string;
let s3: S3Target;
let server: http.Server;
let base: string;

beforeAll(async () => {
  b = await createHost('box');
  repoB = path.join(b.workDir, 'app');
  await createRepo(repoB);
  remoteDir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  s3 = await startS3rver();
  // Serves what a ticket URL can point at: an oversized ticket, or an S3 error with a huge body.
  server = http.createServer((req, res) => {
    if (req.url?.startsWith('/big-ticket')) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(MAX_TICKET_BYTES + 1) });
      res.end(padded({ formatVersion: 1, kind: 'sessmig.ticket' }, MAX_TICKET_BYTES + 1));
    } else {
      const head = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><Detail>';
      const body = Buffer.concat([Buffer.from(head), Buffer.alloc(32 * 1024 * 1024, 0x78), Buffer.from('</Detail></Error>')]);
      res.writeHead(403, { 'content-type': 'application/xml', 'content-length': String(body.length) });
      res.end(body);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await s3?.dispose();
  await b?.cleanup();
  if (remoteDir) await rm(remoteDir, { recursive: true, force: true });
});

describe.each(['file', 's3rver'] as const)('documents over their caps (%s remote)', (kind) => {
  let url: string;
  let env: Record<string, string> = {};
  let put: (key: string, body: Buffer) => Promise<void>;
  beforeAll(() => {
    if (kind === 'file') {
      url = pathToFileURL(remoteDir).href;
      put = async (key, body) => {
        await mkdir(path.dirname(path.join(remoteDir, key)), { recursive: true });
        await writeFile(path.join(remoteDir, key), body);
      };
    } else {
      url = s3.remoteUrl('big/');
      env = s3.env;
      put = async (key, body) => {
        await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `big/${key}`, Body: body }));
      };
    }
  });
  const on = (args: string[]) => sessmig(b, [...args, '--remote', url, '--worktree', WORKTREE], { cwd: repoB, env });

  it(`a pointer of ${MAX_POINTER_BYTES} + 1 bytes`, async () => {
    await put(pointerKey(WORKTREE), padded(pointer(), MAX_POINTER_BYTES + 1));
    expectLoudRefusal(await on(['pull']), MAX_POINTER_BYTES);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'bad input', fault: `pointer (HEAD.json) of 64 KiB + 1 byte`, target: kind, outcome: `pull refused, exit 1, "exceeds ${MAX_POINTER_BYTES} bytes"; nothing imported` });
  });

  it(`a manifest of ${MAX_MANIFEST_BYTES} + 1 bytes: pull and check refuse it`, async () => {
    await put(pointerKey(WORKTREE), Buffer.from(JSON.stringify(pointer(2))));
    await put(checkpointKey(WORKTREE, CHECKPOINT), padded(manifest, MAX_MANIFEST_BYTES + 1));
    expectLoudRefusal(await on(['pull']), MAX_MANIFEST_BYTES);
    expect(await b.sessions()).toEqual([]);
    const check = await on(['check', '--json']);
    expect(check.exitCode, explain(check)).toBe(1);
    expect(JSON.stringify(check.json)).toContain(`exceeds ${MAX_MANIFEST_BYTES} bytes`);
    recordFault({ area: 'bad input', fault: 'manifest of 16 MiB + 1 byte', target: kind, outcome: `pull refused, exit 1, "exceeds ${MAX_MANIFEST_BYTES} bytes"; check reports it; nothing imported` });
  });
});

describe('through a ticket URL (a host without credentials)', () => {
  it(`a ticket of ${MAX_TICKET_BYTES} + 1 bytes is refused`, async () => {
    const run = await sessmig(b, ['pull', '--from-url', `${base}/big-ticket`], { cwd: repoB });
    expectLoudRefusal(run, MAX_TICKET_BYTES);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'bad input', fault: 'ticket document of 4 MiB + 1 byte', target: 'local', outcome: `pull --from-url refused, exit 1, "ticket exceeds ${MAX_TICKET_BYTES} bytes"; nothing imported` });
  });

  it('an S3 error with a 32 MiB body is reported by status and code; the body is not read', async () => {
    const t0 = Date.now();
    const run = await sessmig(b, ['pull', '--from-url', `${base}/error`], { cwd: repoB });
    expect(run.exitCode, explain(run)).not.toBe(0);
    expect(run.stderr).toMatch(/HTTP 403 AccessDenied/);
    expect(run.stderr.length).toBeLessThan(8192);
    expect(run.stderr).not.toMatch(/xxxxxxxxxxxxxxxx/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    recordFault({ area: 'bad input', fault: 'S3 error response with a 32 MiB body (ticket URL)', target: 'local', outcome: 'exit 1, "HTTP 403 AccessDenied"; at most a 4 KiB preview read, none of it printed' });
  });

  it('an S3 error body over 4 KiB is refused, "exceeds 4096 bytes", on SDK calls too (the SDK would read it whole)', async () => {
    // An endpoint that answers every request with the 32 MiB 403: the pointer read is an SDK call.
    const env = { AWS_ENDPOINT_URL_S3: base, AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', AWS_REGION: 'us-east-1' };
    const t0 = Date.now();
    const run = await sessmig(b, ['pull', '--remote', 's3://bucket/p/', '--s3-path-style', '--worktree', WORKTREE, '--json'], { cwd: repoB, env });
    expect(run.exitCode, explain(run)).toBe(2);
    expect(run.json.error.code).toBe('error-body-too-large');
    expect(run.stderr).toMatch(/answered HTTP 403 AccessDenied with an error body that exceeds 4096 bytes; it was not read further/);
    expect(run.stderr).not.toMatch(/xxxxxxxxxxxxxxxx/);
    expect(Date.now() - t0).toBeLessThan(60_000);
    const viaUrl = await sessmig(b, ['pull', '--from-url', `${base}/error`], { cwd: repoB });
    expect(viaUrl.stderr).toMatch(/its error body exceeds 4096 bytes; only that much was read/);
    expect(await b.sessions()).toEqual([]);
    recordFault({ area: 'bad input', fault: 'S3 error response with a 32 MiB body (SDK call)', target: 'local', outcome: 'exit 2, "error body that exceeds 4096 bytes"; 4 KiB read; nothing imported' });
  });
});
