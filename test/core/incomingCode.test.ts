/**
 * The decisions of taking in an upload's code part (src/core/incomingCode.ts), table-driven: which
 * upload manifests are refused before any object is read, and when two code parts count as the
 * same state. The object checks (slots, padding, sha256) run end to end in test/e2e/codeTickets.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { readUploadedCode, sameCode } from '../../src/core/incomingCode.js';
import type { PushTicket } from '../../src/format/ticketSchema.js';

const sha = (c: string) => c.repeat(64);
const oid = (c: string) => c.repeat(40);
const bundle = (c: string, bytes = 1000) => ({ sha256: sha(c), bytes, prerequisites: [], tips: [oid(c)] });
const state = (bundles = [bundle('a'), bundle('b')]) => ({
  formatVersion: 1,
  objectFormat: 'sha1',
  head: oid('1'),
  branch: 'feature',
  index: oid('2'),
  worktree: oid('3'),
  indexTree: oid('4'),
  worktreeTree: oid('5'),
  bundles,
});
const ticket = (code = 2, maxCodeBytes = 16384) =>
  ({ limits: { maxSessions: 1, maxBytes: 16384, maxCodeBytes }, urls: { manifest: {}, slots: [], code: Array.from({ length: code }, () => ({})) } }) as unknown as PushTicket;

describe('readUploadedCode', () => {
  const cases: { name: string; manifest: Record<string, unknown>; ticket?: PushTicket; refused?: RegExp; uploads?: number }[] = [
    { name: 'no code at all', manifest: {}, uploads: undefined },
    { name: 'a code part, nothing uploaded (the chain is in the remote)', manifest: { code: state() }, uploads: 0 },
    { name: 'one new bundle in slot 0', manifest: { code: state(), codeUploads: [{ slot: 0, sha256: sha('b') }] }, uploads: 1 },
    { name: 'uploads without a code part', manifest: { codeUploads: [{ slot: 0, sha256: sha('b') }] }, refused: /carries no code part/ },
    { name: 'a bundle the chain does not name', manifest: { code: state(), codeUploads: [{ slot: 0, sha256: sha('c') }] }, refused: /which its code part does not name/ },
    { name: 'a slot twice', manifest: { code: state(), codeUploads: [{ slot: 0, sha256: sha('a') }, { slot: 0, sha256: sha('b') }] }, refused: /code slot twice/ },
    { name: 'a slot outside the ticket', manifest: { code: state(), codeUploads: [{ slot: 1, sha256: sha('b') }] }, ticket: ticket(1), refused: /outside the ticket/ },
    { name: 'an older ticket without code slots', manifest: { code: state(), codeUploads: [{ slot: 0, sha256: sha('b') }] }, ticket: ticket(0), refused: /outside the ticket/ },
    { name: 'a bundle twice', manifest: { code: state(), codeUploads: [{ slot: 0, sha256: sha('b') }, { slot: 1, sha256: sha('b') }] }, refused: /code bundle twice/ },
    { name: 'a bundle over the cap', manifest: { code: state([bundle('a'), bundle('b', 20000)]), codeUploads: [{ slot: 0, sha256: sha('b') }] }, refused: /over the ticket's cap of 16384/ },
    { name: 'a newer code format', manifest: { code: { ...state(), formatVersion: 9 } }, refused: /code part is unreadable: .*format 9/ },
    { name: 'a malformed code part', manifest: { code: { ...state(), head: 'HEAD' } }, refused: /code part is unreadable/ },
    { name: 'malformed codeUploads', manifest: { code: state(), codeUploads: [{ slot: -1, sha256: sha('b') }] }, refused: /codeUploads are invalid/ },
  ];
  for (const item of cases) {
    it(item.name, () => {
      const read = () => readUploadedCode({ id: '20261125T214617123Z-5e6f7a8b', ...item.manifest }, item.ticket ?? ticket());
      if (item.refused) {
        expect(read).toThrow(item.refused);
      } else {
        expect(read()?.uploads.length).toBe(item.uploads);
      }
    });
  }
});

describe('sameCode', () => {
  const a = { head: oid('1'), indexTree: oid('4'), worktreeTree: oid('5') };
  it.each([
    ['equal states', a, { ...a }, true],
    ['another head', a, { ...a, head: oid('9') }, false],
    ['another index', a, { ...a, indexTree: oid('9') }, false],
    ['another working tree', a, { ...a, worktreeTree: oid('9') }, false],
    ['one absent', a, undefined, false],
    ['both absent', undefined, undefined, true],
  ] as const)('%s', (_name, left, right, same) => {
    expect(sameCode(left, right)).toBe(same);
  });
});
