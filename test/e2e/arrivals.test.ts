/**
 * Sessions that would not behave on the destination as on the source (issue #23, items 4 and 5),
 * on real opencode: a session opencode is mid-turn in (its last assistant message has no
 * `time.completed`), and a session whose last change is ahead of the destination's clock. Both
 * states are made by editing the source's database the way opencode itself leaves it (a turn cut
 * short; a source clock ahead of the destination's) — what cannot be made on demand otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlId, type Host } from '../support/host.js';
import { startScene, type Scene } from '../support/scene.js';
import { explain, sessmig } from './harness.js';

let scene: Scene;
let a: Host;
let b: Host;
let repoA: string;
let repoB: string;
let dir: string;
let url: string;
const on = (host: Host, cwd: string, args: string[]) => sessmig(host, [...args, '--remote', url, '--json'], { cwd });

beforeAll(async () => {
  scene = await startScene(['laptop', 'box']);
  ({ host: a, repo: repoA } = scene.hosts[0]!);
  ({ host: b, repo: repoB } = scene.hosts[1]!);
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  url = pathToFileURL(dir).href;
}, 120_000);
afterAll(async () => {
  await scene?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('a busy session', () => {
  let busy: string;
  beforeAll(async () => {
    busy = (await a.run(repoA, 'a turn that will look cut short MARK-BUSY')).sessionID;
    const [last] = await a.db<{ id: string }>(`SELECT id FROM message WHERE session_id = ${sqlId(busy)} AND json_extract(data, '$.role') = 'assistant' ORDER BY id DESC LIMIT 1`);
    await a.db(`UPDATE message SET data = json_remove(data, '$.time.completed') WHERE id = ${sqlId(last!.id)}`);
  }, 120_000);

  it('push --migrate refuses to hand it over, changing nothing; --force hands it over; pull warns', async () => {
    const refused = await on(a, repoA, ['push', '--migrate']);
    expect(refused.exitCode, explain(refused)).toBe(2);
    expect(refused.stderr).toContain(busy);
    expect(refused.stderr).toMatch(/mid-turn/);
    expect((await on(a, repoA, ['status'])).json.pushed).toBe(false);
    const forced = await on(a, repoA, ['push', '--migrate', '--force']);
    expect(forced.exitCode, explain(forced)).toBe(0);
    const pulled = await on(b, repoB, ['pull', '--migrate']);
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    expect(pulled.stderr).toMatch(new RegExp(`session ${busy} .*mid-turn.*will not finish on this host`));
    expect(pulled.json.sessions.find((s: { id: string }) => s.id === busy).busy).toBe(true);
  });
});

describe('a session ahead of this host\'s clock', () => {
  let ahead: string;
  beforeAll(async () => {
    // Back to the laptop, which makes a session whose last change is an hour in the future.
    // (the busy session above is still mid-turn: handed back with --force)
    expect((await on(b, repoB, ['push', '--migrate', '--force'])).exitCode).toBe(0);
    expect((await on(a, repoA, ['pull', '--migrate'])).exitCode).toBe(0);
    ahead = (await a.run(repoA, 'a session from a host whose clock runs ahead MARK-SKEW')).sessionID;
    await a.db(`UPDATE session SET time_updated = time_updated + 3600000 WHERE id = ${sqlId(ahead)}`);
    expect((await on(a, repoA, ['push', '--migrate', '--force'])).exitCode).toBe(0);
  }, 240_000);

  it('pull --migrate refuses without --force, naming the gap; nothing is imported', async () => {
    const refused = await on(b, repoB, ['pull', '--migrate']);
    expect(refused.exitCode, explain(refused)).toBe(2);
    expect(refused.stderr).toMatch(/ahead of this host's clock/);
    expect(refused.stderr).toMatch(/(59|60|61) min/);
    expect((await b.sessions()).map((s) => s.id)).not.toContain(ahead);
    const warned = await on(b, repoB, ['pull', '--migrate', '--force']);
    expect(warned.exitCode, explain(warned)).toBe(0);
    expect(warned.stderr).toMatch(/ahead of this host's clock/);
    expect((await b.sessions()).map((s) => s.id)).toContain(ahead);
  });
});
