/**
 * The contract every Remote must meet (rclone-style): one suite, `writableContract`, run over each
 * implementation — the local folder (LocalRemote), S3Remote on every S3 target the environment
 * offers (s3rver always; Ceph RGW when installed; an external endpoint when configured), and the
 * encrypted worktree's SealedRemote over each of those — and its read subset, `ticketContract`,
 * over TicketRemote (one checkpoint's keys through presigned URLs of each S3 target, plain and
 * sealed), which must refuse every write clearly.
 *
 * Keys are the format's own (built with src/format/layout.ts and friends), because what a sealed
 * remote does depends on what a key names. Every refusal is checked to be a SessmigError with a
 * code. One server per S3 target serves the whole file (each subject under its own prefix).
 * Nothing is mocked.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UserKey } from '../../src/crypto/keys.js';
import { SealedRemote } from '../../src/crypto/sealedRemote.js';
import { codeBundleKey } from '../../src/format/codeLayout.js';
import { serializeDocument } from '../../src/format/document.js';
import { parseKey } from '../../src/format/keys.js';
import { blobKey, carriedFileKey, checkpointKey, checkpointsPrefix, pointerKey, worktreePrefix } from '../../src/format/layout.js';
import { FORMAT_VERSION } from '../../src/format/schema.js';
import { PullTicket, TICKET_KIND, ticketKey } from '../../src/format/ticketSchema.js';
import { readCapped } from '../../src/remote/http.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import type { Remote } from '../../src/remote/remote.js';
import { S3Remote } from '../../src/remote/s3Remote.js';
import { TicketRemote } from '../../src/remote/ticketRemote.js';
import { ExitCode, SessmigError } from '../../src/util/errors.js';
import { AGE_MAGIC } from '../../src/util/seal.js';
import { recordFault } from '../support/reliability.js';
import { describeS3Targets, startS3Target, type S3Target, type S3TargetKind } from '../support/s3.js';

const W = 'contract-wt';
const HOST_ID = randomUUID();
/** Keys listed by the pagination test: more than S3's default page of 1000. */
const BULK = 1003;
/** The forced page size of the small-pages view (S3Remote's listPageSize). */
const SMALL_PAGE = 7;

const sha = (n: number) => n.toString(16).padStart(64, '0');
/** A valid checkpoint id per n (time and random part both from n): lexical order is n's order. */
const checkpointId = (n: number) => `20261125T${String(n).padStart(9, '0')}Z-${n.toString(16).padStart(8, '0')}`;
const TICKET_ID = '20261125T214617123Z-0123456789abcdef';

/** A pointer document as sessmig writes it (JSON; a sealed remote blanks host names on write). */
function pointerBody(generation: number): Buffer {
  return serializeDocument({ formatVersion: FORMAT_VERSION, generation, checkpoint: checkpointId(generation), owner: { hostId: HOST_ID, hostname: '' }, writeId: randomUUID() });
}

/** Expects a refusal: a SessmigError with a code, a message and a hint; returns it. */
async function refusal(promise: Promise<unknown>): Promise<SessmigError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a refusal, the call succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SessmigError);
  const sessmigError = error as SessmigError;
  expect(sessmigError.code).toMatch(/^[a-z]+(-[a-z0-9]+)*$/);
  expect(sessmigError.message.length).toBeGreaterThan(0);
  expect(sessmigError.hint ?? '').not.toBe('');
  return sessmigError;
}

async function bytes(remote: Remote, key: string): Promise<Buffer> {
  return readCapped(await remote.getStream(key), 16 << 20, key);
}

async function listKeys(remote: Remote, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const item of remote.list(prefix)) keys.push(item.key);
  return keys;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  const queue = items.slice();
  await Promise.all(Array.from({ length: n }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  }));
}

/** Sorted as S3 lists (UTF-8 byte order; the same as code-unit order for these ASCII keys). */
const sorted = (keys: string[]) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

// ---------------------------------------------------------------------------------------------
// Subjects

interface Subject {
  remote: Remote;
  /** The store the remote writes to (a sealed remote's inner store; else the remote itself). */
  store: Remote;
  /** The store enforces If-None-Match / If-Match (s3rver ignores them; sessmig reads back). */
  enforcesConditions: boolean;
  /** touch shows in list's lastModified (s3rver keeps LastModified on a self-copy). */
  touchShows: boolean;
  /**
   * list returns keys in byte order across folders (AWS, Ceph, the local folder). s3rver walks its
   * folders instead ('a/b' before 'a-b'); within one folder its order is right.
   */
  byteOrder: boolean;
  /** lastModified has whole seconds (S3) or finer (a local file system). */
  wholeSeconds: boolean;
  sealed: boolean;
  /** The same store listed in small pages, when the implementation has a page-size knob. */
  smallPages?: Remote;
  /** A key that is missing reads as 'not-found' on getStream (an external store may say access-denied). */
  missingCode: RegExp;
}

interface Backend {
  name: string;
  open(): Promise<Subject>;
}

let scratch = '';
const userKey = UserKey.generate();
const targets = new Map<S3TargetKind, Promise<S3Target>>();

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sessmig-contract-'));
});
afterAll(async () => {
  for (const target of targets.values()) await (await target).dispose();
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 120_000);

/** One server per S3 target for the whole file, started on first use. */
function target(kind: S3TargetKind): Promise<S3Target> {
  let started = targets.get(kind);
  if (!started) {
    started = startS3Target(kind).then((t) => {
      if ('skipped' in t) throw new Error(t.skipped);
      return t;
    });
    targets.set(kind, started);
  }
  return started;
}

function s3Remote(t: S3Target, prefix: string, listPageSize?: number): S3Remote {
  return new S3Remote({ bucket: t.bucket, prefix }, t.remoteUrl(prefix), { forcePathStyle: true, env: t.env, ...(listPageSize ? { listPageSize } : {}) });
}

async function sealedOver(inner: Remote): Promise<SealedRemote> {
  const tempDir = await mkdtemp(path.join(scratch, 'seal-'));
  return SealedRemote.open(inner, await userKey, W, { tempDir, hostId: HOST_ID, marker: undefined });
}

const local: Backend = {
  name: 'file',
  async open() {
    const remote = new LocalRemote(await mkdtemp(path.join(scratch, 'file-')), 'file://contract');
    return { remote, store: remote, enforcesConditions: true, touchShows: true, byteOrder: true, wholeSeconds: false, sealed: false, missingCode: /^not-found$/ };
  },
};

function s3Backend(kind: S3TargetKind): Backend {
  return {
    name: kind,
    async open() {
      const t = await target(kind);
      const prefix = `contract-${randomBytes(4).toString('hex')}/`;
      const remote = s3Remote(t, prefix);
      return {
        remote,
        store: remote,
        enforcesConditions: t.strict,
        touchShows: t.strict,
        byteOrder: t.strict,
        wholeSeconds: true,
        sealed: false,
        smallPages: s3Remote(t, prefix, SMALL_PAGE),
        missingCode: kind === 'external' ? /^(not-found|access-denied)$/ : /^not-found$/,
      };
    },
  };
}

function sealedBackend(base: Backend): Backend {
  return {
    name: `sealed over ${base.name}`,
    async open() {
      const inner = await base.open();
      return {
        ...inner,
        remote: await sealedOver(inner.remote),
        store: inner.remote,
        sealed: true,
        ...(inner.smallPages ? { smallPages: await sealedOver(inner.smallPages) } : {}),
      };
    },
  };
}

const plan = describeS3Targets();
for (const skipped of plan.skipped) console.warn(`[remote contract] ${skipped.kind} target skipped: ${skipped.why}`);
const s3Kinds = plan.run.map((t) => t.kind);
const plainBackends = [local, ...s3Kinds.map(s3Backend)];

for (const backend of plainBackends) writableContract(backend);
for (const backend of plainBackends) writableContract(sealedBackend(backend));
for (const kind of s3Kinds) {
  ticketContract(kind, false);
  ticketContract(kind, true);
}

// ---------------------------------------------------------------------------------------------
// The contract of a remote sessmig writes to

function writableContract(backend: Backend): void {
  describe(`remote contract: ${backend.name}`, () => {
    let s: Subject;
    let remote: Remote;
    beforeAll(async () => {
      s = await backend.open();
      remote = s.remote;
    }, 120_000);

    const missing = {
      pointer: pointerKey(W),
      checkpoint: checkpointKey(W, checkpointId(999_999)),
      blob: blobKey(W, sha(0xdead)),
      bundle: codeBundleKey(W, sha(0xbeef)),
      other: 'sessmig/v1/none.json',
    };

    it.each(Object.entries(missing))('a missing %s: get and head are undefined, getStream and touch say not-found, delete does nothing', async (_kind, key) => {
      expect(await remote.get(key, 1024)).toBeUndefined();
      expect(await remote.head(key)).toBeUndefined();
      expect((await refusal(remote.getStream(key))).code).toMatch(s.missingCode);
      expect((await refusal(remote.touch(key))).code).toBe('not-found');
      await remote.delete(key);
      expect(await remote.head(key)).toBeUndefined();
    });

    const documents = {
      pointer: { key: pointerKey(W), body: pointerBody(1) },
      checkpoint: { key: checkpointKey(W, checkpointId(1)), body: serializeDocument({ kind: 'sessmig.checkpoint', id: checkpointId(1), sessions: [] }) },
      ticket: { key: ticketKey(W, TICKET_ID), body: serializeDocument({ kind: 'sessmig.ticket' }) },
      'non-format key': { key: 'sessmig/v1/other/doc.json', body: Buffer.from('{"hello":"world"}\n') },
    };

    it.each(Object.entries(documents))('%s: put, then get returns the bytes; put, get and head agree on the etag', async (_kind, { key, body }) => {
      const { etag } = await remote.put(key, body);
      expect(etag).not.toBe('');
      const got = await remote.get(key, 1 << 20);
      expect(got?.body.equals(body)).toBe(true);
      expect(got?.etag).toBe(etag);
      const head = await remote.head(key);
      expect(head?.etag).toBe(etag);
      const stored = await s.store.get(key, 1 << 20);
      if (s.sealed && parseKey(key)?.kind === 'checkpoint') {
        // Sealed whole: the store holds age, not the manifest; head reports the stored size.
        expect(stored!.body.subarray(0, AGE_MAGIC.length).equals(AGE_MAGIC)).toBe(true);
        expect(stored!.body.includes(Buffer.from('sessmig.checkpoint'))).toBe(false);
        expect(head?.size).toBe(stored!.body.length);
      } else {
        expect(stored?.body.equals(body)).toBe(true);
        expect(head?.size).toBe(body.length);
      }
    });

    it('get refuses an object over its cap: exactly the cap is read, one byte more is refused', async () => {
      for (const key of [checkpointKey(W, checkpointId(2)), 'sessmig/v1/other/big.json']) {
        const body = Buffer.from(JSON.stringify({ pad: 'x'.repeat(2000) }));
        await remote.put(key, body);
        expect((await remote.get(key, body.length))?.body.equals(body)).toBe(true);
        const error = await refusal(remote.get(key, body.length - 1));
        expect(error.code).toBe('document-too-large');
        expect(error.message).toMatch(/exceeds \d+ bytes/);
      }
      recordFault({ area: 'bad input', fault: 'remote document over its size cap (remote contract)', target: backend.name, outcome: 'refused, "exceeds N bytes"' });
    });

    const files = {
      'session blob (3 MiB + 17 bytes)': { key: blobKey(W, sha(1)), size: 3 * 1024 * 1024 + 17 },
      'snapshot pack': { key: carriedFileKey(W, sha(2), 'pack'), size: 70_000 },
      'tool output': { key: carriedFileKey(W, sha(3), 'out'), size: 1 },
      'code bundle': { key: codeBundleKey(W, sha(4)), size: 65_536 },
      'empty non-format file': { key: 'sessmig/v1/other/empty.bin', size: 0 },
    };

    it.each(Object.entries(files))('%s: putFile, then getStream returns the bytes and head the size', async (_name, { key, size }) => {
      const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
      const body = randomBytes(size);
      await writeFile(file, body);
      await remote.putFile(key, file, size);
      expect((await bytes(remote, key)).equals(body)).toBe(true);
      expect((await remote.head(key))?.size).toBe(size);
      if (s.sealed && parseKey(key)?.worktree === W) {
        // Stored under a keyed name only, sealed: the format key holds nothing in the store.
        expect(await s.store.head(key)).toBeUndefined();
        const kind = parseKey(key)!.kind === 'bundle' ? 'sealed-bundle' : 'sealed-blob';
        const stored = (await listKeys(s.store, worktreePrefix(W))).filter((k) => parseKey(k)?.kind === kind);
        expect(stored.length).toBeGreaterThan(0);
      } else {
        expect((await bytes(s.store, key)).equals(body)).toBe(true);
      }
    });

    it('put with conditions: create once, replace only the current version', async (ctx) => {
      expect(remote.conditionalWrites).toBe(true);
      const key = pointerKey(W);
      await remote.delete(key);
      const first = await remote.put(key, pointerBody(10), { ifNoneMatch: true });
      // s3rver ignores If-None-Match / If-Match: sessmig's read-back check covers it (docs/FORMAT.md).
      if (!s.enforcesConditions) ctx.skip();
      expect((await refusal(remote.put(key, pointerBody(11), { ifNoneMatch: true }))).code).toBe('precondition-failed');
      const second = await remote.put(key, pointerBody(12), { ifMatch: first.etag });
      expect((await refusal(remote.put(key, pointerBody(13), { ifMatch: first.etag }))).code).toBe('precondition-failed');
      expect(JSON.parse((await remote.get(key, 4096))!.body.toString()).generation).toBe(12);
      await remote.put(key, pointerBody(14), { ifMatch: second.etag });
      // If-Match on a missing key (AWS: 404, Ceph: 412) is one refusal.
      expect((await refusal(remote.put(checkpointKey(W, checkpointId(3)), pointerBody(15), { ifMatch: first.etag }))).code).toBe('precondition-failed');
      expect(await remote.head(checkpointKey(W, checkpointId(3)))).toBeUndefined();
    });

    it('of six racing conditional writers exactly one wins', async (ctx) => {
      if (!s.enforcesConditions) ctx.skip();
      const key = pointerKey(W);
      const base = await remote.put(key, pointerBody(20));
      const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => remote.put(key, pointerBody(21 + i), { ifMatch: base.etag })));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect((r.reason as SessmigError).code).toBe('precondition-failed');
      recordFault({ area: 'fault', fault: 'six racing conditional pointer writes (remote contract)', target: backend.name, outcome: 'exactly one wins' });
    });

    it('delete removes the object named and nothing else', async () => {
      const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
      await writeFile(file, 'gone');
      const blob = blobKey(W, sha(5));
      await remote.putFile(blob, file, 4);
      const checkpoint = checkpointKey(W, checkpointId(5));
      await remote.put(checkpoint, Buffer.from('{}'));
      const before = await listKeys(s.store, '');
      await remote.delete(blob);
      await remote.delete(checkpoint);
      expect(await remote.head(blob)).toBeUndefined();
      expect(await remote.head(checkpoint)).toBeUndefined();
      const after = await listKeys(s.store, '');
      expect(before.length - after.length).toBe(2);
      expect((await remote.get(documents['non-format key'].key, 1024))?.body.equals(documents['non-format key'].body)).toBe(true);
    });

    it('touch refreshes an object\'s last-modified time and keeps its bytes', async (ctx) => {
      const key = checkpointKey(W, checkpointId(6));
      const blob = blobKey(W, sha(6));
      const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
      await writeFile(file, 'blob bytes');
      await remote.putFile(blob, file, 10);
      await remote.put(key, Buffer.from('"same"'));
      const modified = async () => {
        for await (const item of remote.list(key)) if (item.key === key) return item.lastModified.getTime();
        return undefined;
      };
      const before = (await modified())!;
      if (!s.touchShows) {
        await remote.touch(key);
        await remote.touch(blob);
        expect((await remote.get(key, 10))?.body.toString()).toBe('"same"');
        ctx.skip();
      }
      // Past the next whole second on S3 (LastModified has seconds), a few ms on a file system.
      await new Promise((resolve) => setTimeout(resolve, s.wholeSeconds ? 1050 - (Date.now() % 1000) : 30));
      await remote.touch(key);
      await remote.touch(blob);
      expect((await remote.get(key, 10))?.body.toString()).toBe('"same"');
      expect((await bytes(remote, blob)).toString()).toBe('blob bytes');
      expect((await modified())!).toBeGreaterThan(before);
    });

    it(`list pages through ${BULK} keys (more than S3's default page of 1000): every key once, in key order`, async () => {
      const ids = Array.from({ length: BULK }, (_, i) => checkpointId(100_000 + i));
      const keys = ids.map((id) => checkpointKey(W, id));
      await pool(keys, 32, (key) => remote.put(key, Buffer.from(`{"k":"${key.slice(-13)}"}`)));
      const listed = (await listKeys(remote, checkpointsPrefix(W))).filter((key) => keys.includes(key));
      expect(listed).toEqual(keys);
      // A prefix that ends inside a name (not a folder): the ids 100_000 … 100_999 share one.
      expect(await listKeys(remote, `${checkpointsPrefix(W)}20261125T000100`)).toEqual(keys.slice(0, 1000));
      // 100_000 … 100_099, in pages of SMALL_PAGE where the implementation pages on request.
      const hundred = `${checkpointsPrefix(W)}20261125T0001000`;
      expect(await listKeys(remote, hundred)).toEqual(keys.slice(0, 100));
      if (s.smallPages) expect(await listKeys(s.smallPages, hundred)).toEqual(keys.slice(0, 100));
    });

    it('list takes prefixes that are and are not folder-like, in byte order across folders', async () => {
      const root = 'sessmig/v1/contract-list/';
      // '-' < '.' < '/' < '0': a walk that lists a folder before its siblings' files gets this wrong.
      const keys = sorted([`${root}a-b`, `${root}a.b`, `${root}a/b`, `${root}a/c/d`, `${root}a0`, `${root}b`, `${root}bz/x`]);
      await pool(keys, 4, (key) => remote.put(key, Buffer.from(key)));
      await remote.put('sessmig/v1/contract-listx/c', Buffer.from('x'));
      const cases: [string, string[]][] = [
        [root, keys],
        [`${root}a`, keys.slice(0, 5)],
        [`${root}a/`, [`${root}a/b`, `${root}a/c/d`]],
        [`${root}a/b`, [`${root}a/b`]],
        [`${root}b`, [`${root}b`, `${root}bz/x`]],
        [`${root}c`, []],
        ['sessmig/v1/contract-nothing/', []],
        ['sessmig/v1/contract-list', [...keys, 'sessmig/v1/contract-listx/c']],
      ];
      const order = (keys: string[]) => (s.byteOrder ? keys : sorted(keys));
      for (const [prefix, expected] of cases) {
        expect(order(await listKeys(remote, prefix)), prefix).toEqual(expected);
        if (s.smallPages) expect(order(await listKeys(s.smallPages, prefix)), `${prefix} (pages of ${SMALL_PAGE})`).toEqual(expected);
      }
      for await (const item of remote.list(root)) {
        expect(item.size).toBe(Buffer.byteLength(item.key));
        expect(Math.abs(item.lastModified.getTime() - Date.now())).toBeLessThan(10 * 60_000);
      }
    });

    it('list of the whole remote: every object once, sorted', async () => {
      const all = await listKeys(remote, '');
      expect(new Set(all).size).toBe(all.length);
      if (s.byteOrder) expect(all).toEqual(sorted(all));
      expect(all.length).toBeGreaterThan(BULK);
      expect(all).toContain(pointerKey(W));
      // Nothing sessmig left behind: no temp file or lock shows in a listing.
      expect(all.filter((key) => /\.tmp-|\.lock(\/|$)/.test(key))).toEqual([]);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The contract of a ticket: the read subset, and clear refusals of everything else

function ticketContract(kind: S3TargetKind, sealed: boolean): void {
  describe(`remote contract: ticket over ${kind}${sealed ? ' (sealed worktree)' : ''}`, () => {
    let ticket: TicketRemote;
    /** The same object, seen through the interface the core uses. */
    let remote: Remote;
    /** What the ticket reads from: the worktree's remote (sealed when the worktree is). */
    let source: Remote;
    let store: Remote;
    const checkpoint = checkpointId(7);
    const manifestKey = checkpointKey(W, checkpoint);
    const manifest = { formatVersion: FORMAT_VERSION, kind: 'sessmig.checkpoint', id: checkpoint, sessions: [{ sha256: sha(1) }] };
    const manifestBody = serializeDocument(manifest);
    const blobs = {
      blob: { key: blobKey(W, sha(1)), body: randomBytes(3 * 1024 * 1024 + 17) },
      pack: { key: carriedFileKey(W, sha(2), 'pack'), body: randomBytes(70_000) },
      out: { key: carriedFileKey(W, sha(3), 'out'), body: randomBytes(5) },
    };

    beforeAll(async () => {
      const t = await target(kind);
      store = s3Remote(t, `ticket-${randomBytes(4).toString('hex')}/`);
      source = sealed ? await sealedOver(store) : store;
      await source.put(manifestKey, manifestBody);
      for (const { key, body } of Object.values(blobs)) {
        const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
        await writeFile(file, body);
        await source.putFile(key, file, body.length);
      }
      // As `sessmig share` mints it (src/core/ticket.ts): URLs of the stored objects.
      const sealing = source.sealing;
      const url = (key: string, sha256: string) => store.presigner!.presignGet(sealing ? sealing.storedBlobKey(sha256) : key, 600);
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      const document = PullTicket.parse({
        formatVersion: FORMAT_VERSION,
        kind: TICKET_KIND,
        direction: 'pull',
        id: TICKET_ID,
        worktree: W,
        checkpoint,
        createdAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + 600_000).toISOString(),
        remote: store.display,
        issuedBy: { hostId: HOST_ID, hostname: 'contract' },
        urls: {
          manifest: await store.presigner!.presignGet(manifestKey, 600),
          blobs: { [sha(1)]: await url(blobs.blob.key, sha(1)) },
          files: { [`${sha(2)}.pack`]: await url(blobs.pack.key, sha(2)), [`${sha(3)}.out`]: await url(blobs.out.key, sha(3)) },
        },
        ...(sealing ? { sealed: { manifest, blobKeys: Object.fromEntries([1, 2, 3].map((n) => [sha(n), sealing.key.blobIdentity(sha(n))])) } } : {}),
      });
      ticket = new TicketRemote(document);
      remote = ticket;
    }, 120_000);

    it('is read-only and names no pointer', () => {
      expect(ticket.ticketOnly).toBe(true);
      expect(ticket.conditionalWrites).toBe(false);
      expect(remote.sealing).toBeUndefined();
      expect(remote.presigner).toBeUndefined();
      expect(sorted(ticket.keys())).toEqual(sorted([manifestKey, ...Object.values(blobs).map((b) => b.key)]));
    });

    it('get reads the checkpoint\'s manifest, up to its cap', async () => {
      expect((await ticket.get(manifestKey, 1 << 20))?.body.equals(manifestBody)).toBe(true);
      expect((await ticket.get(manifestKey, manifestBody.length))?.body.equals(manifestBody)).toBe(true);
      const error = await refusal(ticket.get(manifestKey, manifestBody.length - 1));
      expect(error.code).toBe('document-too-large');
    });

    it.each(Object.keys(blobs))('%s: getStream returns the bytes and head the size', async (name) => {
      const { key, body } = blobs[name as keyof typeof blobs];
      expect((await bytes(ticket, key)).equals(body)).toBe(true);
      expect((await ticket.head(key))?.size).toBe(body.length);
    });

    it('keys the ticket does not name are absent: get and head undefined, getStream not-found', async () => {
      for (const key of [pointerKey(W), checkpointKey(W, checkpointId(8)), blobKey(W, sha(9)), codeBundleKey(W, sha(1)), 'sessmig/v1/other/doc.json']) {
        expect(await ticket.get(key, 1024)).toBeUndefined();
        expect(await ticket.head(key)).toBeUndefined();
        expect((await refusal(ticket.getStream(key))).code).toBe('not-found');
      }
    });

    it('every write and the listing are refused as ticket-read-only, and the store is unchanged', async () => {
      const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
      await writeFile(file, 'x');
      const before = await listKeys(store, '');
      const attempts: Promise<unknown>[] = [
        ticket.put(manifestKey, Buffer.from('{}')),
        ticket.put(pointerKey(W), pointerBody(1), { ifNoneMatch: true }),
        remote.putFile(blobs.blob.key, file, 1),
        ticket.delete(blobs.blob.key),
        ticket.touch(manifestKey),
        (async () => {
          for await (const item of ticket.list(worktreePrefix(W))) return item;
          return undefined;
        })(),
      ];
      for (const attempt of attempts) {
        const error = await refusal(attempt);
        expect(error.code).toBe('ticket-read-only');
        expect(error.exitCode).toBe(ExitCode.usage);
      }
      expect(await listKeys(store, '')).toEqual(before);
      expect((await bytes(ticket, blobs.blob.key)).equals(blobs.blob.body)).toBe(true);
    });

    it('an object deleted behind its URL reads as absent', async () => {
      await source.delete(blobs.out.key);
      expect(await ticket.head(blobs.out.key)).toBeUndefined();
      expect(await ticket.get(blobs.out.key, 1024)).toBeUndefined();
      expect((await refusal(ticket.getStream(blobs.out.key))).code).toBe('not-found');
    });
  });
}
