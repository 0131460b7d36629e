import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { applyPatch } from 'diff';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonScanner, type ScanHooks } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { adaptBlobFor, BlobUnfitError, diffShapeFor, formatPath, legacyEntryToPatch, unifiedPatch, wholeFilePatch } from '../../src/opencode/adapters.js';

/** Streams `text` through the scanner in chunks of `chunk` bytes; returns what came out. */
async function scan(text: string, hooks: ScanHooks, chunk = 7): Promise<string> {
  const bytes = Buffer.from(text, 'utf8');
  const pieces: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) pieces.push(bytes.subarray(i, i + chunk));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(pieces),
    new JsonScanner(hooks),
    new Writable({
      write(data: Buffer, _encoding, callback) {
        out.push(data);
        callback();
      },
    }),
  );
  return Buffer.concat(out).toString('utf8');
}

function rebaseAndAdapt(destination: string, directory = '/dst/app') {
  const { hooks, facts } = blobHooks(directory);
  const adaptation = adaptBlobFor(destination);
  return { hooks: { ...hooks, ...adaptation.hooks }, facts, counts: adaptation.counts };
}

/** A blob the way opencode 1.3.2 exports it (pretty-printed, legacy diffs on a user message). */
function legacyBlob(): string {
  return JSON.stringify(
    {
      info: { id: 'ses_dea8ef95bffe20EAnqwP2d0SgT', projectID: 'p1', directory: '/src/app', title: 'T', version: '1.3.2', summary: { additions: 2, deletions: 0, files: 1 }, time: { created: 1, updated: 2 } },
      messages: [
        {
          info: {
            role: 'user',
            time: { created: 1 },
            summary: {
              title: 'kept',
              diffs: [
                { file: 'src/b.txt', before: '', after: 'one\ntwo\n', additions: 2, deletions: 0, status: 'added' },
                { file: 'a.txt', before: 'x\ny\nz\n', after: 'x\nY\nz', additions: 1, deletions: 1, status: 'modified', extra: { kept: [1, 2] } },
              ],
            },
            id: 'msg_1',
          },
          parts: [{ type: 'text', text: 'before after patch "diffs"', id: 'prt_1' }],
        },
        { info: { role: 'assistant', time: { created: 2, completed: 3 }, id: 'msg_2' }, parts: [] },
      ],
    },
    null,
    2,
  );
}

describe('the unified diff the legacy → patch adapter writes', () => {
  it('is byte for byte what opencode 1.18.33 and 1.14.41 write for a new file', () => {
    // From real exports (fake LLM `[[write notes.txt alpha\nbeta\ngamma]]`), 1.18.33 and 1.14.41 alike.
    expect(unifiedPatch('notes.txt', '', 'alpha\nbeta\ngamma\n')).toBe(
      'Index: notes.txt\n===================================================================\n--- notes.txt\t\n+++ notes.txt\t\n@@ -0,0 +1,3 @@\n+alpha\n+beta\n+gamma\n',
    );
    expect(unifiedPatch('src/b.txt', '', 'one\ntwo\n')).toBe(
      'Index: src/b.txt\n===================================================================\n--- src/b.txt\t\n+++ src/b.txt\t\n@@ -0,0 +1,2 @@\n+one\n+two\n',
    );
  });

  it('keeps the whole file as context (as opencode does) and applies back to the after text', () => {
    const before = Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const after = before.replace('line 10', 'LINE TEN');
    const patch = unifiedPatch('f.txt', before, after);
    expect(patch).toContain('@@ -1,20 +1,20 @@');
    expect(applyPatch(before, patch)).toBe(after);
  });

  it('is exact for any two texts (property)', () => {
    const text = fc.array(fc.constantFrom('a', 'b', 'c', '', 'x y'), { maxLength: 12 }).chain((lines) =>
      fc.boolean().map((finalNewline) => (lines.length === 0 ? '' : lines.join('\n') + (finalNewline ? '\n' : ''))),
    );
    fc.assert(
      fc.property(text, text, (before, after) => {
        expect(applyPatch(before, unifiedPatch('f', before, after))).toBe(after);
        // The fallback when diffing takes too long: one hunk, still exact.
        expect(applyPatch(before, wholeFilePatch('f', before, after))).toBe(after);
      }),
      { numRuns: 300 },
    );
  });

  it('replaces before/after in place and leaves every other key as it was', () => {
    const entry = { file: 'a.txt', before: 'x\n', after: 'y\n', additions: 1, deletions: 1, status: 'modified', zz: { n: [1] } };
    const out = legacyEntryToPatch(entry);
    expect(Object.keys(out)).toEqual(['file', 'patch', 'additions', 'deletions', 'status', 'zz']);
    expect(out).toMatchObject({ file: 'a.txt', additions: 1, deletions: 1, status: 'modified', zz: { n: [1] } });
    expect(applyPatch('x\n', out.patch as string)).toBe('y\n');
  });
});

describe('adapting a blob in the stream', () => {
  it('picks the shape by destination version', () => {
    expect(diffShapeFor('1.3.2')).toBe('before-after');
    expect(diffShapeFor('1.4.0')).toBe('patch');
    expect(diffShapeFor('1.14.41')).toBe('patch');
    expect(diffShapeFor('1.18.33')).toBe('patch');
    expect(diffShapeFor('local-build')).toBe('patch');
    expect(formatPath(['messages', 3, 'info', 'summary', 'diffs', 0])).toBe('messages[3].info.summary.diffs[0]');
  });

  it('turns legacy entries into patches for a ≥ 1.4 destination, at any chunk size, touching nothing else', async () => {
    const blob = legacyBlob();
    for (const chunk of [1, 3, 7, 64, 1 << 20]) {
      const { hooks, facts, counts } = rebaseAndAdapt('1.14.41');
      const out = JSON.parse(await scan(blob, hooks, chunk));
      const original = JSON.parse(blob);
      expect(counts.legacyDiffsToPatch).toBe(2);
      expect(facts.id).toBe('ses_dea8ef95bffe20EAnqwP2d0SgT');
      expect(out.info.directory).toBe('/dst/app');
      const [first, second] = out.messages[0].info.summary.diffs;
      expect(first).toEqual({ file: 'src/b.txt', patch: unifiedPatch('src/b.txt', '', 'one\ntwo\n'), additions: 2, deletions: 0, status: 'added' });
      expect(second.extra).toEqual({ kept: [1, 2] });
      expect(applyPatch('x\ny\nz\n', second.patch)).toBe('x\nY\nz');
      // Everything but the rebased fields and the two entries is unchanged.
      original.info.directory = '/dst/app';
      original.info.projectID = '';
      original.messages[0].info.summary.diffs = out.messages[0].info.summary.diffs;
      expect(out).toEqual(original);
    }
  });

  it('leaves entries already in the destination shape byte for byte', async () => {
    const blob = '{"info":{"id":"ses_1","directory":"/a"},"messages":[{"info":{"role":"user","summary":{"diffs":[ {"file" : "n.txt","patch":"P\\n","additions":1,"deletions":0} ]}},"parts":[]}]}';
    const { hooks, counts } = rebaseAndAdapt('1.18.33');
    expect(await scan(blob, hooks, 5)).toBe(blob.replace('"/a"', '"/dst/app"'));
    expect(counts.legacyDiffsToPatch).toBe(0);
    const legacy = '{"info":{"id":"ses_1","summary":{"diffs":[{"file":"n","before":"a","after":"b"}]}},"messages":[]}';
    const old = rebaseAndAdapt('1.3.2');
    expect(await scan(legacy, old.hooks, 4)).toBe(legacy);
  });

  it('adapts the session-level summary.diffs too', async () => {
    const blob = '{"info":{"id":"ses_1","summary":{"additions":1,"diffs":[{"file":"n","before":"","after":"b\\n"}]}},"messages":[]}';
    const { hooks } = rebaseAndAdapt('1.18.33');
    const out = JSON.parse(await scan(blob, hooks));
    expect(out.info.summary).toEqual({ additions: 1, diffs: [{ file: 'n', patch: unifiedPatch('n', '', 'b\n') }] });
  });

  it('refuses a patch entry for a < 1.4 destination, naming the field', async () => {
    const blob = '{"info":{"id":"ses_1"},"messages":[{"info":{"role":"user"},"parts":[]},{"info":{"role":"user","summary":{"diffs":[{"file":"n","patch":"P"}]}},"parts":[]}]}';
    const { hooks } = rebaseAndAdapt('1.3.2');
    const error = await scan(blob, hooks).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BlobUnfitError);
    expect((error as BlobUnfitError).fieldPath).toBe('messages[1].info.summary.diffs[0]');
    expect((error as Error).message).toMatch(/holds a "patch".*opencode 1\.3\.2 requires "before"\/"after", which cannot be rebuilt honestly/);
  });

  it('refuses entries no destination takes', async () => {
    for (const [entry, why] of [
      ['{"file":"n","additions":1}', /has neither "patch" nor "before"\/"after"/],
      ['"n.txt"', /is string, not a file diff object/],
      ['{"patch":"P"}', /has no string "file"/],
    ] as const) {
      const blob = `{"info":{"id":"ses_1"},"messages":[{"info":{"role":"user","summary":{"diffs":[${entry}]}},"parts":[]}]}`;
      const { hooks } = rebaseAndAdapt('1.18.33');
      await expect(scan(blob, hooks)).rejects.toThrow(why);
    }
  });
});

describe('whole-value capture in the scanner (what the adapters stand on)', () => {
  it('keeps bytes when the hook keeps the value, and writes what it returns otherwise (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }), fc.integer({ min: 1, max: 40 }), async (messages, chunk) => {
        const doc = JSON.stringify({ info: { id: 'ses_1' }, messages: Object.values(messages) }, null, 1);
        const seen: unknown[] = [];
        const keep: ScanHooks = { captureValue: (path) => path.length === 2 && path[0] === 'messages', replaceValue: (_path, value) => (seen.push(value), undefined) };
        expect(await scan(doc, keep, chunk)).toBe(doc);
        expect(seen).toEqual(JSON.parse(doc).messages);
        const wrap: ScanHooks = { captureValue: keep.captureValue, replaceValue: (_path, value) => JSON.stringify({ wrapped: value }) };
        expect(JSON.parse(await scan(doc, wrap, chunk)).messages).toEqual(JSON.parse(doc).messages.map((value: unknown) => ({ wrapped: value })));
      }),
      { numRuns: 200 },
    );
  });
});
