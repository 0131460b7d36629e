/**
 * S3 servers on loopback for the test suite, and an external endpoint when one is configured.
 *
 * Targets
 *  - s3rver   always. Lenient: runs in a child process (test/support/s3rver-child.mjs) so that
 *             stop() can SIGKILL it mid-transfer and start() brings it back on the same port with
 *             the same data directory. It does NOT verify SigV4 signatures (only that the access
 *             key is "S3RVER"; anonymous requests are served), does NOT honour If-None-Match /
 *             If-Match on PUT, but does reject expired presigned URLs (403 AccessDenied). A PUT cut
 *             off by a kill can leave a truncated object that GET/HEAD then serve.
 *  - ceph     a real Ceph radosgw (single node, memstore), started by scripts/ceph-rgw.sh. Strict:
 *             signatures, expiry and conditional writes are enforced (see shared/S3-TESTING.md).
 *             stop()/start() stop and restart radosgw only (SIGKILL, same port, data kept).
 *  - external any S3 endpoint named by the environment; nothing is started. stop()/start() throw
 *             (canRestart is false).
 *
 * Environment
 *  SESSMIG_TEST_CEPH                 unset/"auto": run the ceph target when its binaries are on PATH
 *                                    "1": run it, and a missing binary is a test failure (CI)
 *                                    "0": never run it
 *  SESSMIG_TEST_KEEP_CEPH=1          keep the cluster's folder (logs) after dispose()
 *  SESSMIG_TEST_S3_ENDPOINT          enables the external target, e.g. http://127.0.0.1:9000
 *  SESSMIG_TEST_S3_ACCESS_KEY_ID     (falls back to AWS_ACCESS_KEY_ID)
 *  SESSMIG_TEST_S3_SECRET_ACCESS_KEY (falls back to AWS_SECRET_ACCESS_KEY)
 *  SESSMIG_TEST_S3_REGION            default us-east-1
 *  SESSMIG_TEST_S3_PATH_STYLE        "1" (default) path-style URLs, "0" virtual-hosted
 *  SESSMIG_TEST_S3_BUCKET            an existing bucket to use as the target's bucket (left in place
 *                                    at dispose); unset: a fresh bucket is created and deleted.
 *                                    newBucket() always creates (and dispose() deletes) buckets.
 *  SESSMIG_TEST_S3_STRICT            "1" (default): the endpoint enforces signatures and
 *                                    conditional writes like AWS; "0": treat it like s3rver
 *  `scripts/ceph-rgw.sh start DIR` writes DIR/env with these lines, so a cluster started once by
 *  hand can be shared as the external target: `set -a; . DIR/env; set +a`.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';

export type S3TargetKind = 's3rver' | 'ceph' | 'external';

export interface S3Target {
  kind: S3TargetKind;
  /** true for ceph/external: signatures + conditional writes are enforced */
  strict: boolean;
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** a fresh bucket per target (created) */
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** path-style addressing (always true for s3rver and ceph) */
  forcePathStyle: boolean;
  /**
   * env vars a sessmig child process needs to reach this target: AWS_ACCESS_KEY_ID,
   * AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3, SESSMIG_S3_FORCE_PATH_STYLE=1, plus
   * AWS_REQUEST_CHECKSUM_CALCULATION / AWS_RESPONSE_CHECKSUM_VALIDATION = WHEN_REQUIRED and
   * AWS_EC2_METADATA_DISABLED=true (no IMDS probing), AWS_PROFILE/AWS_SESSION_TOKEN emptied.
   */
  env: Record<string, string>;
  /** an S3Client for this target (path style, checksums WHEN_REQUIRED, maxAttempts 1) */
  client: S3Client;
  /** false for external: stop()/start() throw */
  canRestart: boolean;
  /** milliseconds the target took to come up (0 for external) */
  startMs: number;
  /** s3://bucket/prefix */
  remoteUrl(prefix: string): string;
  /** extra fresh bucket (isolation between tests); deleted by dispose() */
  newBucket(): Promise<string>;
  listAll(bucket?: string): Promise<{ key: string; size: number }[]>;
  /** every stored object (for "the bucket holds no plaintext" tests) */
  readAll(bucket?: string): Promise<Map<string, Buffer>>;
  /** server process ids (for RSS measurements); empty for external */
  pids(): number[];
  /** simulate the server dying (s3rver: SIGKILL the child); ceph: SIGKILL radosgw only */
  stop(): Promise<void>;
  /** bring it back on the same port with the same data */
  start(): Promise<void>;
  /** tear everything down */
  dispose(): Promise<void>;
}

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
export const CEPH_SCRIPT = join(REPO, 'scripts', 'ceph-rgw.sh');
const S3RVER_CHILD = join(HERE, 's3rver-child.mjs');
const CEPH_BINARIES = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'monmaptool'];

// Safety net for a forgotten dispose(): ceph daemons are detached and would outlive the test
// process; s3rver children exit by themselves when their stdin closes, their data dirs do not.
const leftovers = { ceph: new Set<string>(), dirs: new Set<string>() };
let exitHook = false;
function onExitCleanup() {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const dir of leftovers.ceph) {
      try {
        execFileSync('bash', [CEPH_SCRIPT, 'kill', dir], { stdio: 'ignore', timeout: 30_000 });
      } catch {
        /* best effort */
      }
    }
    for (const dir of [...leftovers.ceph, ...leftovers.dirs]) rmSync(dir, { recursive: true, force: true });
  });
}

export function makeS3Client(opts: {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle?: boolean;
  maxAttempts?: number;
}): S3Client {
  return new S3Client({
    endpoint: opts.endpoint,
    region: opts.region,
    forcePathStyle: opts.forcePathStyle ?? true,
    credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    // WHEN_SUPPORTED (the SDK default) makes streamed PutObject fail with 411 on Ceph 16 and adds
    // x-amz-checksum-* headers older stores ignore; see shared/S3-TESTING.md
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: opts.maxAttempts ?? 1,
  });
}

export function freshBucketName(): string {
  return `sessmig-test-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

function which(bin: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter);
  for (const d of dirs) {
    if (d && existsSync(join(d, bin))) return join(d, bin);
  }
  return undefined;
}

export function missingCephBinaries(): string[] {
  return CEPH_BINARIES.filter((b) => !which(b));
}

/** SESSMIG_TEST_CEPH=1: the ceph target must run (missing binaries fail the suite). */
export function cephRequired(): boolean {
  return process.env.SESSMIG_TEST_CEPH === '1';
}

export interface S3TargetPlan {
  run: { kind: S3TargetKind; why?: string }[];
  skipped: { kind: S3TargetKind; why: string }[];
}

export function describeS3Targets(): S3TargetPlan {
  const run: S3TargetPlan['run'] = [{ kind: 's3rver', why: 'always' }];
  const skipped: S3TargetPlan['skipped'] = [];
  const ceph = process.env.SESSMIG_TEST_CEPH ?? 'auto';
  const missing = missingCephBinaries();
  if (ceph === '0') {
    skipped.push({ kind: 'ceph', why: 'SESSMIG_TEST_CEPH=0' });
  } else if (ceph === '1') {
    run.push({
      kind: 'ceph',
      why: missing.length
        ? `SESSMIG_TEST_CEPH=1 but ${missing.join(', ')} missing (scripts/ceph-rgw.sh install)`
        : 'SESSMIG_TEST_CEPH=1',
    });
  } else if (missing.length === 0) {
    run.push({ kind: 'ceph', why: 'ceph binaries found (SESSMIG_TEST_CEPH=0 to skip)' });
  } else {
    skipped.push({
      kind: 'ceph',
      why:
        `ceph binaries not found (${missing.join(', ')}); run \`scripts/ceph-rgw.sh install\` ` +
        '(apt-get, root) to test against a strict S3, or SESSMIG_TEST_CEPH=1 to make this an error',
    });
  }
  if (process.env.SESSMIG_TEST_S3_ENDPOINT) {
    run.push({ kind: 'external', why: `SESSMIG_TEST_S3_ENDPOINT=${process.env.SESSMIG_TEST_S3_ENDPOINT}` });
  } else {
    skipped.push({ kind: 'external', why: 'SESSMIG_TEST_S3_ENDPOINT is not set' });
  }
  return { run, skipped };
}

/**
 * The S3 targets end-to-end files run against: the strictest one available (ceph when its binaries
 * exist, else s3rver), or every target with SESSMIG_TEST_E2E_TARGETS=all. Remote contract tests
 * always run against every target; end-to-end flows on a lenient store as well as a strict one
 * would double the suite's time for nothing the strict one does not show.
 */
export function e2eS3Kinds(): { run: S3TargetKind[]; skipped: { kind: S3TargetKind; why: string }[] } {
  const plan = describeS3Targets();
  const kinds = plan.run.map((target) => target.kind).filter((kind) => kind === 's3rver' || kind === 'ceph');
  if (process.env.SESSMIG_TEST_E2E_TARGETS === 'all' || kinds.length < 2) {
    return { run: kinds, skipped: plan.skipped.filter((target) => target.kind === 'ceph') };
  }
  return {
    run: ['ceph'],
    skipped: [{ kind: 's3rver', why: 'the strict target (ceph) runs the end-to-end flows; SESSMIG_TEST_E2E_TARGETS=all adds s3rver' }],
  };
}

/** The targets the suite runs against: always s3rver; ceph when its binaries exist (or
 *  SESSMIG_TEST_CEPH=1; never with SESSMIG_TEST_CEPH=0); external when SESSMIG_TEST_S3_ENDPOINT is set. */
export function s3TargetsFromEnv(): { kind: S3TargetKind; why?: string }[] {
  return describeS3Targets().run;
}

/** Start a target by kind. ceph: { skipped } when unavailable (and SESSMIG_TEST_CEPH is not 1). */
export async function startS3Target(kind: S3TargetKind): Promise<S3Target | { skipped: string }> {
  if (kind === 's3rver') return startS3rver();
  if (kind === 'ceph') {
    const t = await startCeph();
    if ('skipped' in t && cephRequired()) throw new Error(`SESSMIG_TEST_CEPH=1: ${t.skipped}`);
    return t;
  }
  const t = await externalTarget();
  return t ?? { skipped: 'SESSMIG_TEST_S3_ENDPOINT is not set' };
}

// ---------------------------------------------------------------------------------------------
// shared target plumbing

interface Base {
  kind: S3TargetKind;
  strict: boolean;
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  canRestart: boolean;
  startMs: number;
  /** use this bucket instead of creating one (external only) */
  bucket?: string;
  pids(): number[];
  stop(): Promise<void>;
  start(): Promise<void>;
  /** after buckets are emptied (or not) */
  teardown(): Promise<void>;
  /** delete created buckets at dispose (pointless when the server's data is thrown away) */
  cleanBuckets: boolean;
}

async function listKeys(client: S3Client, bucket: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  let token: string | undefined;
  do {
    const r = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: Number(o.Size ?? 0) });
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out;
}

async function emptyBucket(client: S3Client, bucket: string): Promise<void> {
  const keys = await listKeys(client, bucket);
  for (let i = 0; i < keys.length; i += 1000) {
    await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: keys.slice(i, i + 1000).map((k) => ({ Key: k.key })), Quiet: true },
      }),
    );
  }
}

async function makeTarget(b: Base): Promise<S3Target> {
  const client = makeS3Client(b);
  const created: string[] = [];
  const create = async (): Promise<string> => {
    const name = freshBucketName();
    await client.send(new CreateBucketCommand({ Bucket: name }));
    created.push(name);
    return name;
  };
  let bucket: string;
  try {
    if (b.bucket) {
      const given = b.bucket;
      await client.send(new HeadBucketCommand({ Bucket: given })).catch((e: any) => {
        throw new Error(
          `SESSMIG_TEST_S3_BUCKET=${given}: the bucket is not usable at ${b.endpoint} ` +
            `(${e?.$metadata?.httpStatusCode ?? ''} ${e?.name ?? e}); create it or unset the variable`,
        );
      });
      bucket = given;
    } else {
      bucket = await create();
    }
  } catch (err) {
    await b.teardown().catch(() => {});
    throw err;
  }
  const env: Record<string, string> = {
    AWS_ACCESS_KEY_ID: b.accessKeyId,
    AWS_SECRET_ACCESS_KEY: b.secretAccessKey,
    AWS_SESSION_TOKEN: '',
    AWS_PROFILE: '',
    AWS_REGION: b.region,
    AWS_DEFAULT_REGION: b.region,
    AWS_ENDPOINT_URL_S3: b.endpoint,
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  if (b.forcePathStyle) env.SESSMIG_S3_FORCE_PATH_STYLE = '1';
  let disposed = false;
  return {
    kind: b.kind,
    strict: b.strict,
    endpoint: b.endpoint,
    bucket,
    region: b.region,
    accessKeyId: b.accessKeyId,
    secretAccessKey: b.secretAccessKey,
    forcePathStyle: b.forcePathStyle,
    env,
    client,
    canRestart: b.canRestart,
    startMs: b.startMs,
    remoteUrl: (prefix: string) => `s3://${bucket}/${prefix.replace(/^\/+/, '')}`,
    newBucket: create,
    listAll: (bk?: string) => listKeys(client, bk ?? bucket),
    async readAll(bk?: string) {
      const name = bk ?? bucket;
      const out = new Map<string, Buffer>();
      for (const { key } of await listKeys(client, name)) {
        const r = await client.send(new GetObjectCommand({ Bucket: name, Key: key }));
        out.set(key, Buffer.from(await r.Body!.transformToByteArray()));
      }
      return out;
    },
    pids: b.pids,
    stop: b.stop,
    start: b.start,
    async dispose() {
      if (disposed) return;
      disposed = true;
      try {
        if (b.cleanBuckets) {
          for (const name of created) {
            await emptyBucket(client, name).catch(() => {});
            await client.send(new DeleteBucketCommand({ Bucket: name })).catch(() => {});
          }
        }
      } finally {
        client.destroy();
        await b.teardown();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// s3rver

interface Child {
  proc: ChildProcess;
  port: number;
}

function spawnS3rver(port: number, dir: string, timeoutMs = 20_000): Promise<Child> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // vitest/inspector flags are not for the server
  const proc = spawn(process.execPath, ['--openssl-legacy-provider', S3RVER_CHILD, String(port), dir], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
  });
  return new Promise<Child>((resolvePromise, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`s3rver did not start within ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    const onExit = (code: number | null, sig: string | null) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited (${code ?? sig}) before it was ready: ${err.trim()}`));
    };
    proc.once('exit', onExit);
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err = (err + d).slice(-4000);
    });
    proc.stdout!.setEncoding('utf8').on('data', function onData(d: string) {
      out += d;
      const m = /^READY (\d+)$/m.exec(out);
      if (!m) return;
      clearTimeout(timer);
      proc.off('exit', onExit);
      proc.stdout!.off('data', onData);
      proc.stdout!.resume();
      // a forgotten dispose() must not keep the test process alive; the child exits when our
      // end of its stdin closes (i.e. when this process exits)
      proc.unref();
      for (const s of [proc.stdin, proc.stdout, proc.stderr] as unknown as { unref?: () => void }[]) {
        s?.unref?.();
      }
      resolvePromise({ proc, port: Number(m[1]) });
    });
  });
}

function killAndWait(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    proc.once('exit', () => res());
    proc.kill(signal);
  });
}

export async function startS3rver(): Promise<S3Target> {
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'sessmig-s3rver-'));
  onExitCleanup();
  leftovers.dirs.add(dir);
  let child: Child | undefined = await spawnS3rver(0, dir);
  const port = child.port;
  const startMs = Math.round(performance.now() - t0);
  return makeTarget({
    kind: 's3rver',
    strict: false,
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    // s3rver's only account; any other access key id gets 403 InvalidAccessKeyId
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    forcePathStyle: true,
    canRestart: true,
    startMs,
    cleanBuckets: false,
    pids: () => (child?.proc.pid ? [child.proc.pid] : []),
    async stop() {
      if (!child) return;
      const c = child;
      child = undefined;
      await killAndWait(c.proc, 'SIGKILL');
    },
    async start() {
      if (child) return;
      // the port may linger briefly; retry EADDRINUSE for a few seconds
      let lastErr: unknown;
      for (let i = 0; i < 50; i++) {
        try {
          child = await spawnS3rver(port, dir);
          return;
        } catch (e) {
          lastErr = e;
          if (!/EADDRINUSE/.test(String(e))) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      throw lastErr;
    },
    async teardown() {
      if (child) await killAndWait(child.proc, 'SIGKILL');
      child = undefined;
      rmSync(dir, { recursive: true, force: true });
      leftovers.dirs.delete(dir);
    },
  });
}

// ---------------------------------------------------------------------------------------------
// ceph

function runScript(args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    execFile('bash', [CEPH_SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`scripts/ceph-rgw.sh ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else res({ stdout, stderr });
    });
  });
}

function readEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export async function startCeph(): Promise<S3Target | { skipped: string }> {
  const missing = missingCephBinaries();
  if (missing.length) {
    return {
      skipped:
        `ceph binaries not found: ${missing.join(', ')} ` +
        '(install with `scripts/ceph-rgw.sh install`: apt-get ceph-mon ceph-osd radosgw ceph-common)',
    };
  }
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'sessmig-ceph-'));
  onExitCleanup();
  leftovers.ceph.add(dir);
  // random ports can collide with a concurrent start; retry with new ones
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await runScript(['start', dir], 120_000);
      lastErr = undefined;
      break;
    } catch (e) {
      lastErr = e;
    }
  }
  if (lastErr) {
    await runScript(['kill', dir], 60_000).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    leftovers.ceph.delete(dir);
    throw lastErr;
  }
  // kills the cluster if this process dies without dispose() (the exit hook misses signals)
  const watcher = spawn('bash', [CEPH_SCRIPT, 'watch', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  });
  watcher.unref();
  const e = readEnvFile(join(dir, 'env'));
  const startMs = Math.round(performance.now() - t0);
  const pidOf = (name: string): number | undefined => {
    try {
      return Number(readFileSync(join(dir, 'run', `${name}.pid`), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  };
  return makeTarget({
    kind: 'ceph',
    strict: true,
    endpoint: e.SESSMIG_TEST_S3_ENDPOINT!,
    region: e.SESSMIG_TEST_S3_REGION ?? 'us-east-1',
    accessKeyId: e.SESSMIG_TEST_S3_ACCESS_KEY_ID!,
    secretAccessKey: e.SESSMIG_TEST_S3_SECRET_ACCESS_KEY!,
    forcePathStyle: true,
    canRestart: true,
    startMs,
    cleanBuckets: false,
    pids: () => ['mon.a', 'osd.0', 'client.rgw.a'].map(pidOf).filter((p): p is number => !!p),
    stop: async () => {
      await runScript(['stop-rgw', dir, '--kill'], 60_000);
    },
    start: async () => {
      await runScript(['start-rgw', dir], 120_000);
    },
    teardown: async () => {
      if (watcher.exitCode === null && watcher.signalCode === null) watcher.kill('SIGKILL');
      // rgw -> osd -> mon, SIGKILL: the memstore data is thrown away anyway
      await runScript(['kill', dir], 60_000).catch(() => {});
      leftovers.ceph.delete(dir);
      if (!process.env.SESSMIG_TEST_KEEP_CEPH) rmSync(dir, { recursive: true, force: true });
    },
  });
}

// ---------------------------------------------------------------------------------------------
// external

export async function externalTarget(): Promise<S3Target | undefined> {
  const env = process.env;
  const endpoint = env.SESSMIG_TEST_S3_ENDPOINT;
  if (!endpoint) return undefined;
  const accessKeyId = env.SESSMIG_TEST_S3_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.SESSMIG_TEST_S3_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      'SESSMIG_TEST_S3_ENDPOINT is set but SESSMIG_TEST_S3_ACCESS_KEY_ID / SESSMIG_TEST_S3_SECRET_ACCESS_KEY are not',
    );
  }
  const notRestartable = async () => {
    throw new Error('the external S3 target cannot be stopped or restarted (check target.canRestart)');
  };
  return makeTarget({
    kind: 'external',
    strict: env.SESSMIG_TEST_S3_STRICT !== '0',
    endpoint: endpoint.replace(/\/+$/, ''),
    region: env.SESSMIG_TEST_S3_REGION || 'us-east-1',
    accessKeyId,
    secretAccessKey,
    forcePathStyle: env.SESSMIG_TEST_S3_PATH_STYLE !== '0',
    canRestart: false,
    startMs: 0,
    bucket: env.SESSMIG_TEST_S3_BUCKET || undefined,
    cleanBuckets: true,
    pids: () => [],
    stop: notRestartable,
    start: notRestartable,
    teardown: async () => {},
  });
}

/**
 * The objects under `prefix` of a target's bucket, read and written behind sessmig's back through
 * the plain S3 API (what the prune and check tests plant, damage and count). Keys are relative to
 * `prefix`; `url` is the sessmig remote for that prefix.
 */
export interface PrefixStore {
  url: string;
  env: Record<string, string>;
  /** key → size in bytes, every page. */
  list(): Promise<Map<string, number>>;
  get(key: string): Promise<Buffer>;
  put(key: string, body: Buffer): Promise<void>;
  delete(key: string): Promise<void>;
}

export function prefixStore(target: S3Target, prefix: string): PrefixStore {
  const Bucket = target.bucket;
  return {
    url: target.remoteUrl(prefix),
    env: target.env,
    async list() {
      const out = new Map<string, number>();
      let token: string | undefined;
      do {
        const page = await target.client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token }));
        for (const item of page.Contents ?? []) out.set(item.Key!.slice(prefix.length), Number(item.Size ?? 0));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
    async get(key) {
      const got = await target.client.send(new GetObjectCommand({ Bucket, Key: prefix + key }));
      return Buffer.from(await got.Body!.transformToByteArray());
    },
    async put(key, body) {
      await target.client.send(new PutObjectCommand({ Bucket, Key: prefix + key, Body: body }));
    },
    async delete(key) {
      await target.client.send(new DeleteObjectCommand({ Bucket, Key: prefix + key }));
    },
  };
}
