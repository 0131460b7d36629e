/**
 * src/format/keys.ts: every key kind of docs/FORMAT.md is built with the format's own builders
 * (layout.ts, codeLayout.ts, ticketSchema.ts, keys.ts) and parsed back to the same parts; strings
 * that come close to a key but are not one do not parse.
 */
import { describe, expect, it } from 'vitest';
import { codeBundleKey } from '../../src/format/codeLayout.js';
import { keyOf, markerKey, parseKey, sealedBlobKey, sealedBundleKey, uploadRejectedKey, type ParsedKey } from '../../src/format/keys.js';
import { blobKey, carriedFileKey, checkpointKey, pointerKey } from '../../src/format/layout.js';
import { ticketKey, uploadManifestKey, uploadSlotKey } from '../../src/format/ticketSchema.js';

const W = '36487536c99a213f1cce8b25e5ad5d24ceea28ce';
const SHA = 'a'.repeat(63) + 'b';
const NAME = '0123456789abcdef'.repeat(4);
const CP = '20261125T214617123Z-1a2b3c4d';
const TICKET = '20261125T214617123Z-0123456789abcdef';
const root = `sessmig/v1/worktrees/${W}/`;

const cases: { key: string; parsed: ParsedKey }[] = [
  { key: pointerKey(W), parsed: { worktree: W, kind: 'pointer', id: '' } },
  { key: markerKey(W), parsed: { worktree: W, kind: 'marker', id: '' } },
  { key: checkpointKey(W, CP), parsed: { worktree: W, kind: 'checkpoint', id: CP } },
  { key: blobKey(W, SHA), parsed: { worktree: W, kind: 'blob', id: SHA } },
  { key: carriedFileKey(W, SHA, 'pack'), parsed: { worktree: W, kind: 'pack', id: SHA } },
  { key: carriedFileKey(W, SHA, 'out'), parsed: { worktree: W, kind: 'out', id: SHA } },
  { key: sealedBlobKey(W, NAME), parsed: { worktree: W, kind: 'sealed-blob', id: NAME } },
  { key: codeBundleKey(W, SHA), parsed: { worktree: W, kind: 'bundle', id: SHA } },
  { key: sealedBundleKey(W, NAME), parsed: { worktree: W, kind: 'sealed-bundle', id: NAME } },
  { key: ticketKey(W, TICKET), parsed: { worktree: W, kind: 'ticket', id: TICKET } },
  { key: uploadManifestKey(W, TICKET), parsed: { worktree: W, kind: 'upload-manifest', id: TICKET } },
  { key: uploadRejectedKey(W, TICKET), parsed: { worktree: W, kind: 'upload-rejected', id: TICKET } },
  { key: uploadSlotKey(W, TICKET, 0), parsed: { worktree: W, kind: 'upload-slot', id: TICKET, slot: 0 } },
  { key: uploadSlotKey(W, TICKET, 999), parsed: { worktree: W, kind: 'upload-slot', id: TICKET, slot: 999 } },
  // a --worktree name with dots, dashes and underscores
  { key: checkpointKey('my.wt_2-x', CP), parsed: { worktree: 'my.wt_2-x', kind: 'checkpoint', id: CP } },
];

describe('parseKey', () => {
  it.each(cases)('$parsed.kind: $key', ({ key, parsed }) => {
    expect(key.startsWith('sessmig/v1/worktrees/')).toBe(true);
    expect(parseKey(key)).toEqual(parsed);
    expect(keyOf(parsed)).toBe(key);
  });

  it('the literal layout of docs/FORMAT.md', () => {
    expect(pointerKey(W)).toBe(`${root}HEAD.json`);
    expect(checkpointKey(W, CP)).toBe(`${root}checkpoints/${CP}.json`);
    expect(blobKey(W, SHA)).toBe(`${root}blobs/${SHA}.json.gz`);
    expect(sealedBlobKey(W, NAME)).toBe(`${root}blobs/${NAME}.age`);
    expect(sealedBundleKey(W, NAME)).toBe(`${root}code/${NAME}.age`);
    expect(markerKey(W)).toBe(`${root}ENCRYPTION.json`);
    expect(uploadSlotKey(W, TICKET, 7)).toBe(`${root}incoming/${TICKET}/slots/7.json.gz`);
    expect(uploadRejectedKey(W, TICKET)).toBe(`${root}incoming/${TICKET}/rejected.json`);
  });

  const nearMisses = [
    '',
    'sessmig/v1/worktrees/',
    `sessmig/v1/worktrees/${W}`,
    `sessmig/v1/worktrees/${W}/`,
    `sessmig/v2/worktrees/${W}/HEAD.json`,
    `/sessmig/v1/worktrees/${W}/HEAD.json`,
    `prefix/sessmig/v1/worktrees/${W}/HEAD.json`,
    `sessmig/v1/worktrees/../HEAD.json`,
    `sessmig/v1/worktrees/./HEAD.json`,
    `sessmig/v1/worktrees/.hidden/HEAD.json`,
    `sessmig/v1/worktrees/${W}/head.json`,
    `sessmig/v1/worktrees/${W}/HEAD.json.tmp-0a1b2c`,
    `sessmig/v1/worktrees/${W}/HEAD.json.lock`,
    `sessmig/v1/worktrees/${W}/x/HEAD.json`,
    `sessmig/v1/worktrees/${W}/checkpoints/${CP}.json.gz`,
    `sessmig/v1/worktrees/${W}/checkpoints/${CP}`,
    `sessmig/v1/worktrees/${W}/checkpoints/20261125T214617123Z-1A2B3C4D.json`,
    `sessmig/v1/worktrees/${W}/checkpoints/20261125T21461712Z-1a2b3c4d.json`,
    `sessmig/v1/worktrees/${W}/checkpoints/${TICKET}.json`,
    `sessmig/v1/worktrees/${W}/checkpoints/sub/${CP}.json`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA}.json`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA.toUpperCase()}.json.gz`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA.slice(1)}.json.gz`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA}0.json.gz`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA}.tar.gz`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA}.json.gz.age`,
    `sessmig/v1/worktrees/${W}/blobs/${NAME}.AGE`,
    `sessmig/v1/worktrees/${W}/code/${SHA}.bundle.gz`,
    `sessmig/v1/worktrees/${W}/code/${SHA}.json.gz`,
    `sessmig/v1/worktrees/${W}/blobs/${SHA}.bundle`,
    `sessmig/v1/worktrees/${W}/tickets/${CP}.json`,
    `sessmig/v1/worktrees/${W}/tickets/${TICKET}`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/manifest.json.gz`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/slots/1000.json.gz`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/slots/007.json.gz`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/slots/-1.json.gz`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/slots/1.json`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/rejected.json.gz`,
    `sessmig/v1/worktrees/${W}/incoming/${TICKET}/slots/rejected.json`,
    `sessmig/v1/worktrees/${W}/incoming/${CP}/manifest.json`,
    `sessmig/v1/worktrees/${'a'.repeat(129)}/HEAD.json`,
  ];

  it.each(nearMisses)('does not parse %j', (key) => {
    expect(parseKey(key)).toBeUndefined();
  });

  it('refuses to build a key from invalid parts', () => {
    expect(() => sealedBlobKey(W, SHA.toUpperCase())).toThrow(/internal/);
    expect(() => sealedBundleKey(W, 'x')).toThrow(/internal/);
    expect(() => markerKey('..')).toThrow(/internal/);
    expect(() => keyOf({ worktree: W, kind: 'upload-slot', id: TICKET })).toThrow(/internal/);
  });
});
