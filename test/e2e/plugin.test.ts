/**
 * A repository plugin that prints on stdout (issue 23, item 1), on the real opencode 1.18.33: it
 * runs inside `opencode export`, so its lines land around the session JSON. Push must store exactly
 * the session through both export paths (`SESSMIG_EXPORT_VIA=cli`: one `opencode export` per
 * session; `server`: one `opencode serve`), with the same content hashes, and refuse only the
 * session whose JSON cannot be told from what the plugin printed.
 *
 * opencode runs `npm install` in a `.opencode/` folder that holds plugins; against the hosts' dead
 * registry that retries for about a minute before it gives up and loads the plugin anyway.
 * `npm_config_offline=true` makes it give up at once (measured: same plugin output either way).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let scene: Scene;
let laptop: Host;
let box: Host;
let repoL: string;
let repoB: string;
let remotes: string;
const made = { plain: '', task: '', child: '' };

const NOISY = `export const Noisy = async () => {
  console.log("[noisy] loaded");
  console.log(JSON.stringify({ level: "info", msg: "noisy plugin ready", info: { id: "not-a-session" }, messages: [] }));
  process.on("exit", () => console.log("[noisy] bye {"));
  return {};
};
`;

beforeAll(async () => {
  scene = await startScene(['laptop', 'box'], { runsAttached: false }); // plugins load in each run's own opencode
  ({ host: laptop, repo: repoL } = scene.hosts[0]!);
  ({ host: box, repo: repoB } = scene.hosts[1]!);
  for (const host of [laptop, box]) host.env.npm_config_offline = 'true';
  made.plain = (await laptop.run(repoL, 'plain work')).sessionID;
  made.task = (await laptop.run(repoL, 'delegate [[task look around]]')).sessionID;
  made.child = (await laptop.children(made.task))[0]!;
  await mkdir(path.join(repoL, '.opencode', 'plugin'), { recursive: true });
  await writeFile(path.join(repoL, '.opencode', 'plugin', 'noisy.js'), NOISY);
  remotes = await mkdtemp(path.join(os.tmpdir(), 'sessmig-plugin-'));
}, 300_000);

afterAll(async () => {
  await scene?.dispose();
  if (remotes) await rm(remotes, { recursive: true, force: true });
});

/** Every blob of a file remote, gunzipped, by sha256. */
async function blobs(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const root = path.join(dir, 'sessmig', 'v1', 'worktrees');
  for (const worktree of await readdir(root)) {
    const folder = path.join(root, worktree, 'blobs');
    // Session blobs only: snapshot packs and tool outputs sit beside them (.pack.gz, .out.gz).
    for (const name of await readdir(folder)) if (name.endsWith('.json.gz')) out.set(name.replace(/\.json\.gz$/, ''), gunzipSync(await readFile(path.join(folder, name))));
  }
  return out;
}

describe('a plugin that prints on stdout', () => {
  it('really prints around the session JSON in `opencode export` (the premise)', async () => {
    const { stdout } = await laptop.opencode(['export', made.plain], { cwd: repoL });
    expect(stdout.startsWith('[noisy] loaded\n')).toBe(true);
    expect(stdout).toContain('{"level":"info","msg":"noisy plugin ready"');
    expect(stdout.indexOf('{\n  "info"')).toBeGreaterThan(0);
  });

  it('push stores exactly the sessions through `opencode export` and through `opencode serve`, with equal content hashes', async () => {
    const hashes: Record<string, Record<string, string>> = {};
    for (const via of ['cli', 'server'] as const) {
      const dir = path.join(remotes, via);
      const run = await sessmig(laptop, ['push', '--remote', pathToFileURL(dir).href, '--json'], { cwd: repoL, env: { SESSMIG_EXPORT_VIA: via } });
      expect(run.exitCode, `${via}: ${explain(run)}`).toBe(0);
      expect(run.json.sessions.map((s: { id: string }) => s.id).sort()).toEqual([made.plain, made.task, made.child].sort());
      const stored = await blobs(dir);
      expect(stored.size).toBe(3);
      for (const [sha, body] of stored) {
        const text = body.toString('utf8');
        expect(text, `${via} blob ${sha}`).not.toContain('noisy');
        expect(text.startsWith('{')).toBe(true);
        expect(text.endsWith('}\n')).toBe(true);
        const value = JSON.parse(text);
        expect([made.plain, made.task, made.child]).toContain(value.info.id);
      }
      const manifest = (await sessmig(laptop, ['ls', '--remote', pathToFileURL(dir).href, '--json'], { cwd: repoL })).json;
      expect(manifest).toBeDefined();
      hashes[via] = Object.fromEntries(run.json.sessions.map((s: { id: string }) => [s.id, '']));
      const cpRoot = path.join(dir, 'sessmig', 'v1', 'worktrees', run.json.worktree, 'checkpoints');
      const checkpoint = JSON.parse(await readFile(path.join(cpRoot, (await readdir(cpRoot))[0]!), 'utf8'));
      for (const session of checkpoint.sessions) hashes[via]![session.id] = session.contentHash;
    }
    expect(hashes.cli).toEqual(hashes.server);
    // The sessions arrive whole on another host.
    const pulled = await sessmig(box, ['pull', '--remote', pathToFileURL(path.join(remotes, 'cli')).href], { cwd: repoB });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect((await box.view(made.task)).children).toEqual([made.child]);
    expect((await box.messageCounts(made.plain)).messages).toBe((await laptop.messageCounts(made.plain)).messages);
  });

  it('a plugin that prints a second object claiming to be the session: that session is refused, naming why; the others go', async () => {
    const twin = `export const Twin = async () => {
  if (process.argv.includes(${JSON.stringify(made.plain)})) console.log(JSON.stringify({ info: { id: ${JSON.stringify(made.plain)} }, messages: [] }));
  return {};
};
`;
    await writeFile(path.join(repoL, '.opencode', 'plugin', 'twin.js'), twin);
    try {
      await laptop.run(repoL, 'more work', { session: made.plain });
      await laptop.run(repoL, 'more work', { session: made.task });
      const dir = path.join(remotes, 'cli');
      const run = await sessmig(laptop, ['push', '--remote', pathToFileURL(dir).href, '--json'], { cwd: repoL, env: { SESSMIG_EXPORT_VIA: 'cli' } });
      expect(run.exitCode, explain(run)).toBe(3);
      expect(run.stderr).toMatch(new RegExp(`opencode export of ${made.plain} printed session ${made.plain} twice .*a plugin writes to stdout`));
      expect(run.json.skipped).toEqual([{ id: made.plain, reason: expect.stringMatching(/printed session .* twice/) }]);
      const pushed = Object.fromEntries(run.json.sessions.map((s: { id: string; action: string }) => [s.id, s.action]));
      expect(pushed[made.task]).toBe('pushed');
      // The remote keeps its earlier copy of the refused session.
      expect(pushed[made.plain]).toBe('reused');
      for (const body of (await blobs(dir)).values()) expect(body.toString('utf8')).not.toContain('noisy');
    } finally {
      await rm(path.join(repoL, '.opencode', 'plugin', 'twin.js'));
    }
  });
});
