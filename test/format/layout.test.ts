/** The key layout read back (src/format/layout.ts parseWorktreeKey, splitWorktreeKey): every name the format defines, and names it does not. */
import { describe, expect, it } from 'vitest';
import { codeBundleKey } from '../../src/format/codeLayout.js';
import { blobKey, carriedFileKey, checkpointKey, parseWorktreeKey, pointerKey, splitWorktreeKey, worktreePrefix, type WorktreeKey } from '../../src/format/layout.js';

const sha = 'a'.repeat(63) + 'b';
const cp = '20261125T214617123Z-1a2b3c4d';

describe('parseWorktreeKey', () => {
  it.each<[string, WorktreeKey | undefined]>([
    ['HEAD.json', { kind: 'pointer', id: '' }],
    ['ENCRYPTION.json', { kind: 'marker', id: '' }],
    [`checkpoints/${cp}.json`, { kind: 'checkpoint', id: cp }],
    [`blobs/${sha}.json.gz`, { kind: 'blob', id: sha }],
    [`blobs/${sha}.pack.gz`, { kind: 'pack', id: sha }],
    [`blobs/${sha}.out.gz`, { kind: 'out', id: sha }],
    [`code/${sha}.bundle`, { kind: 'bundle', id: sha }],
    [`blobs/${sha}.age`, { kind: 'sealed-blob', id: sha }],
    [`code/${sha}.age`, { kind: 'sealed-bundle', id: sha }],
    ['tickets/0123456789abcdef.json', { kind: 'ticket', id: '0123456789abcdef.json' }],
    ['incoming/0123456789abcdef/slots/3.json.gz', { kind: 'upload', id: '0123456789abcdef/slots/3.json.gz' }],
    // Not the format's: wrong id shapes, other suffixes, nesting, case.
    ['checkpoints/not-an-id.json', undefined],
    [`checkpoints/x/${cp}.json`, undefined],
    [`blobs/${sha.toUpperCase()}.json.gz`, undefined],
    [`blobs/${sha.slice(1)}.json.gz`, undefined],
    [`blobs/${sha}.json`, undefined],
    [`blobs/${sha}.zip.gz`, undefined],
    [`blobs/sub/${sha}.json.gz`, undefined],
    [`code/${sha}.bundle.tmp`, undefined],
    [`code/${sha}.json.gz`, undefined],
    ['head.json', undefined],
    ['tickets/', undefined],
    ['notes.txt', undefined],
    ['', undefined],
  ])('%s', (rest, expected) => {
    expect(parseWorktreeKey(rest)).toEqual(expected);
  });

  it('reads back every key the builders make', () => {
    const wt = 'my-worktree';
    const prefix = worktreePrefix(wt);
    const cases: [string, WorktreeKey][] = [
      [pointerKey(wt), { kind: 'pointer', id: '' }],
      [checkpointKey(wt, cp), { kind: 'checkpoint', id: cp }],
      [blobKey(wt, sha), { kind: 'blob', id: sha }],
      [carriedFileKey(wt, sha, 'pack'), { kind: 'pack', id: sha }],
      [carriedFileKey(wt, sha, 'out'), { kind: 'out', id: sha }],
      [codeBundleKey(wt, sha), { kind: 'bundle', id: sha }],
    ];
    for (const [key, expected] of cases) {
      expect(key.startsWith(prefix)).toBe(true);
      expect(parseWorktreeKey(key.slice(prefix.length))).toEqual(expected);
      expect(splitWorktreeKey(key)).toEqual({ worktree: wt, rest: key.slice(prefix.length) });
    }
  });
});

describe('splitWorktreeKey', () => {
  it.each<[string, { worktree: string; rest: string } | undefined]>([
    ['sessmig/v1/worktrees/abc/HEAD.json', { worktree: 'abc', rest: 'HEAD.json' }],
    ['sessmig/v1/worktrees/abc/blobs/x', { worktree: 'abc', rest: 'blobs/x' }],
    ['sessmig/v1/worktrees/abc', undefined],
    ['sessmig/v1/worktrees//HEAD.json', undefined],
    ['sessmig/v1/worktrees/../HEAD.json', undefined],
    ['sessmig/v1/worktrees/-bad/HEAD.json', undefined],
    ['sessmig/v1/other/abc/HEAD.json', undefined],
    ['elsewhere/abc/HEAD.json', undefined],
  ])('%s', (key, expected) => {
    expect(splitWorktreeKey(key)).toEqual(expected);
  });
});
