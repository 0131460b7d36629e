/**
 * The streaming scanner against JSON.parse (issue 23, item 8): every document JSON.parse rejects,
 * the scanner rejects, and every JSON object JSON.parse accepts, the scanner accepts. Inputs: real
 * opencode 1.18.33 exports (test/fixtures/blobs, made by `opencode export` of sessions with a
 * write tool call, todos, a task call and its child) mutated byte by byte, the bad literals,
 * numbers, escapes and control characters of the issue, and documents fast-check generates. Each
 * input is scanned in several chunk sizes, so tokens straddle chunk boundaries.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JsonScanError, JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'blobs');
const realBlobs = ['tools', 'task', 'child'].map((name) => readFileSync(path.join(fixtures, `${name}.json`)));

/** What the scanner says: 'ok', or the JsonScanError's message. Anything else is a bug and throws. */
async function scanVerdict(bytes: Buffer, chunk: number, withHooks: boolean): Promise<string> {
  const scanner = withHooks ? new JsonScanner(blobHooks('/elsewhere').hooks, { normalizedHash: true }) : new JsonScanner({});
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  try {
    await pipeline(
      Readable.from(chunks),
      scanner,
      new Writable({
        write(_data, _e, cb) {
          cb();
        },
      }),
    );
    return 'ok';
  } catch (error) {
    if (error instanceof JsonScanError) return error.message;
    throw error;
  }
}

/** JSON.parse's verdict on the same bytes, as a reader of the blob would decode them. */
function parseVerdict(bytes: Buffer): 'object' | 'other' | 'invalid' {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? 'object' : 'other';
  } catch {
    return 'invalid';
  }
}

/** The scanner takes exactly the JSON objects (it refuses any other top-level value on purpose). */
async function expectSameVerdict(bytes: Buffer): Promise<void> {
  const expected = parseVerdict(bytes);
  for (const chunk of [1, 3, 7, 4096]) {
    for (const withHooks of [false, true]) {
      const got = await scanVerdict(bytes, chunk, withHooks);
      const shown = `${JSON.stringify(bytes.toString('utf8').slice(0, 200))} (chunk ${chunk}, hooks ${withHooks}): JSON.parse says ${expected}, the scanner ${got}`;
      if (expected === 'object') expect(got, shown).toBe('ok');
      else expect(got, shown).not.toBe('ok');
    }
  }
}

describe('the scanner rejects what JSON.parse rejects, and nothing else', () => {
  it('the cases of the issue and their kin', async () => {
    const cases = [
      '{"a": nope}',
      '{"a": 01}',
      '{"a": 1.}',
      '{"a": -}',
      '{"a": -01}',
      '{"a": .5}',
      '{"a": 1e}',
      '{"a": 1e+}',
      '{"a": +1}',
      '{"a": 0x10}',
      '{"a": 1.5e3.2}',
      '{"a": Infinity}',
      '{"a": NaN}',
      '{"a": tru}',
      '{"a": truex}',
      '{"a": True}',
      '{"a": nulll}',
      '{"a": "\\x41"}',
      '{"a": "\\u12"}',
      '{"a": "\\u12G4"}',
      '{"a": "\\\'"}',
      '{"a": "tab\there"}',
      '{"a": "nl\nthere"}',
      '{"a\u0001": 1}',
      '{"a": "\u0000"}',
      '{"a": 1} x',
      '{"a": 1}}',
      '{"a": 1}{}',
      '{"a": [1, 2,]}',
      '{"a": 1,}',
      '{"a" 1}',
      '\ufeff{"a": 1}',
      // Accepted by JSON.parse, so by the scanner too:
      '{"a": -0}',
      '{"a": 0.5e-3}',
      '{"a": 1E+5, "b": -12.25E2}',
      '{"a": "\\ud800", "b": "\\udc00\\ud800"}',
      '{"a": "\\u00e9\\/\\b\\f\\n\\r\\t\\"\\\\"}',
      '{"a": "\u007f é 😀"}',
      '{"a": [true, false, null, {}, []]}',
      ' \t\r\n{"a":1} \t\r\n',
    ];
    for (const text of cases) await expectSameVerdict(Buffer.from(text, 'utf8'));
    // Bytes that are not UTF-8 decode to U+FFFD for JSON.parse: inside a string that is valid.
    await expectSameVerdict(Buffer.concat([Buffer.from('{"a": "'), Buffer.from([0xff, 0xc0, 0xa2, 0xed, 0xa0, 0x80]), Buffer.from('"}')]));
  });

  it('the real exports are accepted as they are', async () => {
    for (const blob of realBlobs) await expectSameVerdict(blob);
  });

  it('mutated real exports: a byte changed, inserted or deleted, or a slice cut out', async () => {
    // Bytes that matter to JSON's grammar, and some that do not.
    const interesting = [...'{}[]:,"\\ \t\n-+.0123456789eEtrufalsn/bx'].map((c) => c.charCodeAt(0)).concat([0x00, 0x01, 0x1f, 0x7f, 0xff]);
    const mutation = fc.record({
      blob: fc.integer({ min: 0, max: realBlobs.length - 1 }),
      at: fc.nat(),
      kind: fc.constantFrom('replace', 'insert', 'delete', 'cut'),
      byte: fc.oneof(fc.constantFrom(...interesting), fc.integer({ min: 0, max: 255 })),
      length: fc.integer({ min: 1, max: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(mutation, async ({ blob, at, kind, byte, length }) => {
        const source = realBlobs[blob]!;
        const p = at % source.length;
        const bytes =
          kind === 'replace'
            ? Buffer.concat([source.subarray(0, p), Buffer.of(byte), source.subarray(p + 1)])
            : kind === 'insert'
              ? Buffer.concat([source.subarray(0, p), Buffer.of(byte), source.subarray(p)])
              : kind === 'delete'
                ? Buffer.concat([source.subarray(0, p), source.subarray(p + 1)])
                : Buffer.concat([source.subarray(0, p), source.subarray(p + length)]);
        await expectSameVerdict(bytes);
      }),
      { numRuns: 400 },
    );
  });

  it('generated documents, valid and slightly broken', async () => {
    const text = fc.string({ unit: fc.oneof(fc.constantFrom('"', '\\', '\n', '\t', '\u0000', '\u001f', 'é', '😀', '\ud800'), fc.string({ minLength: 1, maxLength: 1, unit: 'binary' })) });
    const value = fc.letrec((tie) => ({
      any: fc.oneof(
        { depthSize: 'small' },
        fc.constantFrom(true, false, null),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer(),
        text,
        fc.array(tie('any'), { maxLength: 4 }),
        fc.dictionary(text, tie('any'), { maxKeys: 4 }),
      ),
    })).any;
    const document = fc.dictionary(text, value, { maxKeys: 5 });
    // A token-level edit of valid JSON text: the literals and escapes a careless writer produces.
    const junk = fc.constantFrom('nope', '01', '1.', '-', '.5', '1e', 'tru', 'nul', '\\x', '\\u12', '\u0001', ',', ']', '}', ':', '"', '', ' ');
    await fc.assert(
      fc.asyncProperty(document, fc.boolean(), fc.nat(), junk, fc.boolean(), async (doc, pretty, at, insert, replaceByte) => {
        const json = JSON.stringify(doc, null, pretty ? 2 : undefined);
        await expectSameVerdict(Buffer.from(json, 'utf8'));
        const p = at % (json.length + 1);
        const broken = json.slice(0, p) + insert + json.slice(replaceByte ? p + 1 : p);
        await expectSameVerdict(Buffer.from(broken, 'utf8'));
      }),
      { numRuns: 300 },
    );
  });
});
