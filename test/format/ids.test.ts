/** Checkpoint ids (src/format/ids.ts): their time, and their order on a host whose clock is behind. */
import { describe, expect, it } from 'vitest';
import { checkpointTime, newCheckpointId } from '../../src/format/ids.js';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { blobHooks, isBusy, type BlobFacts } from '../../src/blob/sessionBlob.js';
import { JsonScanner } from '../../src/util/jsonScan.js';

describe('newCheckpointId', () => {
  const parent = newCheckpointId(new Date('2026-11-29T12:00:00.000Z'));
  it.each([
    ['clock ahead of the parent: its own time', '2026-11-29T12:00:05.000Z', '20261129T120005000Z'],
    ['clock equal to the parent: 1 ms after it', '2026-11-29T12:00:00.000Z', '20261129T120000001Z'],
    ['clock an hour behind the parent: 1 ms after it', '2026-11-29T11:00:00.000Z', '20261129T120000001Z'],
  ])('%s', (_name, now, prefix) => {
    const id = newCheckpointId(new Date(now), parent);
    expect(id.startsWith(`${prefix}-`)).toBe(true);
    expect(id > parent).toBe(true);
  });
  it('reads the time back', () => {
    expect(checkpointTime('20261129T120000001Z-00ff00ff')).toBe(Date.parse('2026-11-29T12:00:00.001Z'));
    expect(checkpointTime('nonsense')).toBeUndefined();
  });
});

describe('isBusy', () => {
  const facts = (f: Partial<BlobFacts>): BlobFacts => ({ messages: 2, lastAssistantCompleted: true, ...f });
  it.each([
    ['last assistant message completed', facts({}), false],
    ['last assistant message not completed', facts({ lastAssistantCompleted: false }), true],
    ['a tool part still running', facts({ toolRunning: true }), true],
    ['no assistant message yet', facts({ lastAssistantCompleted: undefined }), false],
  ])('%s', (_name, input, busy) => {
    expect(isBusy(input)).toBe(busy);
  });
});

describe('busy, read from a blob by the streaming scanner', () => {
  const scan = async (doc: unknown) => {
    const { hooks, facts } = blobHooks();
    await pipeline(Readable.from([Buffer.from(JSON.stringify(doc))]), new JsonScanner(hooks), new Writable({ write: (_d, _e, cb) => cb() }));
    return facts;
  };
  const message = (role: string, completed: boolean, status?: string) => ({
    info: { id: 'msg_1', role, time: completed ? { created: 1, completed: 2 } : { created: 1 } },
    parts: status ? [{ id: 'prt_1', type: 'tool', state: { status } }] : [],
  });
  it.each([
    ['completed, tool done', [message('user', false), message('assistant', true, 'completed')], false],
    ['last assistant message not completed', [message('assistant', true), message('assistant', false)], true],
    ['a tool part still running', [message('assistant', true, 'running')], true],
    ['a tool part still pending', [message('assistant', true, 'pending')], true],
  ])('%s', async (_name, messages, busy) => {
    expect(isBusy(await scan({ info: { id: 'ses_1' }, messages }))).toBe(busy);
  });
});
