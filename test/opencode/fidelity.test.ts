/**
 * The field-by-field comparison behind pull's check of what the destination's opencode stored
 * (src/opencode/fidelity.ts), and the model/agent a blob says the session last used
 * (src/blob/sessionBlob.ts). The real-opencode side is in test/e2e/destinationFidelity.test.ts.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { compareInfo, compareOneMessage, restorable } from '../../src/opencode/fidelity.js';

const S = 'ses_0000000000001111111111aaaa';
const M = 'msg_0000000000011111111111aaaa';
const P = 'prt_0000000000011111111111aaaa';

describe('compareOneMessage', () => {
  const want = {
    info: { id: M, sessionID: S, role: 'user', time: { created: 1 }, agent: 'build' },
    parts: [{ id: P, sessionID: S, messageID: M, type: 'file', mime: 'image/png', url: 'data:', synthetic: true }],
  };

  it('finds a field dropped from a part, and calls it restorable', () => {
    const have = structuredClone(want);
    delete (have.parts[0] as { synthetic?: boolean }).synthetic;
    const { differences } = compareOneMessage(have, want, 0);
    expect(differences).toEqual([
      { at: 'messages[0].parts[0].synthetic', record: { kind: 'part', id: P, messageID: M }, path: ['synthetic'], kind: 'dropped', value: true },
    ]);
    expect(differences.every(restorable)).toBe(true);
  });

  it('ignores key order, and finds nothing in an equal message', () => {
    const reordered = { parts: [Object.fromEntries(Object.entries(want.parts[0]!).reverse())], info: Object.fromEntries(Object.entries(want.info).reverse()) };
    expect(compareOneMessage(reordered, want, 3).differences).toEqual([]);
  });

  it('reports, and never restores, a changed value, a field only here, a dropped id or a dropped part', () => {
    const have = structuredClone(want) as any;
    have.info.agent = 'plan';
    have.info.extra = 1;
    const changed = compareOneMessage(have, want, 0).differences;
    expect(changed.map((item) => [item.at, item.kind])).toEqual([
      ['messages[0].info.agent', 'changed'],
      ['messages[0].info.extra', 'added'],
    ]);
    expect(changed.some(restorable)).toBe(false);
    const noPart = compareOneMessage({ ...want, parts: [] }, want, 0).differences;
    expect(noPart.map((item) => [item.at, item.kind])).toEqual([['messages[0].parts[0]', 'dropped']]);
    expect(noPart.some(restorable)).toBe(false);
    const { sessionID: _s, ...withoutSession } = want.parts[0]!;
    const noId = compareOneMessage({ ...want, parts: [withoutSession] }, want, 0).differences;
    expect(noId.map((item) => item.at)).toEqual(['messages[0].parts[0].sessionID']);
    expect(noId.some(restorable)).toBe(false);
  });
});

describe('compareInfo and lastUsed', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-fidelity-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const blob = {
    info: { id: S, directory: '/src/app', projectID: 'p1', path: '', title: 't', agent: 'plan', model: { id: 'info-model', providerID: 'info-provider' }, time: { created: 1, updated: 2 } },
    messages: [
      { info: { id: M, sessionID: S, role: 'user', agent: 'reviewer', model: { providerID: 'anthropic', modelID: 'claude-x' } }, parts: [] },
      { info: { mode: 'compaction', agent: 'compaction', providerID: 'fake', modelID: 'small', id: `${M}b`, sessionID: S, role: 'assistant' }, parts: [] },
    ],
  };

  it('compares the session info with the host-bound fields aside', async () => {
    const file = path.join(dir, 'blob.json');
    await writeFile(file, JSON.stringify(blob));
    const stored = { ...blob.info, directory: '/work/app', projectID: 'p2', path: 'x', time: { created: 1, updated: 99 } };
    expect((await compareInfo(stored, file)).differences).toEqual([]);
    const { title: _t, ...withoutTitle } = stored;
    expect((await compareInfo(withoutTitle, file)).differences.map((item) => [item.at, item.kind])).toEqual([['info.title', 'dropped']]);
  });

  const lastUsedOf = async (value: unknown) => {
    const { hooks, facts } = blobHooks();
    await pipeline(Readable.from([Buffer.from(JSON.stringify(value))]), new JsonScanner(hooks), new Writable({ write: (_c, _e, cb) => cb() }));
    return facts.lastUsed;
  };

  it('is what the last user message chose, not the compaction that ran after it', async () => {
    expect(await lastUsedOf(blob)).toEqual({ model: { providerID: 'anthropic', modelID: 'claude-x' }, agent: 'reviewer' });
  });

  it('falls back to an assistant message (mode before agent existed), then to the session info', async () => {
    const older = { info: blob.info, messages: [{ info: { id: M, sessionID: S, role: 'assistant', mode: 'build', providerID: 'openai', modelID: 'gpt' }, parts: [] }] };
    expect(await lastUsedOf(older)).toEqual({ model: { providerID: 'openai', modelID: 'gpt' }, agent: 'build' });
    expect(await lastUsedOf({ info: blob.info, messages: [] })).toEqual({ model: { providerID: 'info-provider', modelID: 'info-model' }, agent: 'plan' });
    expect(await lastUsedOf({ info: { id: S }, messages: [] })).toEqual({});
  });
});
