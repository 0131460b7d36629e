/**
 * docs/FORMAT.md, "contentHash": a second implementation written from that text alone (its own
 * tokenizer, a recursive digest), checked against the one sessmig runs (`JsonScanner` with
 * `normalizedHash`, the host-bound paths of `blobHooks`) on frozen vectors, on the real opencode
 * exports under test/fixtures/ (when present) and on generated documents.
 *
 * The vectors' hashes are literal on purpose: remotes hold hashes made by this algorithm, so a
 * change of it must fail here, not just move both implementations together.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';

// ---------------------------------------------------------------------------------------------
// The reference implementation, from docs/FORMAT.md only.

type Token = { kind: 'punct'; byte: number } | { kind: 'string' | 'literal'; raw: Buffer };

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const PUNCT = new Set([0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c]); // { } [ ] : ,

/** Splits JSON bytes into tokens; strings and literals keep their raw bytes as written. */
function tokenize(bytes: Buffer): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < bytes.length) {
    const c = bytes[i]!;
    if (WHITESPACE.has(c)) {
      i++;
    } else if (PUNCT.has(c)) {
      tokens.push({ kind: 'punct', byte: c });
      i++;
    } else if (c === 0x22) {
      let j = i + 1;
      while (bytes[j] !== 0x22) {
        if (j >= bytes.length) throw new Error('unterminated string');
        j += bytes[j] === 0x5c ? 2 : 1;
      }
      tokens.push({ kind: 'string', raw: bytes.subarray(i, j + 1) });
      i = j + 1;
    } else {
      let j = i;
      while (j < bytes.length && !WHITESPACE.has(bytes[j]!) && !PUNCT.has(bytes[j]!) && bytes[j] !== 0x22) j++;
      tokens.push({ kind: 'literal', raw: bytes.subarray(i, j) });
      i = j;
    }
  }
  return tokens;
}

const TAG = { scalar: 0x73, key: 0x6b, array: 0x61, object: 0x6f, hashed: 0x48 } as const;

/** D(tag, content): inline up to 48 bytes of content, else 0x48 and the sha256 of tag ‖ content. */
function D(tag: number, content: Buffer): Buffer {
  const tagged = Buffer.concat([Buffer.of(tag), content]);
  if (content.length <= 48) return tagged;
  return Buffer.concat([Buffer.of(TAG.hashed), createHash('sha256').update(tagged).digest()]);
}

/** P(d): one length byte, then d. */
const P = (d: Buffer): Buffer => Buffer.concat([Buffer.of(d.length), d]);

const NULL_DIGEST = D(TAG.scalar, Buffer.from('null'));

const HOST_BOUND: readonly (readonly string[])[] = [
  ['info', 'directory'],
  ['info', 'projectID'],
  ['info', 'path'],
  ['info', 'time', 'updated'],
];

const isHostBound = (p: readonly (string | number)[]): boolean =>
  HOST_BOUND.some((bound) => bound.length === p.length && bound.every((segment, i) => segment === p[i]));

function referenceContentHash(bytes: Buffer): string {
  const tokens = tokenize(bytes);
  let at = 0;
  const next = (): Token => {
    const token = tokens[at++];
    if (!token) throw new Error('unexpected end');
    return token;
  };
  const punct = (byte: number): boolean => {
    const token = tokens[at];
    return token?.kind === 'punct' && token.byte === byte;
  };
  const expectPunct = (byte: number): void => {
    const token = next();
    if (token.kind !== 'punct' || token.byte !== byte) throw new Error(`expected ${String.fromCharCode(byte)}`);
  };

  const value = (p: (string | number)[]): Buffer => {
    const token = next();
    let digest: Buffer;
    if (token.kind !== 'punct') {
      digest = D(TAG.scalar, token.raw);
    } else if (token.byte === 0x5b) {
      const elements: Buffer[] = [];
      while (!punct(0x5d)) {
        if (elements.length > 0) expectPunct(0x2c);
        elements.push(P(value([...p, elements.length])));
      }
      expectPunct(0x5d);
      digest = D(TAG.array, Buffer.concat(elements));
    } else if (token.byte === 0x7b) {
      const entries: Buffer[] = [];
      while (!punct(0x7d)) {
        if (entries.length > 0) expectPunct(0x2c);
        const key = next();
        if (key.kind !== 'string') throw new Error('expected a key');
        expectPunct(0x3a);
        const name = JSON.parse(key.raw.toString('utf8')) as string;
        entries.push(Buffer.concat([P(D(TAG.key, key.raw)), P(value([...p, name]))]));
      }
      expectPunct(0x7d);
      digest = D(TAG.object, Buffer.concat(entries.sort(Buffer.compare)));
    } else {
      throw new Error(`unexpected ${String.fromCharCode(token.byte)}`);
    }
    return isHostBound(p) ? NULL_DIGEST : digest;
  };

  if (tokens[0]?.kind !== 'punct' || tokens[0].byte !== 0x7b) throw new Error('the document must be an object');
  const root = value([]);
  if (at !== tokens.length) throw new Error('trailing data');
  return createHash('sha256').update(root).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// What sessmig computes.

async function scan(bytes: Buffer, chunkSize = 4096, rebaseTo?: string): Promise<{ hash: string; output: Buffer }> {
  const { hooks } = blobHooks(rebaseTo);
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) chunks.push(bytes.subarray(i, i + chunkSize));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    scanner,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return { hash: scanner.normalizedDigest(), output: Buffer.concat(out) };
}

const sessmigContentHash = async (bytes: Buffer, chunkSize?: number): Promise<string> => (await scan(bytes, chunkSize)).hash;

// ---------------------------------------------------------------------------------------------
// Frozen vectors. Every text is valid JSON (JSON.parse accepts it).

const long = 'x'.repeat(60);
const vectors: { name: string; text: string; hash: string }[] = [
  { name: 'empty object', text: '{}', hash: '65c74c15a686187bb6bbf9958f494fc6b80068034a659a9ad44991b08c58f2d2' },
  { name: 'one short member', text: '{"a":1}', hash: '6b0f7d63d2367789047e916c6eed5a66cf6081517971e24806e023e46d4e7d6c' },
  { name: 'scalars of every kind', text: '{"s":"A","n":-1.5e+3,"t":true,"f":false,"z":null,"e":[],"o":{}}', hash: '7d615544f67fe27bdb1906f850a52a28e7af746bda5721f5d48502cdea3fd194' },
  { name: 'members in another order, with whitespace', text: ' {\n  "o" : { },\t"e":[ ],\r\n "z": null, "f": false, "t": true, "n": -1.5e+3, "s": "A"\n}\n', hash: '7d615544f67fe27bdb1906f850a52a28e7af746bda5721f5d48502cdea3fd194' },
  { name: 'a number spelled otherwise', text: '{"s":"A","n":-1500,"t":true,"f":false,"z":null,"e":[],"o":{}}', hash: 'f208ce46e5d4f657b7a7c2cc499dded1e80738ebe9846bf0a42e512c2857f173' },
  { name: 'a string escaped otherwise', text: '{"s":"\\u0041","n":-1.5e+3,"t":true,"f":false,"z":null,"e":[],"o":{}}', hash: '3be727312721b175c04cd5fb6e6e96df415ec5cf3b8dee047cc322aad20042f0' },
  { name: 'array order counts', text: '{"a":[1,2,3]}', hash: 'e3c39e962ec490ffaf6d5463491d1f49ab9e062daf2b29e7e2057889e56db1fe' },
  { name: 'array order counts (reversed)', text: '{"a":[3,2,1]}', hash: 'bd96a697e4d085fe0ceaf0f87fa90a1b8d610a3ab3922d2257c306910eff5348' },
  { name: 'content over 48 bytes (hashed string, key, array and object)', text: `{"${long}":"${long}","list":[${Array.from({ length: 20 }, (_, i) => i).join(',')}]}`, hash: 'f47709868d77940694e4365a418aea63ba19805437faab0851854a8b1d55ea9d' },
  // The 48-byte threshold, on each side (these hashes were also computed apart from both implementations, by a
  // few lines of Python following docs/FORMAT.md).
  { name: 'a string token of 48 bytes (inline)', text: `{"s":"${'x'.repeat(46)}"}`, hash: 'a8a9974483f00fd02c5f7c864bb15d993e7b996e54e328f67497e30f0c1085ad' },
  { name: 'a string token of 49 bytes (hashed)', text: `{"s":"${'x'.repeat(47)}"}`, hash: '45aa06b747564a970ce4c39da8d1b342a8f4cfab8fc27f5ec897c6c3077e023c' },
  { name: 'a key token of 48 bytes (inline)', text: `{"${'x'.repeat(46)}":1}`, hash: '162186874649781af455373e3792f1ba0af6d259cda6d30aff0979b21fb36d4c' },
  { name: 'a key token of 49 bytes (hashed)', text: `{"${'x'.repeat(47)}":1}`, hash: 'dfe34b2113641df4608d0d799958df838400fcdce6529ba29f515328b5d54a3b' },
  { name: 'array content of 48 bytes (inline)', text: `{"a":[${Array(16).fill(1).join(',')}]}`, hash: 'b36dcf0091c9ec210e101ef9acb62323cb63e1f45cf4b0264496db13a7fa824f' },
  { name: 'array content of 51 bytes (hashed)', text: `{"a":[${Array(17).fill(1).join(',')}]}`, hash: '3f032e043e49efbf5fd639b41380b3b8a475f24fd5928b3bd04e5331ac563ba5' },
  { name: 'object content of 48 bytes (inline)', text: '{"f":1,"e":1,"d":1,"c":1,"b":1,"a":1}', hash: 'd284e4fe431ed470661bae615b3b95a2c558865f86455161d4a101be8b533807' },
  { name: 'a duplicate key counts twice', text: '{"a":1,"a":1}', hash: 'f160040ea90ca1aa8f4858cb62c195b541aa6cec87fa66fe3d29782ba71dd44d' },
  { name: 'non-ASCII strings are their UTF-8 bytes', text: '{"title":"Fix é 😀 \\"q\\" \\\\ \\n"}', hash: '4880dc1557aaacfcefbe4eda1bf9be21f98b1c961d24dbed207ec6669023eb12' },
  {
    name: 'session with host-bound values',
    text: '{"info":{"id":"ses_1","projectID":"p-laptop","directory":"/home/me/src/app","path":{"cwd":"/home/me/src/app","root":"/home/me/src/app"},"title":"t","time":{"created":1764107177000,"updated":1764107177123}},"messages":[{"info":{"id":"msg_1","role":"user"},"parts":[{"type":"text","text":"hello"}]}]}',
    hash: '2b6ec392bfafa5a92682f0ab66c9c94eff8b4e572ce673f45e6dd1100ef29d8e',
  },
  {
    name: 'the same session on another host (host-bound values changed, reformatted)',
    text: '{\n  "messages": [ { "parts": [ { "text": "hello", "type": "text" } ], "info": { "role": "user", "id": "msg_1" } } ],\n  "info": {\n    "time": { "updated": 1799999999999, "created": 1764107177000 },\n    "title": "t",\n    "path": "elsewhere",\n    "directory": "/srv/work/app",\n    "projectID": "",\n    "id": "ses_1"\n  }\n}\n',
    hash: '2b6ec392bfafa5a92682f0ab66c9c94eff8b4e572ce673f45e6dd1100ef29d8e',
  },
  {
    name: 'the same session with host-bound values null',
    text: '{"info":{"id":"ses_1","projectID":null,"directory":null,"path":null,"title":"t","time":{"created":1764107177000,"updated":null}},"messages":[{"info":{"id":"msg_1","role":"user"},"parts":[{"type":"text","text":"hello"}]}]}',
    hash: '2b6ec392bfafa5a92682f0ab66c9c94eff8b4e572ce673f45e6dd1100ef29d8e',
  },
  {
    name: 'the same session without info.path (absent is not null)',
    text: '{"info":{"id":"ses_1","projectID":"p-laptop","directory":"/home/me/src/app","title":"t","time":{"created":1764107177000,"updated":1764107177123}},"messages":[{"info":{"id":"msg_1","role":"user"},"parts":[{"type":"text","text":"hello"}]}]}',
    hash: 'aab7924ad6bdbb365fc4d4ec0bda29c63c037e0f2041eb569032d23a91e2e3c8',
  },
  {
    name: 'the same session, a message info.path changed (only the root info is host-bound)',
    text: '{"info":{"id":"ses_1","projectID":"p-laptop","directory":"/home/me/src/app","path":{"cwd":"/home/me/src/app","root":"/home/me/src/app"},"title":"t","time":{"created":1764107177000,"updated":1764107177123}},"messages":[{"info":{"id":"msg_1","role":"user","path":{"cwd":"/x"}},"parts":[{"type":"text","text":"hello"}]}]}',
    hash: '286022929eca805ed76e3bd394e2986ec73dfff9e4799bd587ea8fe14b11766f',
  },
  { name: 'a host-bound key unescaped', text: '{"info":{"directory":"/home/a"}}', hash: 'fc5d5baaed70fedcaddfe0e826476ebeb67f135fb3ee36169eeb8f2eb09ca0f1' },
  { name: 'a host-bound key escaped', text: '{"info":{"dir\\u0065ctory":"/home/a"}}', hash: '89ff8a5d5179e221ef1ad9be57a55ddf2b2f63c555174c04d56120ca2e2abaa8' },
  { name: 'a host-bound key escaped, another value', text: '{"info":{"dir\\u0065ctory":{"any":["value"]}}}', hash: '89ff8a5d5179e221ef1ad9be57a55ddf2b2f63c555174c04d56120ca2e2abaa8' },
];

/** Vectors that must hash alike (the point of the normalization), by name. */
const alike: [string, string][] = [
  ['scalars of every kind', 'members in another order, with whitespace'],
  ['session with host-bound values', 'the same session on another host (host-bound values changed, reformatted)'],
  ['session with host-bound values', 'the same session with host-bound values null'],
  ['a host-bound key escaped', 'a host-bound key escaped, another value'],
];

describe('contentHash (docs/FORMAT.md)', () => {
  it('frozen vectors: the reference and sessmig both give the recorded hash', async () => {
    for (const vector of vectors) {
      const bytes = Buffer.from(vector.text, 'utf8');
      expect(() => JSON.parse(vector.text), vector.name).not.toThrow();
      const reference = referenceContentHash(bytes);
      for (const chunkSize of [1, 5, 4096]) expect(await sessmigContentHash(bytes, chunkSize), `${vector.name}, chunks of ${chunkSize}`).toBe(reference);
      expect(reference, vector.name).toBe(vector.hash);
    }
    const hashOf = (name: string) => vectors.find((v) => v.name === name)!.hash;
    for (const [a, b] of alike) expect(hashOf(a), `${a} = ${b}`).toBe(hashOf(b));
    // Everything not listed as alike differs.
    const distinct = new Set(vectors.map((v) => v.hash));
    expect(distinct.size).toBe(vectors.length - alike.length);
  });

  it('is unchanged by the rebase a pull applies', async () => {
    let rebased = 0;
    for (const vector of vectors.filter((v) => v.text.includes('"info"'))) {
      const bytes = Buffer.from(vector.text, 'utf8');
      const { hash, output } = await scan(bytes, 7, '/somewhere/else');
      if (!output.equals(bytes)) rebased++;
      expect(hash, vector.name).toBe(vector.hash);
      expect(referenceContentHash(output), vector.name).toBe(hash);
      expect(await sessmigContentHash(output), vector.name).toBe(hash);
    }
    expect(rebased).toBeGreaterThan(3);
  });

  const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
  const blobs = existsSync(fixtures) ? walk(fixtures).filter((file) => file.endsWith('.json')) : [];
  it.skipIf(blobs.length === 0)('real opencode exports under test/fixtures/: the reference agrees', async () => {
    for (const file of blobs) {
      const bytes = readFileSync(file);
      const value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      if (!isSession(value)) continue;
      const name = path.relative(fixtures, file);
      const reference = referenceContentHash(bytes);
      expect(await sessmigContentHash(bytes, 4096), name).toBe(reference);
      expect(await sessmigContentHash(bytes, 3), name).toBe(reference);
      // Reformatted, members reversed, host-bound values changed: the same hash.
      const moved = structuredClone(value) as { info: Record<string, unknown> & { time?: Record<string, unknown> } };
      moved.info.directory = '/elsewhere/entirely';
      moved.info.projectID = '';
      if (moved.info.time) moved.info.time.updated = 1;
      const other = Buffer.from(JSON.stringify(reversed(moved), null, 2));
      expect(referenceContentHash(other), name).toBe(reference);
      expect(await sessmigContentHash(other), name).toBe(reference);
    }
  });

  it('generated documents: the reference and sessmig agree, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb, formatArb, fc.integer({ min: 1, max: 64 }), async (doc, format, chunkSize) => {
        const bytes = Buffer.from(render(doc, format), 'utf8');
        expect(await sessmigContentHash(bytes, chunkSize)).toBe(referenceContentHash(bytes));
      }),
      { numRuns: 150 },
    );
  });

  it('generated documents: whitespace, member order and host-bound values do not count', async () => {
    await fc.assert(
      fc.asyncProperty(documentArb, formatArb, formatArb, valueArb, async (doc, a, b, replacement) => {
        const first = Buffer.from(render(doc, a), 'utf8');
        const second = Buffer.from(render(replaceHostBound(doc, replacement), b), 'utf8');
        const hash = referenceContentHash(first);
        expect(referenceContentHash(second)).toBe(hash);
        expect(await sessmigContentHash(second, 13)).toBe(hash);
      }),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Helpers: fixtures, and a generator of JSON texts that keeps control over their spelling.

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const full = path.join(dir, entry);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

function isSession(value: unknown): value is { info: Record<string, unknown> } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { info?: unknown }).info === 'object';
}

function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversed(v)]));
  return value;
}

/** A JSON value whose strings and numbers carry their exact spelling. */
type Node =
  | { t: 'lit'; text: string }
  | { t: 'str'; text: string }
  | { t: 'arr'; items: Node[] }
  | { t: 'obj'; members: { key: string; value: Node }[] };

/** How to print: whitespace to cycle through between tokens, and a seed for member order. */
interface Format {
  spaces: string[];
  seed: number;
}

/** A JSON string literal for `s`, each code point either as itself or \u-escaped (per `escapes`). */
function spell(s: string, escapes: number): string {
  let out = '"';
  let i = 0;
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    const escape = ch === '"' || ch === '\\' || code < 0x20 || ((escapes >> i++ % 30) & 1) === 1;
    if (!escape) out += ch;
    else if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else out += Array.from({ length: ch.length }, (_, k) => `\\u${ch.charCodeAt(k).toString(16).padStart(4, '0')}`).join('');
  }
  return `${out}"`;
}

const stringArb = fc.tuple(fc.string({ unit: 'grapheme', maxLength: 60 }), fc.nat()).map(([s, e]) => spell(s, e));
const numberArb = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => JSON.stringify(d)),
  fc.constantFrom('0', '-0', '1.0', '1E+2', '1e-7', '-0.50', '123456789012345678901234567890'),
);
const keyArb = fc.oneof(
  fc.constantFrom('info', 'directory', 'projectID', 'path', 'time', 'updated', 'created', 'id', 'messages', ''),
  fc.string({ unit: 'grapheme', maxLength: 60 }),
);
const spelledKeyArb = fc.tuple(keyArb, fc.nat()).map(([k, e]) => spell(k, e));

const { value: valueArb } = fc.letrec<{ value: Node }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<Node>({ t: 'lit', text: 'true' }, { t: 'lit', text: 'false' }, { t: 'lit', text: 'null' }),
    numberArb.map((text): Node => ({ t: 'lit', text })),
    stringArb.map((text): Node => ({ t: 'str', text })),
    fc.array(tie('value'), { maxLength: 8 }).map((items): Node => ({ t: 'arr', items })),
    fc.array(fc.record({ key: spelledKeyArb, value: tie('value') }), { maxLength: 8 }).map((members): Node => ({ t: 'obj', members })),
  ),
}));

const membersArb = fc.array(fc.record({ key: spelledKeyArb, value: valueArb }), { maxLength: 5 });
const optionalMember = (key: string, value: fc.Arbitrary<Node>) =>
  fc.option(fc.tuple(fc.nat(), value).map(([e, v]) => ({ key: spell(key, e), value: v })), { nil: undefined });

/** A session-like root: info with (some of) the host-bound fields, messages, and anything else. */
const documentArb: fc.Arbitrary<Node> = fc
  .record({
    directory: optionalMember('directory', valueArb),
    projectID: optionalMember('projectID', valueArb),
    path: optionalMember('path', valueArb),
    time: optionalMember(
      'time',
      fc.tuple(optionalMember('updated', valueArb), membersArb).map(([updated, rest]): Node => ({ t: 'obj', members: [...(updated ? [updated] : []), ...rest] })),
    ),
    info: membersArb,
    messages: fc.array(valueArb, { maxLength: 4 }),
    rest: membersArb,
  })
  .map(({ directory, projectID, path: p, time, info, messages, rest }): Node => ({
    t: 'obj',
    members: [
      { key: '"info"', value: { t: 'obj', members: [directory, projectID, p, time, ...info].filter((m) => m !== undefined) } },
      { key: '"messages"', value: { t: 'arr', items: messages } },
      ...rest,
    ],
  }));

const formatArb: fc.Arbitrary<Format> = fc.record({
  spaces: fc.array(fc.constantFrom('', ' ', '\n', '\t', '\r\n  ', '  '), { minLength: 1, maxLength: 16 }),
  seed: fc.nat(),
});

function render(node: Node, format: Format): string {
  let n = 0;
  let seed = format.seed;
  const ws = () => format.spaces[n++ % format.spaces.length]!;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const go = (node: Node): string => {
    switch (node.t) {
      case 'lit':
      case 'str':
        return node.text;
      case 'arr':
        return `[${ws()}${node.items.map((item) => `${go(item)}${ws()}`).join(`,${ws()}`)}]`;
      case 'obj': {
        const members = [...node.members];
        for (let i = members.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [members[i], members[j]] = [members[j]!, members[i]!];
        }
        return `{${ws()}${members.map((m) => `${m.key}${ws()}:${ws()}${go(m.value)}${ws()}`).join(`,${ws()}`)}}`;
      }
    }
  };
  return `${ws()}${go(node)}${ws()}`;
}

/** The document with every host-bound value (as the spec names them) replaced by `replacement`. */
function replaceHostBound(node: Node, replacement: Node, p: string[] = []): Node {
  if (isHostBound(p)) return replacement;
  if (node.t === 'obj') {
    return {
      t: 'obj',
      members: node.members.map((m) => ({ key: m.key, value: replaceHostBound(m.value, replacement, [...p, JSON.parse(m.key) as string]) })),
    };
  }
  // Array elements have numeric path segments: nothing below one is host-bound.
  return node;
}
