/**
 * The opencode version matrix on real builds installed side by side (test/support/opencodeVersions.ts):
 * a session made by one version (a file write, so that summary.diffs is not empty) is pushed to a
 * file:// remote and pulled into each other version, then read back through the destination's own
 * opencode (`opencode db`, `opencode export`). Sessions are made once per version. (Subagent children are left out here: roundtrip.test.ts covers them.)
 *
 * What each pair proves:
 * - 1.3.2 → 1.18.33, 1.3.2 → 1.14.41: the legacy summary.diffs adapter (1.14.41 rejects the old shape
 *   half-way, 1.18.33 silently drops the texts); the stored diff is the patch of the two texts.
 * - 1.18.33 → 1.14.41: the directory rebase (1.14.41 keeps the blob's directory: a plain
 *   `opencode import` of the same export lands on the source host's path).
 * - 1.14.41 → 1.18.33: a version change with no known break goes, with a warning.
 * - 1.18.33 → 1.14.41 with a ContentFilterError (added in 1.17.11): that session alone is refused
 *   up front with its field (src/opencode/acceptance.ts); the other one imports.
 * - 1.18.33 → 1.3.2, 1.14.41 → 1.3.2: refused before anything is imported (patch → before/after
 *   cannot be done honestly); with --force, each blob that 1.3.2 would reject half-way is still
 *   refused up front, naming the field.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffShapeFor, unifiedPatch } from '../../src/opencode/adapters.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, sqlId, type Host } from '../support/host.js';
import { installedOpencode, type InstalledOpencode } from '../support/opencodeVersions.js';
import { explain, sessmig } from './harness.js';

const V18 = installedOpencode('1.18.33');
const V17 = installedOpencode('1.17.20');
const V14 = installedOpencode('1.14.41');
const V13 = installedOpencode('1.3.2');
const ALL = [V18, V17, V14, V13];
const RUNNABLE = ALL.filter((v) => v.bin);

interface Source {
  version: string;
  host: Host;
  repo: string;
  remote: string;
  parent: string;
  /** The source's own export of the session, as pushed. */
  exported: any;
}

interface Destination {
  version: string;
  host: Host;
  repo: string;
}

let llm: FakeLlm;
let remotes: string;
let rootCommit: string;
const sources = new Map<string, Source>();
const destinations = new Map<string, Destination>();
const hosts: Host[] = [];

async function makeSource(v: InstalledOpencode): Promise<Source> {
  const host = await createHost(`src-${v.version}`, { llm, opencodeBin: v.bin });
  hosts.push(host);
  const repo = path.join(host.workDir, 'app');
  rootCommit = await createRepo(repo);
  const { sessionID } = await host.run(repo, `work on ${v.version} [[write notes.txt ${NOTES.replace(/\n/g, '\\n')}]]`);
  const exported = await withFileDiff(host, repo, v.version, await host.exportSession(sessionID));
  const remote = pathToFileURL(path.join(remotes, v.version)).href;
  const pushed = await sessmig(host, ['push', '--remote', remote, '--json'], { cwd: repo });
  expect(pushed.exitCode, explain(pushed)).toBe(0);
  return { version: v.version, host, repo, remote, parent: sessionID, exported };
}

const NOTES = 'alpha\nbeta\ngamma';

/**
 * opencode writes a message's summary.diffs after the turn, and `opencode run` may exit before it
 * does (measured on 1.3.2 and 1.14.41, more often on a loaded machine). When the diff of the write
 * is missing, it is added to the export in this version's own shape (the same file, the same texts)
 * and the session is put back through this version's own `opencode import`.
 */
async function withFileDiff(host: Host, repo: string, version: string, exported: any): Promise<any> {
  if (diffEntries(exported).length > 0) return exported;
  const before = '';
  const after = `${NOTES}\n`;
  const entry = diffShapeFor(version) === 'patch'
    ? { file: 'notes.txt', patch: unifiedPatch('notes.txt', before, after), additions: 3, deletions: 0, status: 'added' }
    : { file: 'notes.txt', before, after, additions: 3, deletions: 0, status: 'added' };
  const user = exported.messages.find((m: any) => m.info.role === 'user');
  user.info.summary = { ...user.info.summary, diffs: [entry] };
  const file = path.join(host.root, 'with-diff.json');
  await writeFile(file, JSON.stringify(exported));
  await host.opencode(['session', 'delete', exported.info.id], { cwd: repo });
  await host.opencode(['import', file], { cwd: repo });
  const again = await host.exportSession(exported.info.id);
  expect(diffEntries(again), `opencode ${version} did not keep the summary.diffs entry`).toHaveLength(1);
  return again;
}

beforeAll(async () => {
  llm = await startFakeLlm();
  remotes = await mkdtemp(path.join(os.tmpdir(), 'sessmig-matrix-'));
  // Two at a time (2 cores): each version makes its session and pushes it.
  const made = await Promise.all(RUNNABLE.map((v) => makeSource(v)));
  for (const source of made) sources.set(source.version, source);
  for (const v of RUNNABLE) {
    const host = await createHost(`dst-${v.version}`, { opencodeBin: v.bin });
    hosts.push(host);
    const repo = path.join(host.workDir, 'checkout', 'app');
    await createRepo(repo);
    destinations.set(v.version, { version: v.version, host, repo });
  }
}, 240_000);

afterAll(async () => {
  for (const host of hosts) await host.cleanup();
  await llm?.close();
  if (remotes) await rm(remotes, { recursive: true, force: true });
});

function pair(from: InstalledOpencode, to: InstalledOpencode) {
  return { source: sources.get(from.version)!, destination: destinations.get(to.version)! };
}

/** The destination opencode's own rows for a session: directory, project, parent, message and part counts. */
async function viewOn(host: Host, id: string) {
  const q = sqlId(id);
  const [row] = await host.db<{ directory: string; project_id: string; parent_id: string | null; messages: number; parts: number }>(
    `SELECT directory, project_id, parent_id, (SELECT count(*) FROM message WHERE session_id = ${q}) AS messages, (SELECT count(*) FROM part WHERE session_id = ${q}) AS parts FROM session WHERE id = ${q}`,
  );
  return row ? { ...row, messages: Number(row.messages), parts: Number(row.parts) } : undefined;
}

function ids(blob: any): { messages: string[]; parts: string[] } {
  return {
    messages: blob.messages.map((m: any) => m.info.id).sort(),
    parts: blob.messages.flatMap((m: any) => m.parts.map((p: any) => p.id)).sort(),
  };
}

/**
 * Pulls and checks opencode's view on the destination: directory, project, message and part counts
 * (`opencode db`); with `read`, also the destination's own export (same message and part ids).
 */
async function pullAndCheck(from: InstalledOpencode, to: InstalledOpencode, read = false) {
  const { source, destination } = pair(from, to);
  const run = await sessmig(destination.host, ['pull', '--remote', source.remote, '--json'], { cwd: destination.repo });
  expect(run.exitCode, explain(run)).toBe(0);
  expect(run.json.sessions.map((s: any) => [s.id, s.action])).toEqual([[source.parent, 'new']]);
  const view = await viewOn(destination.host, source.parent);
  const parts = source.exported.messages.reduce((sum: number, m: any) => sum + m.parts.length, 0);
  expect(view).toEqual({ directory: destination.repo, project_id: rootCommit, parent_id: null, messages: source.exported.messages.length, parts });
  if (!read) return { run, imported: undefined };
  const imported = await destination.host.exportSession(source.parent);
  expect(ids(imported)).toEqual(ids(source.exported));
  return { run, imported };
}

/** Every summary.diffs entry of a blob, with its message index. */
function diffEntries(blob: any): Array<{ message: number; entry: any }> {
  return blob.messages.flatMap((m: any, message: number) => (m.info.summary?.diffs ?? []).map((entry: any) => ({ message, entry })));
}

for (const v of ALL) {
  if (!v.bin) it.skip(`opencode ${v.version}: ${v.skip}`, () => undefined);
}

describe('opencode version matrix (real builds)', () => {
  it.skipIf(!V13.bin || !V18.bin)('1.3.2 → 1.18.33: legacy summary.diffs arrive as the patch of the two texts, not stripped', async () => {
    const legacy = diffEntries(pair(V13, V18).source.exported);
    expect(legacy.length, 'the 1.3.2 session should carry a file diff').toBeGreaterThan(0);
    expect(legacy[0]!.entry).toHaveProperty('before');
    const { run, imported } = await pullAndCheck(V13, V18, true);
    expect(run.stderr).toMatch(/opencode 1\.3\.2 exported these sessions and 1\.18\.33 imports them once adapted/);
    const stored = diffEntries(imported);
    expect(stored).toHaveLength(legacy.length);
    for (const [index, { entry }] of legacy.entries()) {
      const { before, after, ...rest } = entry;
      expect(stored[index]!.entry).toEqual({ ...rest, patch: unifiedPatch(entry.file, before, after) });
    }
  });

  it.skipIf(!V13.bin || !V14.bin)('1.3.2 → 1.14.41: the adapter carries what 1.14.41 would reject half-way; the directory is rebased', async () => {
    const { imported } = await pullAndCheck(V13, V14, true);
    const stored = diffEntries(imported);
    expect(stored.length).toBeGreaterThan(0);
    for (const { entry } of stored) expect(entry.patch).toMatch(/^Index: /);
  });

  it.skipIf(!V18.bin || !V14.bin)('1.18.33 → 1.14.41: lands in this worktree, where a plain opencode import keeps the source path', async () => {
    const { source, destination } = pair(V18, V14);
    expect(source.exported.info.directory).toBe(source.repo);
    await pullAndCheck(V18, V14);
    // Without the rebase: the same export imported as is, by the same 1.14.41, on a fresh host.
    const bare = await createHost('bare-1.14.41', { opencodeBin: V14.bin });
    hosts.push(bare);
    const repo = path.join(bare.workDir, 'checkout', 'app');
    await createRepo(repo);
    const file = path.join(bare.root, 'export.json');
    await writeFile(file, JSON.stringify(source.exported));
    await bare.opencode(['import', file], { cwd: repo });
    expect((await viewOn(bare, source.parent))!.directory).toBe(source.repo);
    expect((await viewOn(destination.host, source.parent))!.directory).toBe(destination.repo);
  });

  it.skipIf(!V14.bin || !V18.bin)('1.14.41 → 1.18.33: no known break, warns and goes', async () => {
    const { run } = await pullAndCheck(V14, V18);
    expect(run.stderr).toMatch(/opencode 1\.14\.41 exported these sessions and 1\.18\.33 imports them; no known schema break/);
  });

  it.skipIf(!V13.bin || (!V18.bin && !V14.bin))('≥ 1.4 → 1.3.2: refused before anything is imported, naming both versions and the upgrade', async () => {
    const destination = destinations.get('1.3.2')!;
    const froms = [V18, V14].filter((v) => v.bin);
    // Refused before any import, so the two pulls may run side by side.
    const runs = await Promise.all(froms.map((from) => sessmig(destination.host, ['pull', '--remote', pair(from, V13).source.remote], { cwd: destination.repo })));
    for (const [index, run] of runs.entries()) {
      expect(run.exitCode, explain(run)).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`exported by opencode ${froms[index]!.version.replace(/\./g, '\\.')}, which opencode 1\\.3\\.2 here cannot import faithfully`));
      expect(run.stderr).toMatch(/hint: upgrade opencode on this host to ≥ 1\.4\.0/);
    }
    expect(await destination.host.sessions()).toEqual([]);
  });

  it.skipIf(!V13.bin || !V18.bin)('--force into 1.3.2: a blob 1.3.2 would reject half-way is still refused up front, with the field', async () => {
    const { source, destination } = pair(V18, V13);
    const diffs = diffEntries(source.exported);
    expect(diffs.length).toBeGreaterThan(0);
    const run = await sessmig(destination.host, ['pull', '--remote', source.remote, '--force', '--json'], { cwd: destination.repo });
    expect(run.exitCode, explain(run)).toBe(3);
    const field = `messages[${diffs[0]!.message}].info.summary.diffs[0]`;
    expect(run.stderr).toContain(`session ${source.parent} cannot be imported faithfully by opencode 1.3.2: ${field} holds a "patch"`);
    expect(run.json.sessions.map((s: any) => [s.id, s.action])).toEqual([[source.parent, 'refused']]);
    // A plain `opencode import` of this blob leaves a partial session on 1.3.2; the pull left nothing.
    expect(await destination.host.sessions()).toEqual([]);
  });

  it.skipIf(!V18.bin || !V14.bin)('1.18.33 → 1.14.41: a session with a ContentFilterError is refused up front with its field; the others import', async () => {
    const { source } = pair(V18, V14);
    // A second session on the source: its copy, with fresh ids, whose assistant message 1.18.33 ended on a content filter.
    const text = JSON.stringify(source.exported).replace(/\b(ses|msg|prt)_([0-9a-f]{12}[0-9A-Za-z]{12})[0-9A-Za-z]{2}\b/g, (_m, kind, body) => `${kind}_${body}cf`);
    const filtered = JSON.parse(text);
    const assistant = filtered.messages.findIndex((m: any) => m.info.role === 'assistant');
    filtered.messages[assistant].info.error = { name: 'ContentFilterError', data: { message: 'refused by the provider' } };
    const file = path.join(source.host.root, 'content-filter.json');
    await writeFile(file, JSON.stringify(filtered));
    await source.host.opencode(['import', file], { cwd: source.repo });
    const remote = pathToFileURL(path.join(remotes, 'content-filter')).href;
    const pushed = await sessmig(source.host, ['push', '--remote', remote], { cwd: source.repo });
    expect(pushed.exitCode, explain(pushed)).toBe(0);

    const host = await createHost('dst-1.14.41-filter', { opencodeBin: V14.bin });
    hosts.push(host);
    const repo = path.join(host.workDir, 'checkout', 'app');
    await createRepo(repo);
    const run = await sessmig(host, ['pull', '--remote', remote, '--json'], { cwd: repo });
    expect(run.exitCode, explain(run)).toBe(3);
    expect(run.stderr).toContain(
      `session ${filtered.info.id} cannot be imported faithfully by opencode 1.14.41: messages[${assistant}].info.error.name is "ContentFilterError", an assistant error opencode 1.14.41 does not know (added in opencode 1.17.11)`,
    );
    expect(run.stderr).toMatch(/checked per session: sessions with a ContentFilterError are refused one by one/);
    expect(Object.fromEntries(run.json.sessions.map((s: any) => [s.id, s.action]))).toEqual({ [source.parent]: 'new', [filtered.info.id]: 'refused' });
    // opencode 1.14.41 itself would stop at that message, leaving a partial session; nothing of it is here.
    expect(await viewOn(host, filtered.info.id)).toBeUndefined();
    expect(await viewOn(host, source.parent)).toMatchObject({ directory: repo, messages: source.exported.messages.length });
  });
});
