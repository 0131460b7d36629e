/**
 * Property-based tests (fast-check) over the parsers that read untrusted bytes: the manifest and
 * pointer documents, and the streaming blob scan/rebase. Each input is either accepted with the
 * promised result or refused with sessmig's own error — never a crash, a hang or a wrong answer.
 */
import fc from 'fast-check';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { JsonScanError, JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { SessmigError } from '../../src/util/errors.js';
import { parseDocument } from '../../src/format/document.js';
import { Manifest, Pointer } from '../../src/format/schema.js';
import { recordFault } from '../support/reliability.js';

async function scan(bytes: Buffer, rebaseTo: string | undefined, chunk: number) {
  const { hooks, facts } = blobHooks(rebaseTo);
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  const parts: Buffer[] = [];
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) chunks.push(bytes.subarray(i, i + chunk));
  await pipeline(
    Readable.from(chunks),
    scanner,
    new Writable({
      write(data, _e, cb) {
        parts.push(data);
        cb();
      },
    }),
  );
  return { facts, out: Buffer.concat(parts).toString('utf8'), hash: scanner.normalizedDigest() };
}

const reorder = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(reorder);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reorder(v)]));
  return value;
};

describe('document parsers', () => {
  it('accept or refuse any JSON with a SessmigError, never anything else', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        for (const schema of [Manifest, Pointer]) {
          try {
            parseDocument(Buffer.from(JSON.stringify(value)), schema, 'doc', 1 << 20);
          } catch (error) {
            expect(error).toBeInstanceOf(SessmigError);
          }
        }
      }),
      { numRuns: 300 },
    );
    recordFault({ area: 'bad input', fault: 'arbitrary JSON as manifest and pointer (fast-check, 300 runs)', target: 'local', outcome: 'accepted or refused with a SessmigError, never anything else' });
  });

  it('refuse any non-JSON bytes with a SessmigError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          parseDocument(Buffer.from(bytes), Manifest, 'doc', 1 << 20);
        } catch (error) {
          expect(error).toBeInstanceOf(SessmigError);
        }
      }),
      { numRuns: 300 },
    );
    recordFault({ area: 'bad input', fault: 'arbitrary bytes as a manifest (fast-check, 300 runs)', target: 'local', outcome: 'refused with a SessmigError' });
  });
});

describe('blob scan and rebase', () => {
  const blob = fc.record({
    info: fc.record({ id: fc.string(), directory: fc.string(), projectID: fc.string(), extra: fc.jsonValue() }, { requiredKeys: ['id'] }),
    messages: fc.array(fc.record({ info: fc.record({ role: fc.constantFrom('user', 'assistant') }), parts: fc.array(fc.jsonValue(), { maxLength: 3 }) }), { maxLength: 4 }),
    other: fc.jsonValue(),
  });

  it('rebases info.directory, clears info.projectID and changes nothing else, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(blob, fc.integer({ min: 1, max: 64 }), fc.boolean(), async (value, chunk, pretty) => {
        const text = JSON.stringify(value, null, pretty ? 2 : undefined);
        const { out, facts } = await scan(Buffer.from(text), '/dest', chunk);
        const parsed = JSON.parse(out);
        // Through JSON itself (-0 becomes 0 in JSON text), then the two fields the rebase owns.
        const expected = JSON.parse(JSON.stringify(value)) as { info: Record<string, unknown> };
        if ('directory' in expected.info) expected.info.directory = '/dest';
        if ('projectID' in expected.info) expected.info.projectID = '';
        expect(parsed).toEqual(expected);
        expect(facts.messages).toBe(value.messages.length);
        expect(facts.id).toBe(value.info.id);
      }),
      { numRuns: 200 },
    );
    recordFault({ area: 'bad input', fault: 'arbitrary session blobs through the rebase, any chunking (fast-check)', target: 'local', outcome: 'only info.directory and info.projectID change' });
  });

  it('hashes a value alike whatever its formatting and key order', async () => {
    await fc.assert(
      fc.asyncProperty(blob, async (value) => {
        const a = await scan(Buffer.from(JSON.stringify(value, null, 2)), undefined, 7);
        const b = await scan(Buffer.from(JSON.stringify(reorder(value))), undefined, 13);
        expect(b.hash).toBe(a.hash);
      }),
      { numRuns: 150 },
    );
  });

  it('refuses arbitrary bytes with a JsonScanError or accepts a JSON object, never anything else', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), fc.string().map((s) => Buffer.from(s))), async (bytes) => {
        let isObject = false;
        try {
          const value = JSON.parse(bytes.toString('utf8'));
          isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
        } catch {
          isObject = false;
        }
        try {
          await scan(bytes, '/d', 5);
          expect(isObject).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(JsonScanError);
        }
      }),
      { numRuns: 400 },
    );
    recordFault({ area: 'bad input', fault: 'arbitrary bytes as a session blob (fast-check)', target: 'local', outcome: 'refused with a JsonScanError or accepted as a JSON object' });
  });
});
