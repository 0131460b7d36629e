/**
 * `sessmig check` on real parts: real opencode sessions (made once, against the fake LLM) pushed by
 * the real CLI to a file:// remote and to s3rver, then damaged object by object — through the file
 * system, or through an S3 client — and checked. Each case repairs what it broke, so one push per
 * remote serves every case. check itself runs with no usable opencode: it must not need one.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startScene, type Scene } from '../support/scene.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { startS3rver } from '../support/s3.js';
import { explain, sessmig, type SessmigRun } from './harness.js';
import { recordFault } from '../support/reliability.js';

let scene: Scene;
let a: Host;
let repoA: string;
let outside: string;

beforeAll(async () => {
  scene = await startScene(['laptop']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  outside = path.join(a.workDir, 'not-a-repo');
  await mkdir(outside, { recursive: true });
  await a.run(repoA, 'plain session MARK-PLAIN');
  const task = (await a.run(repoA, 'delegate [[task look around MARK-CHILD]]')).sessionID;
  expect(await a.children(task)).toHaveLength(1);
}, 240_000);

afterAll(async () => {
  await scene?.dispose();
});

/** Raw access to the remote's objects, behind sessmig's back. Keys are relative to the remote's root. */
interface Store {
  url: string;
  env: Record<string, string>;
  get(key: string): Promise<Buffer>;
  put(key: string, body: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
  dispose(): Promise<void>;
}

const kinds: { name: string; setup(): Promise<Store> }[] = [
  {
    name: 'file',
    async setup() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-check-'));
      const file = (key: string) => path.join(dir, ...key.split('/'));
      return {
        url: pathToFileURL(dir).href,
        env: {},
        get: (key) => readFile(file(key)),
        async put(key, body) {
          // As private as sessmig's own objects: check reports anything other users can read.
          await mkdir(path.dirname(file(key)), { recursive: true, mode: 0o700 });
          await writeFile(file(key), body, { mode: 0o600 });
        },
        delete: (key) => rm(file(key), { force: true }),
        dispose: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 's3',
    async setup() {
      const target = await startS3rver();
      const prefix = 'team/';
      const Bucket = target.bucket;
      return {
        url: target.remoteUrl(prefix),
        env: target.env,
        async get(key) {
          const out = await target.client.send(new GetObjectCommand({ Bucket, Key: prefix + key }));
          return Buffer.from(await out.Body!.transformToByteArray());
        },
        async put(key, body) {
          await target.client.send(new PutObjectCommand({ Bucket, Key: prefix + key, Body: body }));
        },
        async delete(key) {
          await target.client.send(new DeleteObjectCommand({ Bucket, Key: prefix + key }));
        },
        dispose: () => target.dispose(),
      };
    },
  },
];

interface Problem {
  severity: 'error' | 'warning';
  code: string;
  worktree: string | null;
  key: string;
  checkpoint: string | null;
  session: string | null;
  checkpoints: string[];
  message: string;
}

describe.each(kinds)('sessmig check on the $name remote', (kind) => {
  let store: Store;
  let worktree: string;
  let checkpoint: string;
  let prefix: string;
  let headKey: string;
  let manifestKey: string;
  let sessions: { id: string; sha256: string; storedBytes: number }[];
  const blobKeyOf = (sha: string) => `${prefix}blobs/${sha}.json.gz`;

  /** check with a broken opencode on PATH and in the env: check must not run it. */
  const check = (args: string[], cwd = repoA): Promise<SessmigRun> =>
    sessmig(a, ['check', '--remote', store.url, ...args], { cwd, env: { ...store.env, SESSMIG_OPENCODE: '/nonexistent/opencode' } });

  /** Breaks an object for the duration of fn, then puts the original bytes back. */
  const damaged = async (key: string, damage: (body: Buffer) => Buffer | undefined, fn: () => Promise<void>) => {
    const original = await store.get(key);
    const broken = damage(Buffer.from(original));
    if (broken === undefined) await store.delete(key);
    else await store.put(key, broken);
    try {
      await fn();
    } finally {
      await store.put(key, original);
    }
  };

  const errorsOf = (run: SessmigRun): Problem[] => (run.json.problems as Problem[]).filter((p) => p.severity === 'error');

  beforeAll(async () => {
    store = await kind.setup();
    const push = await sessmig(a, ['push', '--remote', store.url, '--json'], { cwd: repoA, env: store.env });
    expect(push.exitCode, explain(push)).toBe(0);
    worktree = push.json.worktree;
    checkpoint = push.json.checkpoint;
    prefix = `sessmig/v1/worktrees/${worktree}/`;
    headKey = `${prefix}HEAD.json`;
    manifestKey = `${prefix}checkpoints/${checkpoint}.json`;
    sessions = JSON.parse((await store.get(manifestKey)).toString('utf8')).sessions;
    expect(sessions).toHaveLength(3);
  }, 120_000);

  afterAll(async () => {
    await store?.dispose();
  });

  it('passes a healthy remote, with and without --read-data', async () => {
    const run = await check(['--json']);
    expect(run.exitCode, explain(run)).toBe(0);
    expect(run.json).toMatchObject({ command: 'check', ok: true, errors: 0, warnings: 0, readData: false, problems: [] });
    expect(run.json.worktrees).toEqual([
      expect.objectContaining({
        worktree,
        pointer: expect.objectContaining({ checkpoint, generation: 1 }),
        sessions: 3,
        checkpoints: { total: 1, readable: 1 },
        blobs: expect.objectContaining({ stored: 3, referenced: 3, missing: 0, orphaned: 0, verified: 0 }),
      }),
    ]);
    const data = await check(['--read-data', '--json']);
    expect(data.exitCode, explain(data)).toBe(0);
    expect(data.json.worktrees[0].blobs).toMatchObject({ verified: 3 });
    expect(data.json.worktrees[0].blobs.bytesRead).toBe(sessions.reduce((sum, s) => sum + s.storedBytes, 0));
    const human = await check(['--read-data']);
    expect(human.exitCode, explain(human)).toBe(0);
    expect(human.stdout).toContain(`worktree ${worktree}  current: ${checkpoint}`);
    expect(human.stdout).toContain('3 verified');
    expect(human.stderr).toContain('check passed: 0 error(s), 0 warning(s)');
  });

  it('checks by --worktree outside any repository, and every worktree with --all', async () => {
    const named = await check(['--worktree', worktree, '--json'], outside);
    expect(named.exitCode, explain(named)).toBe(0);
    expect(named.json.worktrees.map((w: { worktree: string }) => w.worktree)).toEqual([worktree]);
    const all = await check(['--all', '--json'], outside);
    expect(all.exitCode, explain(all)).toBe(0);
    expect(all.json.worktrees.map((w: { worktree: string }) => w.worktree)).toEqual([worktree]);
    const unknown = await check(['--worktree', 'no-such-worktree'], outside);
    expect(unknown.exitCode, explain(unknown)).toBe(2);
    expect(unknown.stderr).toContain('worktree no-such-worktree is not in');
  });

  it('catches a truncated blob by its size, without reading data', async () => {
    const victim = sessions[0]!;
    const key = blobKeyOf(victim.sha256);
    await damaged(key, (body) => body.subarray(0, body.length - 7), async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(run.json.ok).toBe(false);
      expect(errorsOf(run)).toEqual([
        expect.objectContaining({ code: 'blob-size', key, checkpoint, session: victim.id, checkpoints: [checkpoint] }),
      ]);
      const human = await check([]);
      expect(human.exitCode, explain(human)).toBe(1);
      expect(human.stdout).toContain(`error: checkpoint ${checkpoint} (current), session ${victim.id}: blob ${key} is ${victim.storedBytes - 7} bytes, the manifest records ${victim.storedBytes} (truncated?)`);
      expect(human.stderr).toContain('check FAILED: 1 error(s)');
    });
    recordFault({ area: 'fault', fault: 'blob truncated in the remote (check)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check exit 1, blob-size error naming checkpoint and session' });
  });

  it('catches flipped bytes of the right size only with --read-data', async () => {
    const victim = sessions[1]!;
    const key = blobKeyOf(victim.sha256);
    await damaged(
      key,
      (body) => {
        for (let i = Math.floor(body.length / 2); i < Math.floor(body.length / 2) + 4; i++) body[i] = body[i]! ^ 0xff;
        return body;
      },
      async () => {
        const sizes = await check(['--json']);
        expect(sizes.exitCode, explain(sizes)).toBe(0);
        const run = await check(['--read-data', '--json']);
        expect(run.exitCode, explain(run)).toBe(1);
        const errors = errorsOf(run);
        expect(errors).toEqual([expect.objectContaining({ code: 'blob-corrupt', key, checkpoint, session: victim.id })]);
        expect(errors[0]!.message).toContain(`checkpoint ${checkpoint} (current), session ${victim.id}: blob ${key}`);
        expect(run.json.worktrees[0].blobs.verified).toBe(2);
      },
    );
    recordFault({ area: 'fault', fault: 'blob bytes flipped, same size (check --read-data)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check --read-data exit 1, blob-corrupt' });
  });

  it('catches a valid gzip of valid JSON whose sha256 is not its name (manifest size patched to match)', async () => {
    const victim = sessions[0]!;
    const key = blobKeyOf(victim.sha256);
    const fake = gzipSync(JSON.stringify({ info: { id: victim.id }, messages: [] }));
    const patch = (body: Buffer) => {
      const manifest = JSON.parse(body.toString('utf8'));
      manifest.sessions.find((s: { id: string }) => s.id === victim.id).storedBytes = fake.length;
      return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
    };
    await damaged(manifestKey, patch, () =>
      damaged(key, () => fake, async () => {
        expect((await check(['--json'])).exitCode).toBe(0);
        const run = await check(['--read-data', '--json']);
        expect(run.exitCode, explain(run)).toBe(1);
        expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'blob-corrupt', key, checkpoint, session: victim.id })]);
        expect(errorsOf(run)[0]!.message).toContain('does not match its checksum');
      }),
    );
    recordFault({ area: 'fault', fault: 'blob replaced by valid JSON of another sha256 (check --read-data)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check --read-data exit 1, "does not match its checksum"' });
  });

  it('catches a missing blob', async () => {
    const victim = sessions[2]!;
    const key = blobKeyOf(victim.sha256);
    await damaged(key, () => undefined, async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'blob-missing', key, checkpoint, session: victim.id })]);
      expect(errorsOf(run)[0]!.message).toBe(`checkpoint ${checkpoint} (current), session ${victim.id}: blob ${key} is missing`);
    });
    recordFault({ area: 'fault', fault: 'blob missing from the remote (check)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check exit 1, blob-missing' });
  });

  it('catches a manifest that names a blob the remote does not have (and reports the one it no longer names)', async () => {
    const victim = sessions[0]!;
    const fake = createHash('sha256').update('no such blob').digest('hex');
    await damaged(manifestKey, (body) => Buffer.from(body.toString('utf8').replace(victim.sha256, fake)), async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'blob-missing', key: blobKeyOf(fake), checkpoint, session: victim.id })]);
      const warnings = (run.json.problems as Problem[]).filter((p) => p.severity === 'warning');
      expect(warnings).toEqual([expect.objectContaining({ code: 'orphan-blob', key: blobKeyOf(victim.sha256) })]);
    });
    recordFault({ area: 'fault', fault: 'manifest names a blob the remote does not have (check)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check exit 1; the orphaned blob reported as a warning' });
  });

  it('reports an orphan blob (and an unknown object) as warnings, exit 0', async () => {
    const raw = Buffer.from(JSON.stringify({ info: { id: sessions[0]!.id }, messages: [] }));
    const orphan = blobKeyOf(createHash('sha256').update(raw).digest('hex'));
    const stray = `${prefix}notes.txt`;
    await store.put(orphan, gzipSync(raw));
    await store.put(stray, Buffer.from('hello'));
    try {
      const run = await check(['--read-data', '--json']);
      expect(run.exitCode, explain(run)).toBe(0);
      expect(run.json).toMatchObject({ ok: true, errors: 0, warnings: 2 });
      const problems = run.json.problems as Problem[];
      expect(problems).toContainEqual(expect.objectContaining({ severity: 'warning', code: 'orphan-blob', key: orphan }));
      expect(problems).toContainEqual(expect.objectContaining({ severity: 'warning', code: 'unknown-object', key: stray }));
      expect(problems.find((p) => p.code === 'orphan-blob')!.message).toContain('an interrupted push leaves such blobs');
      expect(run.json.worktrees[0].blobs).toMatchObject({ stored: 4, referenced: 3, orphaned: 1, verified: 3 });
      const human = await check([]);
      expect(human.exitCode, explain(human)).toBe(0);
      expect(human.stdout).toContain(`warning: blob ${orphan}`);
      expect(human.stderr).toContain('check passed: 0 error(s), 2 warning(s)');
    } finally {
      await store.delete(orphan);
      await store.delete(stray);
    }
  });

  it('catches a malformed manifest', async () => {
    await damaged(manifestKey, (body) => body.subarray(0, Math.floor(body.length / 2)), async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'document-malformed', key: manifestKey, checkpoint })]);
      expect(errorsOf(run)[0]!.message).toContain(manifestKey);
      expect(errorsOf(run)[0]!.message).toContain('the current checkpoint: pull fails');
      // Its blobs now look unreferenced; the warnings say why they may not be.
      const orphans = (run.json.problems as Problem[]).filter((p) => p.code === 'orphan-blob');
      expect(orphans).toHaveLength(3);
      expect(orphans[0]!.message).toContain('1 could not');
    });
    await damaged(manifestKey, (body) => Buffer.from(body.toString('utf8').replace('"kind": "sessmig.checkpoint"', '"kind": "something.else"')), async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'document-invalid', key: manifestKey, checkpoint })]);
      expect(errorsOf(run)[0]!.message).toContain('malformed at kind');
    });
    recordFault({ area: 'bad input', fault: 'malformed manifest (check)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check exit 1, manifest error' });
  });

  it('catches a pointer that names a missing checkpoint', async () => {
    const ghost = '20200101T000000000Z-deadbeef';
    await damaged(headKey, (body) => Buffer.from(body.toString('utf8').replace(checkpoint, ghost)), async () => {
      const run = await check(['--json']);
      expect(run.exitCode, explain(run)).toBe(1);
      expect(errorsOf(run)).toEqual([expect.objectContaining({ code: 'pointer-dangling', key: headKey, checkpoint: ghost })]);
      expect(errorsOf(run)[0]!.message).toContain(`${prefix}checkpoints/${ghost}.json is missing`);
      const human = await check(['--all']);
      expect(human.exitCode, explain(human)).toBe(1);
      expect(human.stdout).toContain(`error: pointer ${headKey} names checkpoint ${ghost}`);
    });
    const after = await check(['--read-data', '--json']);
    expect(after.exitCode, explain(after)).toBe(0);
    recordFault({ area: 'fault', fault: 'pointer names a missing checkpoint (check)', target: kind.name === 's3' ? 's3rver' : 'file', outcome: 'check exit 1' });
  });
});
