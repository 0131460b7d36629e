/**
 * What the destination's opencode drops or lacks, on real opencode 1.18.33 (#23 items 6 and 9):
 *  - an attachment (`opencode run … -f pic.png`) is a user file part with `synthetic: true`, which
 *    opencode's import and its event replay both drop: pull puts it back, on either path;
 *  - sessions with reasoning and with a compaction arrive exactly, with nothing to put back;
 *  - a host whose opencode lacks the model or agent a session last used gets a warning per session
 *    saying how to resume it, and `doctor` lists the same;
 *  - an older destination (1.17.19) drops the same field: reported, not written into its rows.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { installedOpencode } from '../support/opencodeVersions.js';
import { explain, sessmig } from './harness.js';

/** A 1×1 PNG. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

/** A session as opencode exports it, minus what an import legitimately rewrites; key order does not count (toEqual). */
function comparable(blob: { info: Record<string, unknown>; messages: unknown[] }) {
  const { time, directory: _d, projectID: _p, path: _path, ...info } = blob.info as { time: Record<string, unknown> } & Record<string, unknown>;
  const { updated: _u, ...times } = time;
  return { info: { ...info, time: times }, messages: blob.messages };
}

/** Another id of the same kind, `n` ticks later (ids sort by their time part). */
function later(id: string, n: number): string {
  return id.slice(0, 4) + (BigInt(`0x${id.slice(4, 16)}`) + BigInt(n)).toString(16).padStart(12, '0') + id.slice(16);
}

/**
 * The session of `blob` with a reasoning part in its answer, and a compaction after it (a user
 * message with a `compaction` part, then the summary: an assistant message with `summary: true`,
 * run as agent "compaction") — the shapes opencode writes for a reasoning model and for
 * /summarize. The last user message (the compaction's) names agent "reviewer", which only the
 * laptop's config defines.
 */
function withReasoningAndCompaction(blob: any): any {
  const [user, answer] = blob.messages;
  const sid = blob.info.id;
  const t = answer.info.time.completed ?? answer.info.time.created;
  answer.parts.splice(1, 0, { type: 'reasoning', text: 'thinking MARK-REASON', time: { start: t - 5, end: t - 2 }, metadata: { openai: { itemId: 'rs_1' } }, id: later(answer.parts[0].id, 1), sessionID: sid, messageID: answer.info.id });
  const askId = later(answer.info.id, 100);
  const summaryId = later(answer.info.id, 200);
  const lastPart = answer.parts.at(-1).id;
  blob.messages.push({ info: { ...user.info, id: askId, agent: 'reviewer', time: { created: t + 10 } }, parts: [{ type: 'compaction', auto: true, id: later(lastPart, 100), sessionID: sid, messageID: askId }] });
  blob.messages.push({
    info: { ...answer.info, id: summaryId, parentID: askId, summary: true, mode: 'compaction', agent: 'compaction', time: { created: t + 11, completed: t + 12 } },
    parts: [{ type: 'text', text: 'Summary MARK-SUMMARY', time: { start: t + 11, end: t + 12 }, id: later(lastPart, 200), sessionID: sid, messageID: summaryId }],
  });
  return blob;
}

describe('what the destination opencode drops or lacks', () => {
  let llm: FakeLlm;
  let a: Host;
  let b: Host;
  let c: Host;
  let repoA: string;
  let repoB: string;
  let repoC: string;
  let dir: string;
  let url: string;
  let image: string;
  let thought: string;
  let fileAt: number;
  beforeAll(async () => {
    llm = await startFakeLlm();
    a = await createHost('laptop', { llm });
    b = await createHost('box', {});
    c = await createHost('cube', {});
    repoA = path.join(a.workDir, 'app');
    repoB = path.join(b.workDir, 'app');
    repoC = path.join(c.workDir, 'app');
    await Promise.all([createRepo(repoA), createRepo(repoB), createRepo(repoC)]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    url = pathToFileURL(dir).href;

    await writeFile(path.join(repoA, 'pic.png'), PNG);
    const run = await a.opencode(['run', '--format', 'json', 'describe the picture MARK-PIC', '-f', 'pic.png'], { cwd: repoA, timeoutMs: 60_000 });
    image = JSON.parse(run.stdout.split('\n').find((line) => line.includes('"sessionID"'))!).sessionID;
    const exported = await a.exportSession(image);
    fileAt = exported.messages[0].parts.findIndex((part: { type: string }) => part.type === 'file');
    expect(exported.messages[0].parts[fileAt].synthetic).toBe(true);

    thought = (await a.run(repoA, 'think about it MARK-THINK')).sessionID;
    const crafted = path.join(a.root, 'crafted.json');
    await writeFile(crafted, JSON.stringify(withReasoningAndCompaction(await a.exportSession(thought))));
    await a.opencode(['session', 'delete', thought], { cwd: repoA });
    await a.opencode(['import', crafted], { cwd: repoA });

    // Two sessions: push exports through one `opencode serve`, whose routes leave `synthetic` out.
    const pushed = await sessmig(a, ['push', '--remote', url, '--json', '--timing'], { cwd: repoA });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
    expect(pushed.stderr).toMatch(/through one `opencode serve`/);
  }, 300_000);
  afterAll(async () => {
    for (const host of [a, b, c]) await host?.cleanup();
    await llm?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('push through opencode serve keeps what opencode export prints (the blob has synthetic)', async () => {
    const manifest = await currentManifest(dir);
    const entry = manifest.sessions.find((session: { id: string }) => session.id === image);
    const blob = JSON.parse(gunzipSync(await readFile((await findFile(dir, `${entry.sha256}.json.gz`))!)).toString('utf8'));
    expect(blob.messages[0].parts[fileAt].synthetic).toBe(true);
    expect(blob).toEqual(await a.exportSession(image));
  });

  it('records the model and agent each session last used in the manifest', async () => {
    const manifest = await currentManifest(dir);
    const byId = new Map(manifest.sessions.map((session: { id: string }) => [session.id, session]));
    expect((byId.get(image) as any).lastUsed).toEqual({ model: { providerID: 'fake', modelID: 'fake-model' }, agent: 'build' });
    expect((byId.get(thought) as any).lastUsed).toEqual({ model: { providerID: 'fake', modelID: 'fake-model' }, agent: 'reviewer' });
  });

  for (const [name, mode] of [['import', 'never'], ['replay', 'always']] as const) {
    it(`pull through ${name}: the attachment keeps synthetic, reasoning and compaction arrive exact, and the missing model and agent are named`, async () => {
      const [host, repo] = name === 'import' ? [b, repoB] : [c, repoC];
      const pulled = await sessmig(host, ['pull', '--remote', url, '--json', '--replay', mode], { cwd: repo });
      expect(pulled.exitCode, explain(pulled)).toBe(0);
      const sessions = new Map<string, any>(pulled.json.sessions.map((session: { id: string }) => [session.id, session]));
      for (const id of [image, thought]) {
        expect(sessions.get(id).via).toBe(name);
        expect(comparable(await host.exportSession(id))).toEqual(comparable(await a.exportSession(id)));
      }
      expect((await host.exportSession(image)).messages[0].parts[fileAt].synthetic).toBe(true);
      expect(sessions.get(image).findings.restored).toEqual([`messages[0].parts[${fileAt}].synthetic`]);
      expect(sessions.get(image).findings.differs).toBeUndefined();
      expect(sessions.get(thought).findings?.restored).toBeUndefined();
      expect(sessions.get(thought).findings?.differs).toBeUndefined();
      expect(pulled.stderr).toContain(`session ${image} (`);
      expect(pulled.stderr).toMatch(new RegExp(`session ${image} \\("[^"]*"\\) last used the model fake/fake-model, which this host's opencode does not offer.*opencode run --session ${image} --model \\S+`));
      expect(pulled.stderr).toMatch(new RegExp(`session ${thought} \\("[^"]*"\\) last used the model fake/fake-model and the agent "reviewer".*--agent build`));
      expect(sessions.get(thought).findings.missing).toEqual({ model: 'fake/fake-model', agent: 'reviewer' });
      expect(pulled.stderr).not.toMatch(/replay of .* failed/);
    });
  }

  it('doctor lists the sessions whose model or agent this host lacks; the laptop lacks none', async () => {
    const onBox = await sessmig(b, ['doctor', '--remote', url, '--json'], { cwd: repoB });
    expect(onBox.exitCode, explain(onBox)).toBe(0);
    expect(onBox.json.resume.missing.map((item: { id: string }) => item.id).sort()).toEqual([image, thought].sort());
    const human = await sessmig(b, ['doctor', '--remote', url], { cwd: repoB });
    expect(human.stdout).toContain(`${thought}`);
    expect(human.stdout).toMatch(/--model/);
    const onLaptop = await sessmig(a, ['doctor', '--remote', url, '--json'], { cwd: repoA });
    expect(onLaptop.exitCode, explain(onLaptop)).toBe(0);
    expect(onLaptop.json.resume.missing.map((item: { id: string }) => item.id)).toEqual([thought]); // "reviewer" is no agent there either
  });
});

async function currentManifest(root: string): Promise<any> {
  const pointer = JSON.parse(await readFile((await findFile(root, 'HEAD.json'))!, 'utf8'));
  return JSON.parse(await readFile((await findFile(root, `${pointer.checkpoint}.json`))!, 'utf8'));
}

async function findFile(root: string, name: string): Promise<string | undefined> {
  for (const entry of await readdir(root, { recursive: true })) {
    if (path.basename(String(entry)) === name) return path.join(root, String(entry));
  }
  return undefined;
}

const older = installedOpencode('1.17.19');
describe.skipIf(!older.bin)(`an older destination (opencode ${older.version})`, () => {
  let llm: FakeLlm;
  let a: Host;
  let d: Host;
  let repoA: string;
  let repoD: string;
  let dir: string;
  let url: string;
  let image: string;
  beforeAll(async () => {
    llm = await startFakeLlm();
    a = await createHost('laptop', { llm });
    d = await createHost('old', { opencodeBin: older.bin! });
    repoA = path.join(a.workDir, 'app');
    repoD = path.join(d.workDir, 'app');
    await Promise.all([createRepo(repoA), createRepo(repoD)]);
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
    url = pathToFileURL(dir).href;
    await writeFile(path.join(repoA, 'pic.png'), PNG);
    const run = await a.opencode(['run', '--format', 'json', 'describe the picture', '-f', 'pic.png'], { cwd: repoA, timeoutMs: 60_000 });
    image = JSON.parse(run.stdout.split('\n').find((line) => line.includes('"sessionID"'))!).sessionID;
    const pushed = await sessmig(a, ['push', '--remote', url], { cwd: repoA });
    expect(pushed.exitCode, explain(pushed)).toBe(0);
  }, 300_000);
  afterAll(async () => {
    for (const host of [a, d]) await host?.cleanup();
    await llm?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a field an older opencode drops is reported per session, not written into its rows', async () => {
    const pulled = await sessmig(d, ['pull', '--remote', url, '--json', '--force'], { cwd: repoD });
    expect(pulled.exitCode, explain(pulled)).toBe(0);
    const session = pulled.json.sessions.find((item: { id: string }) => item.id === image);
    const fileAt = (await a.exportSession(image)).messages[0].parts.findIndex((part: { type: string }) => part.type === 'file');
    expect(session.findings.differs).toContain(`messages[0].parts[${fileAt}].synthetic`);
    expect(session.findings.restored).toBeUndefined();
    expect(pulled.stderr).toMatch(new RegExp(`session ${image} \\("[^"]*"\\) is not stored here as it was exported: opencode ${older.version.replaceAll('.', '\\.')} here keeps it with messages\\[0\\]\\.parts\\[${fileAt}\\]\\.synthetic \\(missing here\\)`));
    expect((await d.exportSession(image)).messages[0].parts[fileAt].synthetic).toBeUndefined();
  });
});
