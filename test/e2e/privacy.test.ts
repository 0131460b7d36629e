/**
 * Other users of the same machine must not read sessions or tickets (issue 21), on real parts: real
 * opencode sessions, the real CLI under a chosen umask, a file:// remote, s3rver on loopback.
 * - every object and folder sessmig writes into a local-folder remote is 0600/0700 under umask
 *   022, and group-shared (never world) under a group-writable root even with umask 000; `check`
 *   names what other users can read;
 * - ticket URLs come on stdin (`-`) or from a file (`@FILE`), never seen in /proc/PID/cmdline;
 *   `share --output` writes a 0600 file; a URL on the command line still works, with a warning;
 * - plain HTTP to a non-loopback address warns, unless the worktree is encrypted.
 */
import { execa } from 'execa';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHost, createRepo, type Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { startS3rver, type S3Target } from '../support/s3.js';
import { allOutput, assertNoSecrets, explain, SESSMIG_BIN, sessmig, type SessmigRun } from './harness.js';

let scene: Scene;
let a: Host;
let repoA: string;
let b: Host;
let repoB: string;
let session = '';
let scratch: string;

beforeAll(async () => {
  scene = await startScene(['laptop']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  session = (await a.run(repoA, 'plain session MARK-PRIVATE')).sessionID;
  b = await createHost('box');
  repoB = path.join(b.workDir, 'app');
  await createRepo(repoB);
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sessmig-privacy-'));
}, 240_000);

afterAll(async () => {
  await b?.cleanup();
  await scene?.dispose();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** sessmig on a host, started by `sh -c 'umask U; exec node bin/sessmig.js …'`, checked for secrets like every run. */
async function under(umask: string, host: Host, args: string[], options: { cwd: string; env?: Record<string, string>; input?: string }): Promise<SessmigRun> {
  const env = { ...host.env, SESSMIG_OPENCODE: host.opencodeBin, ...options.env };
  const result = await execa('/bin/sh', ['-c', `umask ${umask} && exec "$0" "$@"`, process.execPath, SESSMIG_BIN, ...args], {
    cwd: options.cwd,
    env,
    extendEnv: false,
    reject: false,
    timeout: 300_000,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
  });
  const stdout = String(result.stdout);
  const stderr = String(result.stderr);
  allOutput.push(stdout, stderr);
  assertNoSecrets(args, stdout, stderr, env);
  let json: any;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
  }
  return { exitCode: result.exitCode ?? -1, stdout, stderr, json };
}

/** `mode relative/path` of every file and folder under root, root itself as `.`. */
async function modes(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (full: string, rel: string) => {
    const info = await stat(full);
    out.push(`${(info.mode & 0o7777).toString(8).padStart(4, '0')} ${rel || '.'}`);
    if (info.isDirectory()) for (const name of (await readdir(full)).sort()) await visit(path.join(full, name), rel ? `${rel}/${name}` : name);
  };
  await visit(root, '');
  return out;
}

/** Every entry has the mode its kind should have (files end in .json/.gz/.age/.bundle, folders do not). */
function expectModes(found: string[], file: string, dir: string): void {
  const wrong = found.filter((line) => {
    const [mode, rel] = line.split(' ') as [string, string];
    return mode !== (/\.(json|gz|age|bundle)$/.test(rel) ? file : dir);
  });
  expect(wrong, found.join('\n')).toEqual([]);
}

describe('a file:// remote under umask 022 is private', () => {
  let parent: string;
  let root: string;
  let url: string;
  const onA = (args: string[]) => under('022', a, [...args, '--remote', url], { cwd: repoA });
  const onB = (args: string[]) => under('022', b, [...args, '--remote', url], { cwd: repoB });

  beforeAll(async () => {
    parent = path.join(scratch, 'private');
    await mkdir(parent);
    root = path.join(parent, 'not-yet', 'remote'); // sessmig creates it and its parent
    url = pathToFileURL(root).href;
  });

  it('push (twice), pull --migrate, share (refused) and prune leave only 0600 files in 0700 folders', async () => {
    const first = await onA(['push', '--json']);
    expect(first.exitCode, explain(first)).toBe(0);
    const afterPush = await modes(path.join(parent, 'not-yet'));
    expect(afterPush.length).toBeGreaterThanOrEqual(10); // not-yet, remote, sessmig, v1, worktrees, <wt>, checkpoints, blobs, HEAD, manifest, blob
    expectModes(afterPush, '0600', '0700');

    await a.run(repoA, 'second turn MARK-PRIVATE-2', { session });
    const second = await onA(['push', '--migrate', '--json']); // released, for the box to claim
    expect(second.exitCode, explain(second)).toBe(0);
    expect(second.json.checkpoint).not.toBe(first.json.checkpoint);
    expectModes(await modes(root), '0600', '0700');

    const pulled = await onB(['pull', '--migrate', '--json']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect((await b.sessions()).map((row) => row.id)).toContain(session);
    expectModes(await modes(root), '0600', '0700');

    const share = await onA(['share']);
    expect(share.exitCode, explain(share)).toBe(2);
    expectModes(await modes(root), '0600', '0700');

    const prune = await onA(['prune', '--keep-last', '1', '--grace', '0s', '--json']);
    expect(prune.exitCode, explain(prune)).toBe(0);
    expect(prune.json.deleted.checkpoints).toBe(1);
    const afterPrune = await modes(root);
    expectModes(afterPrune, '0600', '0700');
    expect(afterPrune.filter((line) => line.includes('/checkpoints/'))).toHaveLength(1);
  });

  it('check names every object and folder other users can read (a warning, exit 0)', async () => {
    const clean = await onA(['check', '--json']);
    expect(clean.exitCode, explain(clean)).toBe(0);
    expect(clean.json.problems.filter((p: { code: string }) => p.code === 'readable-by-others')).toEqual([]);

    // What an older sessmig wrote: a 0644 manifest in a 0755 folder, and a group-readable pointer.
    const wt = clean.json.worktrees[0].worktree as string;
    const base = `sessmig/v1/worktrees/${wt}`;
    const manifest = (await readdir(path.join(root, base, 'checkpoints')))[0]!;
    await chmod(path.join(root, base, 'checkpoints', manifest), 0o644);
    await chmod(path.join(root, base, 'checkpoints'), 0o755);
    await chmod(path.join(root, base, 'HEAD.json'), 0o640);
    const json = await onA(['check', '--json']);
    expect(json.exitCode, explain(json)).toBe(0);
    const exposed = json.json.problems.filter((p: { code: string }) => p.code === 'readable-by-others');
    expect(exposed.map((p: { key: string; severity: string }) => `${p.severity} ${p.key}`).sort()).toEqual(
      [`warning ${base}/HEAD.json`, `warning ${base}/checkpoints/`, `warning ${base}/checkpoints/${manifest}`].sort(),
    );
    expect(exposed.find((p: { key: string }) => p.key.endsWith(manifest)).message).toMatch(/has mode 0644: any user of this machine can read it/);
    expect(json.json.warnings).toBeGreaterThanOrEqual(3);
    const human = await onA(['check']);
    expect(human.exitCode, explain(human)).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`warning: folder ${base}/checkpoints/ of \\S+ has mode 0755: any user of this machine can list and enter it`));
    expect(human.stdout).toMatch(/HEAD\.json of \S+ has mode 0640: members of its group/);
    expect(human.stdout).toMatch(/hint: .*chmod -R go-rwx/);
  });
});

describe('a group-shared file:// remote (2770) under umask 000', () => {
  it('keeps the group rights (0660 files, 2770 folders) and gives other users nothing, through push and pull', async () => {
    const root = path.join(scratch, 'team');
    await mkdir(root);
    await chmod(root, 0o2770);
    const url = pathToFileURL(root).href;
    const push = await under('000', a, ['push', '--worktree', 'team-app', '--remote', url], { cwd: repoA });
    expect(push.exitCode, explain(push)).toBe(0);
    expectModes(await modes(root), '0660', '2770');
    const pull = await under('000', b, ['pull', '--worktree', 'team-app', '--remote', url, '--json'], { cwd: repoB });
    expect(pull.exitCode, explain(pull)).toBe(0);
    const found = await modes(root);
    expectModes(found, '0660', '2770');
    expect(found.filter((line) => Number.parseInt(line.split(' ')[0]!, 8) & 0o007)).toEqual([]);
    const check = await under('000', a, ['check', '--worktree', 'team-app', '--remote', url, '--json'], { cwd: repoA });
    expect(check.exitCode, explain(check)).toBe(0);
    expect(check.json.problems.filter((p: { code: string }) => p.code === 'readable-by-others')).toEqual([]);
  });
});

describe('ticket URLs stay off the command line (s3rver)', () => {
  let target: S3Target;
  let remote: string;
  const signatureOf = (url: string) => /X-Amz-Signature=([0-9a-f]{64})/.exec(url)![1]!;
  const onA = (args: string[]) => under('000', a, [...args, '--remote', remote], { cwd: repoA, env: target.env });
  const onB = (args: string[], input?: string) => sessmig(b, args, { cwd: repoB, ...(input !== undefined ? { input } : {}) });
  const CMDLINE_WARNING = /warning: the --(from|to)-url URL on the command line can be read by every user of this machine \(ps\)/;

  beforeAll(async () => {
    target = await startS3rver();
    remote = target.remoteUrl('team/');
    const push = await onA(['push', '--json']);
    expect(push.exitCode, explain(push)).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await target?.dispose();
  });

  it('share --output writes the URL to a new 0600 file (umask 000), refuses an existing one, --overwrite replaces it with a 0600 file', async () => {
    const file = path.join(scratch, 'down.url');
    const made = await onA(['share', '--output', file]);
    expect(made.exitCode, explain(made)).toBe(0);
    expect(made.stdout).toBe('');
    expect(made.stderr).toMatch(/wrote the URL to \S+down\.url \(mode 0600\)/);
    expect((await stat(file)).mode & 0o7777).toBe(0o600);
    const first = (await readFile(file, 'utf8')).trim();
    expect(first).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\S+X-Amz-Signature=[0-9a-f]{64}\S*$/);

    const again = await onA(['share', '--output', file, '--json']);
    expect(again.exitCode, explain(again)).toBe(2);
    expect(again.json.error.code).toBe('output-exists');
    expect(again.stdout).not.toMatch(/X-Amz-Signature/);
    expect((await readFile(file, 'utf8')).trim()).toBe(first);

    await chmod(file, 0o644);
    const replaced = await onA(['share', '--output', file, '--overwrite', '--json']);
    expect(replaced.exitCode, explain(replaced)).toBe(0);
    expect(replaced.json.url).toBeUndefined();
    expect(replaced.json.output).toBe(file);
    expect(replaced.stdout).not.toMatch(/X-Amz-Signature/);
    expect((await stat(file)).mode & 0o7777).toBe(0o600);
    expect(signatureOf(await readFile(file, 'utf8'))).not.toBe(signatureOf(first));

    // An upload ticket too.
    const upFile = path.join(scratch, 'up.url');
    const up = await onA(['share', '--upload', '--output', upFile]);
    expect(up.exitCode, explain(up)).toBe(0);
    expect(up.stdout).toBe('');
    expect((await stat(upFile)).mode & 0o7777).toBe(0o600);
  });

  it('pull --from-url - reads stdin, @FILE reads the file (no warning); the URL as argument works with one warning line', async () => {
    const file = path.join(scratch, 'down.url');
    const text = await readFile(file, 'utf8');
    const fromStdin = await onB(['pull', '--from-url', '-', '--dry-run', '--json'], text);
    expect(fromStdin.exitCode, explain(fromStdin)).toBe(0);
    expect(fromStdin.json.sessions.map((s: { id: string }) => s.id)).toContain(session);
    expect(fromStdin.stderr).not.toMatch(CMDLINE_WARNING);

    const fromFile = await onB(['pull', '--from-url', `@${file}`, '--dry-run', '--json']);
    expect(fromFile.exitCode, explain(fromFile)).toBe(0);
    expect(fromFile.stderr).not.toMatch(CMDLINE_WARNING);
    expect(fromFile.stderr).not.toMatch(/other users of this machine can read the ticket URL/);
    // A file others can read is named (it works all the same).
    const shared = path.join(scratch, 'shared.url');
    await writeFile(shared, text, { mode: 0o644 });
    await chmod(shared, 0o644);
    const fromShared = await onB(['pull', '--from-url', `@${shared}`, '--dry-run']);
    expect(fromShared.exitCode, explain(fromShared)).toBe(0);
    expect(fromShared.stderr).toMatch(/shared\.url has mode 0644: other users of this machine can read the ticket URL in it; chmod 600 it/);

    const argument = await onB(['pull', '--from-url', text.trim(), '--dry-run', '--json']);
    expect(argument.exitCode, explain(argument)).toBe(0);
    expect(argument.stderr.split('\n').filter((line) => CMDLINE_WARNING.test(line))).toHaveLength(1);
    expect(argument.stderr).toMatch(/pass it on standard input instead: sessmig pull --from-url - < ticket\.url/);

    const empty = await onB(['pull', '--from-url', '-', '--json'], '\n');
    expect(empty.exitCode, explain(empty)).toBe(2);
    expect(empty.json.error.code).toBe('bad-ticket-url');
  });

  it('push --to-url - reads stdin; the URL as argument warns', async () => {
    const text = await readFile(path.join(scratch, 'up.url'), 'utf8');
    const fromStdin = await onB(['push', '--to-url', '-', '--dry-run', '--json'], text);
    expect(fromStdin.exitCode, explain(fromStdin)).toBe(0);
    // The ticket was fetched and checked (a bad or missing URL exits 2); 'nothing' when the box has no session yet (run alone).
    expect(['dry-run', 'nothing']).toContain(fromStdin.json.status);
    expect(fromStdin.stderr).not.toMatch(CMDLINE_WARNING);
    const argument = await onB(['push', '--to-url', text.trim(), '--dry-run']);
    expect(argument.exitCode, explain(argument)).toBe(0);
    expect(argument.stderr).toMatch(CMDLINE_WARNING);
  });

  it('while `pull --from-url -` waits on a stalled server, /proc/PID/cmdline holds no URL (the argument form does)', async () => {
    const seen: string[] = [];
    const server = http.createServer((request) => void seen.push(request.url ?? '')); // never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const signature = 'c0ffee'.repeat(10) + 'beef';
    const ticketUrl = `http://127.0.0.1:${port}/bucket/sessmig/v1/worktrees/x/tickets/t.json?X-Amz-Signature=${signature}`;
    const watch = async (args: string[], input?: string) => {
      seen.length = 0;
      const child = execa(process.execPath, [SESSMIG_BIN, ...args], {
        cwd: repoB,
        env: { ...b.env, SESSMIG_OPENCODE: b.opencodeBin },
        extendEnv: false,
        reject: false,
        ...(input !== undefined ? { input } : { stdin: 'ignore' as const }),
      });
      try {
        const deadline = Date.now() + 60_000;
        while (seen.length === 0 && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
        expect(seen, 'the stalled server never saw the ticket request').toHaveLength(1);
        const cmdline = (await readFile(`/proc/${child.pid}/cmdline`, 'utf8')).split('\0');
        return cmdline;
      } finally {
        child.kill('SIGKILL');
        const result = await child;
        allOutput.push(String(result.stdout), String(result.stderr));
      }
    };
    try {
      const hidden = await watch(['pull', '--from-url', '-'], `${ticketUrl}\n`);
      expect(hidden).toContain('--from-url');
      expect(hidden).toContain('-');
      expect(hidden.join(' ')).not.toContain(signature);
      expect(hidden.join(' ')).not.toContain(`127.0.0.1:${port}`);
      // The same reading with the URL as the argument shows it: the check above can see a leak.
      const shown = await watch(['pull', '--from-url', ticketUrl]);
      expect(shown.join(' ')).toContain(signature);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

/** This machine's first non-loopback IPv4 address, or undefined. */
function outsideAddress(): string | undefined {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const item of list ?? []) if (item.family === 'IPv4' && !item.internal) return item.address;
  }
  return undefined;
}

describe('plain HTTP to another machine warns, unless the worktree is encrypted', () => {
  const address = outsideAddress();
  let target: S3Target;
  let forwarder: net.Server;
  let outside: Record<string, string>;
  const PLAIN = /warning: the S3 endpoint http:\/\/[\d.]+:\d+ is plain HTTP to another machine/;
  const TICKET_PLAIN = /warning: the ticket URL points at http:\/\/[\d.]+:\d+, plain HTTP to another machine/;
  const lines = (run: SessmigRun, pattern: RegExp) => run.stderr.split('\n').filter((line) => pattern.test(line)).length;

  beforeAll(async () => {
    if (!address) return;
    target = await startS3rver();
    const port = Number(new URL(target.endpoint).port);
    // The same s3rver, reached through this machine's non-loopback address.
    forwarder = net.createServer((socket) => {
      const upstream = net.connect(port, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => forwarder.listen(0, address, resolve));
    outside = { ...target.env, AWS_ENDPOINT_URL_S3: `http://${address}:${(forwarder.address() as net.AddressInfo).port}` };
    const key = await sessmig(a, ['key', 'new'], { cwd: repoA });
    expect(key.exitCode, explain(key)).toBe(0);
  }, 120_000);

  afterAll(async () => {
    forwarder?.close();
    await target?.dispose();
  });

  it('ls, push, status, check and share on a plaintext worktree: one warning line each; loopback: none', async (ctx) => {
    if (!address) return ctx.skip('no non-loopback IPv4 address on this machine');
    const remote = target.remoteUrl('clear/');
    const onA = (args: string[], env = outside) => sessmig(a, [...args, '--remote', remote], { cwd: repoA, env });
    const empty = await onA(['ls', '--json']);
    expect(empty.exitCode, explain(empty)).toBe(0);
    expect(lines(empty, PLAIN), empty.stderr).toBe(1);
    for (const args of [['push', '--json'], ['status'], ['check'], ['ls']]) {
      const run = await onA(args);
      expect(run.exitCode, explain(run)).toBe(0);
      expect(lines(run, PLAIN), `${args.join(' ')}\n${run.stderr}`).toBe(1);
    }
    const share = await onA(['share', '--json']);
    expect(share.exitCode, explain(share)).toBe(0);
    expect(lines(share, PLAIN)).toBe(1);
    // The ticket's URLs point at the same endpoint: the host without credentials is warned too.
    const pull = await sessmig(b, ['pull', '--from-url', '-', '--dry-run'], { cwd: repoB, input: share.json.url });
    expect(pull.exitCode, explain(pull)).toBe(0);
    expect(lines(pull, TICKET_PLAIN), pull.stderr).toBe(1);

    const loopback = await onA(['status'], target.env);
    expect(loopback.exitCode, explain(loopback)).toBe(0);
    expect(loopback.stderr).not.toMatch(/plain HTTP/);
  });

  it('an endpoint from the AWS config file (endpoint_url, no AWS_ENDPOINT_URL_S3) warns too: sessmig notes where requests went', async (ctx) => {
    if (!address) return ctx.skip('no non-loopback IPv4 address on this machine');
    const config = path.join(scratch, 'aws-config');
    await writeFile(config, `[default]\nendpoint_url = ${outside.AWS_ENDPOINT_URL_S3}\n`);
    const { AWS_ENDPOINT_URL_S3: _ignored, ...env } = outside;
    const run = await sessmig(a, ['ls', '--remote', target.remoteUrl('clear/')], { cwd: repoA, env: { ...env, AWS_CONFIG_FILE: config, AWS_PROFILE: 'default' } });
    expect(run.exitCode, explain(run)).toBe(0);
    expect(lines(run, PLAIN), run.stderr).toBe(1);
  });

  it('an encrypted worktree is silent: push --encrypt, status, check, ls, and its ticket', async (ctx) => {
    if (!address) return ctx.skip('no non-loopback IPv4 address on this machine');
    const remote = target.remoteUrl('sealed/');
    const onA = (args: string[]) => sessmig(a, [...args, '--remote', remote], { cwd: repoA, env: outside });
    for (const args of [['push', '--encrypt'], ['status'], ['check', '--read-data'], ['ls']]) {
      const run = await onA(args);
      expect(run.exitCode, explain(run)).toBe(0);
      expect(run.stderr, args.join(' ')).not.toMatch(/plain HTTP/);
    }
    const share = await onA(['share', '--json']);
    expect(share.exitCode, explain(share)).toBe(0);
    expect(share.json.url).toMatch(/#AGE-SECRET-KEY-1/);
    const pull = await sessmig(b, ['pull', '--from-url', '-', '--dry-run'], { cwd: repoB, input: share.json.url });
    expect(pull.exitCode, explain(pull)).toBe(0);
    expect(pull.stderr).not.toMatch(/plain HTTP/);
  });
});
