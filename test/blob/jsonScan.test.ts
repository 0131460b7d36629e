import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks, isBusy } from '../../src/blob/sessionBlob.js';

async function scan(text: string | Buffer, rebaseTo?: string, chunkSize = 7) {
  const { hooks, facts } = blobHooks(rebaseTo);
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  const buf = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) chunks.push(buf.subarray(i, i + chunkSize));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    scanner,
    new Writable({
      write(chunk, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return { facts, output: Buffer.concat(out).toString('utf8'), hash: scanner.normalizedDigest() };
}

const session = {
  info: {
    id: 'ses_0123456789abABCDEFGHIJKLMN',
    slug: 'x',
    projectID: 'abc',
    directory: '/src/app',
    parentID: 'ses_0123456789abZZZZZZZZZZZZZZ',
    title: 'Fix "the" bug \\ é 😀',
    version: '1.18.33',
    time: { created: 1, updated: 2 },
    futureField: { nested: [1, 2, { deep: 'keep me' }] },
  },
  messages: [
    { info: { id: 'msg_1', role: 'user', time: { created: 3 } }, parts: [{ type: 'text', text: 'a\nb"c' }] },
    { info: { id: 'msg_2', role: 'assistant', time: { created: 4, completed: 5 } }, parts: [] },
  ],
};

describe('JsonScanner + blobHooks', () => {
  it('reads the facts, whatever the chunking', async () => {
    for (const size of [1, 3, 64, 1 << 20]) {
      const { facts } = await scan(JSON.stringify(session, null, 2), undefined, size);
      expect(facts).toMatchObject({
        id: session.info.id,
        parentID: session.info.parentID,
        title: session.info.title,
        directory: '/src/app',
        version: '1.18.33',
        timeUpdated: 2,
        messages: 2,
      });
      expect(isBusy(facts)).toBe(false);
    }
  });

  it('rebases directory and clears projectID, and changes nothing else', async () => {
    const { output } = await scan(JSON.stringify(session, null, 2), '/dest/wt');
    const parsed = JSON.parse(output);
    expect(parsed.info.directory).toBe('/dest/wt');
    expect(parsed.info.projectID).toBe('');
    expect({ ...parsed, info: { ...parsed.info, directory: '/src/app', projectID: 'abc' } }).toEqual(session);
  });

  it('flags a session whose last assistant message is not completed as busy', async () => {
    const busy = structuredClone(session);
    delete (busy.messages[1]!.info.time as { completed?: number }).completed;
    expect(isBusy((await scan(JSON.stringify(busy))).facts)).toBe(true);
    const noAssistant = { ...session, messages: [session.messages[0]] };
    expect(isBusy((await scan(JSON.stringify(noAssistant))).facts)).toBe(false);
  });

  it('hashes content, not formatting or host-bound fields', async () => {
    const a = await scan(JSON.stringify(session, null, 2));
    const b = await scan(JSON.stringify({ ...session, info: { ...session.info, directory: '/elsewhere', projectID: 'zz', time: { created: 1, updated: 99 } } }));
    expect(b.hash).toBe(a.hash);
    const c = await scan(JSON.stringify({ ...session, info: { ...session.info, title: 'other' } }));
    expect(c.hash).not.toBe(a.hash);
    const d = await scan(JSON.stringify({ ...session, messages: [session.messages[0]] }));
    expect(d.hash).not.toBe(a.hash);
    // Arrays keep their order.
    const e = await scan(JSON.stringify({ ...session, messages: [...session.messages].reverse() }));
    expect(e.hash).not.toBe(a.hash);
    // A string is not the number it spells.
    const f = await scan(JSON.stringify({ ...session, info: { ...session.info, slug: 1 } }));
    const g = await scan(JSON.stringify({ ...session, info: { ...session.info, slug: '1' } }));
    expect(f.hash).not.toBe(g.hash);
  });

  it('hashes the same value alike whatever the key order (CLI export vs opencode server)', async () => {
    const reorder = (value: unknown): unknown => {
      if (Array.isArray(value)) return value.map(reorder);
      if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reorder(v)]));
      }
      return value;
    };
    const a = await scan(JSON.stringify(session, null, 2));
    const b = await scan(JSON.stringify(reorder(session)), undefined, 5);
    expect(b.hash).toBe(a.hash);
  });

  it.each([
    ['truncated', '{"info": {"id": "x"'],
    ['not an object', '[1,2]'],
    ['trailing garbage', '{"info":{}} x'],
    ['bad token', '{"info": nope}x'],
    ['missing value', '{"info":}'],
    ['empty', ''],
  ])('refuses %s JSON', async (_name, text) => {
    await expect(scan(text)).rejects.toThrow();
  });

  it('refuses nesting deeper than its cap instead of overflowing', async () => {
    const deep = `{"info":${'['.repeat(2000)}${']'.repeat(2000)}}`;
    await expect(scan(deep)).rejects.toThrow(/nested deeper/);
  });

  it('keeps memory flat: a 40 MB string passes through without being buffered', async () => {
    const big = JSON.stringify({ info: { id: 'ses_0123456789abABCDEFGHIJKLMN', directory: '/a' }, messages: [{ info: { role: 'user' }, parts: [{ text: 'x'.repeat(40 << 20) }] }] });
    const { facts, output } = await scan(big, '/b', 1 << 16);
    expect(facts.messages).toBe(1);
    expect(output.length).toBe(big.length);
  });
});
