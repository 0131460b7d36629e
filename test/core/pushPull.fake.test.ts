/**
 * The core's orchestration of push and pull, in-process, against the in-memory opencode of
 * test/support/fakeOpencode.ts (what it does not model is listed there) and a real LocalRemote:
 * what arrives on which host, what is exported and uploaded again, what is deleted, backed up and
 * rolled back, and where the pointer is. The decisions themselves are plan.ts's (unit-tested in
 * plan.test.ts); these tests check that push and pull carry them out. The end-to-end tests
 * (test/e2e/) run the same flows on the real opencode; these run in milliseconds.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { readManifest, readPointer } from '../../src/core/remoteStore.js';
import type { PullOptions, PulledSession } from '../../src/core/pull.js';
import type { Todo } from '../../src/opencode/todos.js';
import { SessmigError } from '../../src/util/errors.js';
import { FakeWorld, worldPerTest, WORKTREE_KEY, type FakeHost } from '../support/fakeWorld.js';

/** The one warning every pull against the fake gives: it has no `opencode serve` for the checks after the imports. */
const NO_SERVER = /opencode serve did not start \(the fake opencode has no server\)/;
const unexpectedWarnings = (host: FakeHost) => host.report.warnings.filter((line) => !NO_SERVER.test(line));

const TODOS: Todo[] = [
  { content: 'write the tests', status: 'in_progress', priority: 'high', position: 0, timeCreated: 1_700_000_000_000, timeUpdated: 1_700_000_000_500 },
  { content: 'ship', status: 'pending', priority: 'low', position: 1, timeCreated: 1_700_000_000_100, timeUpdated: 1_700_000_000_100 },
];

const scene = worldPerTest();
let world: FakeWorld;
let a: FakeHost;
let b: FakeHost;
beforeEach(() => void ({ world, a, b } = scene));

function action(sessions: PulledSession[] | { id: string; action: string }[], id: string): string | undefined {
  return sessions.find((session) => session.id === id)?.action;
}

/** The session as this host's opencode exports it, without what an import sets from the destination. */
async function content(host: FakeHost, id: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of await host.opencode.exportSession(id)) chunks.push(chunk as Buffer);
  const { info, messages } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { info: Record<string, unknown>; messages: unknown[] };
  const { directory: _directory, projectID: _projectID, path: _path, time: _time, ...rest } = info;
  return { info: rest, messages };
}

async function pointerOwner(): Promise<string | null | undefined> {
  const state = await readPointer(world.remote, WORKTREE_KEY);
  return state === undefined ? undefined : (state.pointer.owner?.hostname ?? null);
}

async function backupFiles(host: FakeHost): Promise<string[]> {
  const dir = path.join(host.dir, 'state', 'backups', WORKTREE_KEY);
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((entry) => entry.endsWith('.json') && !entry.endsWith('index.json')).map((entry) => path.basename(entry, '.json'));
}

/** One session X (with a child) made on A, pushed by A, pulled by B: both hosts synced. */
async function synced(): Promise<{ x: string; child: string }> {
  const x = await a.opencode.addSession({ directory: a.root, title: 'X', messages: 4, todos: TODOS });
  const child = await a.opencode.addSession({ directory: a.root, title: 'X child', parentID: x });
  await a.push();
  await b.pull();
  a.opencode.calls.length = 0;
  b.opencode.calls.length = 0;
  return { x, child };
}

describe('push then pull', () => {
  it('moves the sessions with their children and todos to the other host, in its checkout', async () => {
    const x = await a.opencode.addSession({ directory: a.root, title: 'X', messages: 6, todos: TODOS });
    const child = await a.opencode.addSession({ directory: a.root, title: 'X child', parentID: x });
    const other = await a.opencode.addSession({ directory: path.join(a.dir, 'elsewhere'), title: 'not this checkout' });

    const pushed = await a.push();
    expect(pushed.status).toBe('pushed');
    expect(pushed.sessions.map((session) => [session.id, session.action]).sort()).toEqual([[child, 'pushed'], [x, 'pushed']].sort());
    expect(await pointerOwner()).toBe('a');

    const pulled = await b.pull();
    expect(pulled.sessions.map((session) => [session.id, session.action]).sort()).toEqual([[child, 'new'], [x, 'new']].sort());
    expect(unexpectedWarnings(b)).toEqual([]);
    const rows = new Map((await b.opencode.listSessions()).map((row) => [row.id, row]));
    expect([...rows.keys()].sort()).toEqual([child, x].sort()); // not the session of another folder
    expect(rows.get(x)).toMatchObject({ directory: b.root, parent_id: null, title: 'X' });
    expect(rows.get(child)).toMatchObject({ directory: b.root, parent_id: x });
    expect(await content(b, x)).toEqual(await content(a, x));
    expect(await content(b, child)).toEqual(await content(a, child));
    expect(b.opencode.todos.get(x)).toEqual(TODOS);
    expect(a.opencode.sessions.has(other)).toBe(true);
    expect(await pointerOwner()).toBe('a'); // a plain pull claims nothing
  });

  it('a second pull with nothing new changes nothing', async () => {
    const { x, child } = await synced();
    const before = b.opencode.snapshot();
    const pulled = await b.pull();
    expect(pulled.sessions.map((session) => session.action)).toEqual(['unchanged', 'unchanged']);
    expect(b.opencode.calls).toEqual([]); // nothing exported (the sync base knows the content), imported or deleted
    expect(b.opencode.snapshot()).toBe(before);
    expect([x, child]).toContain(pulled.sessions[0]!.id);
  });
});

describe('incremental push', () => {
  it('exports only what changed since the last sync and reuses the other blobs', async () => {
    const x = await a.opencode.addSession({ directory: a.root, title: 'X' });
    const y = await a.opencode.addSession({ directory: a.root, title: 'Y' });
    await a.push();
    const blobsAfterFirst = (await world.remoteText()).split('\n').filter((line) => line.includes('.json.gz')).length;

    a.opencode.calls.length = 0;
    const unchanged = await a.push();
    expect(a.opencode.calls).toEqual([]);
    expect(unchanged.sessions.map((session) => session.action)).toEqual(['reused', 'reused']);

    await a.opencode.work(y);
    a.opencode.calls.length = 0;
    const second = await a.push();
    expect(a.opencode.calls).toEqual([`export ${y}`]);
    expect(action(second.sessions, x)).toBe('reused');
    expect(second.sessions.find((session) => session.id === x)).toMatchObject({ exported: false, uploaded: false });
    expect(second.sessions.find((session) => session.id === y)).toMatchObject({ action: 'pushed', exported: true, uploaded: true });
    const blobsAfterSecond = (await world.remoteText()).split('\n').filter((line) => line.includes('.json.gz')).length;
    expect(blobsAfterSecond).toBe(blobsAfterFirst + 1);

    const pointer = (await readPointer(world.remote, WORKTREE_KEY))!.pointer;
    const manifest = await readManifest(world.remote, WORKTREE_KEY, pointer.checkpoint);
    expect(manifest.parent).toBe(unchanged.checkpoint);
    expect(manifest.sessions.find((session) => session.id === y)!.messages).toBe(3);
  });
});

describe('deletions', () => {
  it('a session deleted on the other host is removed here with a backup, and not resurrected by the next push', async () => {
    const y = await a.opencode.addSession({ directory: a.root, title: 'Y' }); // push --migrate with no session hands nothing over
    const { x, child } = await synced();
    await a.opencode.deleteSession(x, a.root); // takes its child along
    const pushed = await a.push();
    expect(pushed.deleted.map((item) => item.id).sort()).toEqual([child, x].sort());

    const pulled = await b.pull();
    expect(action(pulled.sessions, x)).toBe('deleted-there');
    expect(b.opencode.sessions.has(x)).toBe(false);
    expect(b.opencode.sessions.has(child)).toBe(false);
    expect((await backupFiles(b)).sort()).toEqual([child, x].sort());
    expect(JSON.parse(await readFile(path.join(pulled.backupDir!, `${x}.json`), 'utf8')).messages).toHaveLength(4);

    await a.push({ migrate: true });
    await b.pull({ migrate: true });
    const again = await b.push();
    const manifest = await readManifest(world.remote, WORKTREE_KEY, again.checkpoint!);
    expect(manifest.sessions.map((session) => session.id)).toEqual([y]);
    await a.pull();
    expect(a.opencode.sessions.has(x)).toBe(false);
  });

  it('a session deleted here is not brought back by a pull, and the next push records its deletion', async () => {
    const { x } = await synced();
    await b.opencode.deleteSession(x, b.root);
    const pulled = await b.pull();
    expect(action(pulled.sessions, x)).toBe('deleted-here');
    expect(b.opencode.sessions.has(x)).toBe(false);
    expect(b.opencode.calls.filter((call) => call.startsWith('import'))).toEqual([]);

    // b does not own the worktree: it takes it over first, then its push records the deletion.
    await a.push({ migrate: true });
    await b.pull({ migrate: true });
    const pushed = await b.push();
    expect(pushed.deleted.map((item) => item.id)).toContain(x);
    await a.pull();
    expect(a.opencode.sessions.has(x)).toBe(false);
  });
});

describe('ownership', () => {
  it('push --migrate releases the worktree, pull --migrate claims it, and only the owner may push', async () => {
    const { x } = await synced();
    await expect(b.push()).rejects.toMatchObject({ code: 'not-owner' });
    await expect(b.pull({ migrate: true })).rejects.toMatchObject({ code: 'owned-elsewhere' });

    const released = await a.push({ migrate: true });
    expect(released.owner).toBeNull();
    expect(await pointerOwner()).toBeNull();
    await expect(a.push()).rejects.toMatchObject({ code: 'not-owner' });

    await a.opencode.work(x); // a change after the hand-over stays on a
    const claimed = await b.pull({ migrate: true });
    expect(claimed).toMatchObject({ claimed: true, owner: { hostname: 'b' } });
    expect(await pointerOwner()).toBe('b');
    await b.opencode.work(x);
    expect((await b.push()).status).toBe('pushed');
    await expect(a.push()).rejects.toMatchObject({ code: 'not-owner' });
  });

  it('push --migrate hands the worktree over when this checkout has no session left (its deletions already pushed)', async () => {
    const { x } = await synced();
    await a.opencode.deleteSession(x, a.root);
    await a.push(); // records the deletion: nothing of this checkout is left to push
    const released = await a.push({ migrate: true });
    expect(released.owner).toBeNull();
    expect(await pointerOwner()).toBeNull();
    const claimed = await b.pull({ migrate: true });
    expect(claimed).toMatchObject({ claimed: true, owner: { hostname: 'b' } });
    expect(b.opencode.sessions.has(x)).toBe(false);
  });

  it('pull --migrate does not claim while a session is left in conflict', async () => {
    const { x } = await synced();
    await a.opencode.work(x);
    await a.push({ migrate: true });
    await b.opencode.work(x);
    const pulled = await b.pull({ migrate: true });
    expect(action(pulled.sessions, x)).toBe('conflict');
    expect(pulled.claimed).toBe(false);
    expect(await pointerOwner()).toBeNull();
  });
});

describe('pull decides per session and carries the decision out', () => {
  type Side = 'remote' | 'local' | 'absent';
  const cases: { name: string; change: (x: string) => Promise<void>; options?: PullOptions; action: string; b: Side; backup: boolean }[] = [
    { name: 'nothing changed', change: async () => {}, action: 'unchanged', b: 'local', backup: false },
    { name: 'changed there', change: async (x) => void (await a.opencode.work(x), await a.push()), action: 'replace', b: 'remote', backup: true },
    { name: 'changed here', change: (x) => b.opencode.work(x), action: 'keep-local', b: 'local', backup: false },
    { name: 'changed on both', change: async (x) => void (await a.opencode.work(x), await a.push(), await b.opencode.work(x)), action: 'conflict', b: 'local', backup: false },
    { name: 'changed on both, --force', change: async (x) => void (await a.opencode.work(x), await a.push(), await b.opencode.work(x)), options: { force: true }, action: 'replace', b: 'remote', backup: true },
    { name: 'changed on both, --keep-local', change: async (x) => void (await a.opencode.work(x), await a.push(), await b.opencode.work(x)), options: { keepLocal: true }, action: 'keep-local', b: 'local', backup: false },
    { name: 'deleted there', change: async (x) => void (await a.opencode.deleteSession(x, a.root), await a.push()), action: 'deleted-there', b: 'absent', backup: true },
    { name: 'deleted there, changed here', change: async (x) => void (await a.opencode.deleteSession(x, a.root), await a.push(), await b.opencode.work(x)), action: 'conflict', b: 'local', backup: false },
    { name: 'deleted there, changed here, --force', change: async (x) => void (await a.opencode.deleteSession(x, a.root), await a.push(), await b.opencode.work(x)), options: { force: true }, action: 'deleted-there', b: 'absent', backup: true },
    { name: 'deleted here', change: (x) => b.opencode.deleteSession(x, b.root), action: 'deleted-here', b: 'absent', backup: false },
    { name: 'deleted here, changed there', change: async (x) => void (await a.opencode.work(x), await a.push(), await b.opencode.deleteSession(x, b.root)), action: 'conflict', b: 'absent', backup: false },
    { name: 'deleted here, changed there, --force', change: async (x) => void (await a.opencode.work(x), await a.push(), await b.opencode.deleteSession(x, b.root)), options: { force: true }, action: 'new', b: 'remote', backup: false },
  ];
  it.each(cases)('$name → $action, b keeps the $b copy', async (item) => {
    const { x } = await synced();
    await item.change(x);
    const local = b.opencode.sessions.has(x) ? await content(b, x) : undefined;
    const pulled = await b.pull(item.options);
    expect(action(pulled.sessions, x)).toBe(item.action);
    const now = b.opencode.sessions.has(x) ? await content(b, x) : undefined;
    if (item.b === 'absent') expect(now).toBeUndefined();
    else if (item.b === 'local') expect(now).toEqual(local);
    else expect(now).toEqual(a.opencode.sessions.has(x) ? await content(a, x) : undefined);
    expect((await backupFiles(b)).includes(x)).toBe(item.backup);
    if (item.b !== 'absent') expect(b.opencode.todos.get(x)).toEqual(TODOS); // todos survive a replace
  });
});

describe('push decides per session', () => {
  it('a session changed on both hosts is a conflict: the remote keeps its copy; --force publishes this one', async () => {
    const { x } = await synced();
    await a.push({ migrate: true });
    await b.pull({ migrate: true });
    await b.opencode.work(x);
    await b.push({ migrate: true });
    // a changed x too meanwhile, takes the worktree back and keeps its copy.
    await a.opencode.work(x);
    await a.opencode.work(x);
    const back = await a.pull({ migrate: true, keepLocal: true });
    expect(action(back.sessions, x)).toBe('keep-local');
    const refused = await a.push();
    expect(action(refused.sessions, x)).toBe('conflict');
    let manifest = await readManifest(world.remote, WORKTREE_KEY, refused.checkpoint!);
    expect(manifest.sessions.find((session) => session.id === x)!.messages).toBe(5); // b's copy

    const forced = await a.push({ force: true });
    expect(action(forced.sessions, x)).toBe('pushed');
    manifest = await readManifest(world.remote, WORKTREE_KEY, forced.checkpoint!);
    expect(manifest.sessions.find((session) => session.id === x)!.messages).toBe(6); // a's copy
  });
});

describe('a failed pull leaves both hosts and the pointer as they were', () => {
  /**
   * Compared with time_updated too: a re-import of a session opencode still has sets it to now
   * (OPENCODE.md, "What 1.18.33 import does"), so the rollback must leave alone a session whose
   * delete never ran (it did re-import it once, and the next push exported it again for nothing).
   */
  const failures: { name: string; prepare: (x: string, child: string) => Promise<string>; code: string }[] = [
    {
      name: 'import of a replaced session',
      prepare: async (x) => (await a.opencode.work(x), await a.push(), b.opencode.failNext('import', x), x),
      code: 'import-rejected',
    },
    {
      name: 'import of a replaced session\'s child',
      prepare: async (x, child) => (await a.opencode.work(child), await a.opencode.work(x), await a.push(), b.opencode.failNext('import', child), child),
      code: 'import-rejected',
    },
    {
      name: 'import of a new session (half-way: opencode keeps its row)',
      prepare: async (x) => {
        const y = await a.opencode.addSession({ directory: a.root, title: 'Y', messages: 4 });
        await a.opencode.work(x);
        await a.push();
        b.opencode.failNext('import', y);
        return y;
      },
      code: 'import-rejected',
    },
    {
      name: 'delete of a session deleted there',
      prepare: async (x) => (await a.opencode.deleteSession(x, a.root), await a.push(), b.opencode.failNext('delete', x), x),
      code: 'opencode-failed',
    },
  ];
  it.each(failures)('$name fails: rolled back', async (item) => {
    const { x, child } = await synced();
    await item.prepare(x, child);
    const compared = { timeUpdated: true };
    const before = { opencode: b.opencode.snapshot(compared), remote: await world.remoteText(), pointer: await readPointer(world.remote, WORKTREE_KEY) };
    const beforeSync = await syncBaseText(b);
    const error = await b.pull().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(SessmigError);
    expect((error as SessmigError).code).toBe(item.code);
    expect(b.report.warnings.some((line) => line.startsWith('pull failed'))).toBe(true);
    expect(b.opencode.snapshot(compared)).toBe(before.opencode);
    expect(await world.remoteText()).toBe(before.remote);
    expect(await readPointer(world.remote, WORKTREE_KEY)).toEqual(before.pointer);
    expect(await syncBaseText(b)).toBe(beforeSync);
    // What it did is recorded as unfinished (for the next push and pull, and for undo), not complete.
    const records = await readdir(path.join(b.dir, 'state', 'backups', WORKTREE_KEY));
    const last = JSON.parse(await readFile(path.join(b.dir, 'state', 'backups', WORKTREE_KEY, records.sort().at(-1)!, 'index.json'), 'utf8')) as { complete: boolean };
    expect(last.complete).toBe(false);
    // And a pull that works afterwards brings everything in.
    const pulled = await b.pull();
    expect(pulled.sessions.every((session) => ['new', 'replace', 'unchanged', 'deleted-there'].includes(session.action))).toBe(true);
    expect(b.opencode.snapshot()).not.toBe(before.opencode);
  });
});

describe('opencode versions', () => {
  const cases: { destination: string; options?: PullOptions; refused: boolean; warning?: RegExp }[] = [
    { destination: '1.18.33', refused: false },
    // 1.4.0 changed summary.diffs; opencode before it rejects the new shape half-way (versions.ts).
    { destination: '1.3.2', refused: true },
    { destination: '1.3.2', options: { force: true }, refused: false, warning: /^--force: importing sessions exported by opencode 1\.18\.33 into 1\.3\.2/ },
  ];
  it.each(cases)('a checkpoint of 1.18.33 pulled into $destination $options: refused $refused', async (item) => {
    const c = await world.host('c', { version: item.destination });
    const x = await a.opencode.addSession({ directory: a.root, title: 'X' });
    const pushed = await a.push();
    const manifest = await readManifest(world.remote, WORKTREE_KEY, pushed.checkpoint!);
    expect(manifest.source.opencodeVersion).toBe('1.18.33');
    const outcome = await c.pull(item.options).then(
      (result) => result,
      (error: unknown) => error as SessmigError,
    );
    if (item.refused) {
      expect(outcome).toMatchObject({ code: 'version-skew' });
      expect(c.opencode.sessions.size).toBe(0);
      expect(c.opencode.calls).toEqual([]);
    } else {
      expect(action((outcome as { sessions: PulledSession[] }).sessions, x)).toBe('new');
      expect(c.opencode.messageCount(x)).toBe(2);
    }
    if (item.warning) expect(c.report.warnings.some((line) => item.warning!.test(line))).toBe(true);
  });
});

describe('--dry-run', () => {
  it('push --dry-run and pull --dry-run change nothing anywhere', async () => {
    const { x } = await synced();
    await a.opencode.work(x);
    const y = await a.opencode.addSession({ directory: a.root, title: 'Y' });
    const remote = await world.remoteText();
    const aBefore = a.opencode.snapshot();
    const aState = await syncStateText(a);
    const plannedPush = await a.push({ dryRun: true });
    expect(plannedPush.status).toBe('dry-run');
    expect(plannedPush.planned.map((item) => item.id)).toContain(y);
    expect(await world.remoteText()).toBe(remote);
    expect(a.opencode.snapshot()).toBe(aBefore);
    expect(await syncStateText(a)).toBe(aState);

    await a.push();
    await b.opencode.deleteSession(x, b.root);
    b.opencode.calls.length = 0;
    const remoteNow = await world.remoteText();
    const bBefore = b.opencode.snapshot();
    const bState = await syncStateText(b);
    const plannedPull = await b.pull({ dryRun: true });
    expect(plannedPull.status).toBe('dry-run');
    expect(action(plannedPull.sessions, y)).toBe('new');
    expect(b.opencode.snapshot()).toBe(bBefore);
    expect(b.opencode.calls.filter((call) => !call.startsWith('export'))).toEqual([]);
    expect(await world.remoteText()).toBe(remoteNow);
    expect(await syncStateText(b)).toBe(bState);
    expect(await backupFiles(b)).toEqual([]);
  });
});

/** The host's sync state and backups (everything sessmig keeps under its state folder). */
function syncStateText(host: FakeHost): Promise<string> {
  return host.world.folderText(path.join(host.dir, 'state'));
}

/** The host's sync bases (state/sync): what it last synced with the remote. */
function syncBaseText(host: FakeHost): Promise<string> {
  return host.world.folderText(path.join(host.dir, 'state', 'sync'));
}
