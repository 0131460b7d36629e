/**
 * The plugin file as opencode would load it (an ES module with a named plugin export), without
 * opencode: inert where sessmig says so, silent on stdout, and telling opencode's log when the
 * sessmig it names is gone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { installPlugin, pluginInstalled, pluginSource, uninstallPlugin } from '../../src/host/opencodePlugin.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-plugin-'));
});
afterEach(async () => {
  delete process.env.SESSMIG_NO_AUTO_PUSH;
  await rm(dir, { recursive: true, force: true });
});

async function load(nodeBin: string, sessmigBin: string) {
  const file = await installPlugin(dir, pluginSource(nodeBin, sessmigBin));
  return import(`${pathToFileURL(file).href}?t=${Date.now()}-${Math.random()}`);
}

it('writes nothing to stdout or stderr, in its source', () => {
  const source = pluginSource('/usr/bin/node', '/opt/sessmig/bin/sessmig.js');
  expect(source).not.toMatch(/console\.|process\.stdout|process\.stderr/);
  expect(source).toContain("stdio: 'ignore'");
  expect(source).toContain('detached: true');
});

it('is inert with SESSMIG_NO_AUTO_PUSH=1 (sessmig sets it for the opencode it starts)', async () => {
  process.env.SESSMIG_NO_AUTO_PUSH = '1';
  const mod = await load(process.execPath, '/nowhere/sessmig.js');
  expect(await mod.SessmigPushOnIdle({ client: { app: { log: async () => {} } }, directory: dir, worktree: dir })).toEqual({});
});

it('logs an error through client.app.log when the sessmig it names is gone, and starts nothing', async () => {
  const mod = await load(process.execPath, path.join(dir, 'gone', 'sessmig.js'));
  const logged: any[] = [];
  const hooks = await mod.SessmigPushOnIdle({ client: { app: { log: async (entry: unknown) => void logged.push(entry) } }, directory: dir, worktree: dir });
  await hooks.event({ event: { type: 'session.idle', properties: { sessionID: 'ses_x' } } });
  expect(logged).toHaveLength(1);
  expect(logged[0].body).toMatchObject({ service: 'sessmig', level: 'error' });
  expect(logged[0].body.message).toMatch(/^sessmig: sessmig is not at .*run `sessmig plugin install` again$/);
});

it('uninstall removes only sessmig\'s own file', async () => {
  await installPlugin(dir, pluginSource('/n', '/s'));
  expect(await pluginInstalled(dir)).toBe(true);
  expect((await uninstallPlugin(dir)).outcome).toBe('removed');
  expect((await uninstallPlugin(dir)).outcome).toBe('absent');
  await writeFile(path.join(dir, 'sessmig.js'), 'export const Mine = async () => ({});\n');
  expect((await uninstallPlugin(dir)).outcome).toBe('foreign');
});
