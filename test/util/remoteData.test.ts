/**
 * Which errors say "the remote holds bad data" (util/errors.ts `remoteData`): `sessmig check`
 * reports those as findings and goes on, and aborts on any other (the remote cannot be reached).
 * Each row raises the error the way the code does; none needs a process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { readCodeState } from '../../src/code/codeLeg.js';
import { readManifest, readPointer } from '../../src/core/remoteStore.js';
import { UserKey } from '../../src/crypto/keys.js';
import { parseDocument, serializeDocument } from '../../src/format/document.js';
import { pointerKey } from '../../src/format/layout.js';
import { LocalRemote } from '../../src/remote/localRemote.js';
import { objectTooLarge, notFound } from '../../src/remote/remoteErrors.js';
import { SessmigError, usageError } from '../../src/util/errors.js';
import { openBytes } from '../../src/util/seal.js';

async function caught(fn: () => unknown): Promise<SessmigError> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof SessmigError) return error;
    throw error;
  }
  throw new Error('no error');
}

const Doc = z.looseObject({ formatVersion: z.literal(1), kind: z.literal('x') });
const host = { hostId: '0f8fad5b-d9cb-469f-a165-70867728950e', hostname: 'laptop' };

describe('remoteData', () => {
  it.each<[string, () => Promise<SessmigError>, string, boolean]>([
    ['a document over its cap', () => caught(() => parseDocument(Buffer.alloc(20, 32), Doc, 'd', 10)), 'document-too-large', true],
    ['a document that is not JSON', () => caught(() => parseDocument(Buffer.from('{'), Doc, 'd', 100)), 'document-malformed', true],
    ['a document of the wrong shape', () => caught(() => parseDocument(Buffer.from('{"formatVersion":1,"kind":"y"}'), Doc, 'd', 100)), 'document-invalid', true],
    ['a document of a newer format', () => caught(() => parseDocument(Buffer.from('{"formatVersion":9,"kind":"x"}'), Doc, 'd', 100)), 'format-too-new', true],
    ['an object over the read cap', async () => objectTooLarge('k', 2, 1), 'document-too-large', true],
    ['a sealed object that fails authentication', async () => caught(async () => openBytes(Buffer.from('age-encryption.org/v1\nnot really'), (await UserKey.generate()).reveal(), 'x')), 'sealed-unreadable', true],
    ['a malformed code part', () => caught(() => readCodeState({ id: 'c', code: { formatVersion: 1 } })), 'code-state-malformed', true],
    ['a newer code part', () => caught(() => readCodeState({ id: 'c', code: { formatVersion: 99 } })), 'code-format-newer', true],
    ['an absent object (a failure to read, not a finding)', async () => notFound('k'), 'not-found', false],
    ['a usage error', async () => usageError('bad-flag', 'm'), 'bad-flag', false],
  ])('%s', async (_name, raise, code, remoteData) => {
    const error = await raise();
    expect(error.code).toBe(code);
    expect(error.remoteData).toBe(remoteData);
  });

  it('the pointer and manifest readers flag what they find wrong', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-data-'));
    try {
      const remote = new LocalRemote(dir, 'file://x');
      const at = '2026-11-25T21:46:17.123Z';
      await remote.put(pointerKey('wt'), serializeDocument({ formatVersion: 1, kind: 'sessmig.pointer', worktree: 'other', generation: 1, checkpoint: '20261125T214617123Z-1a2b3c4d', owner: null, updatedAt: at, updatedBy: host }));
      const mismatch = await caught(() => readPointer(remote, 'wt'));
      expect([mismatch.code, mismatch.remoteData]).toEqual(['pointer-mismatch', true]);
      const missing = await caught(() => readManifest(remote, 'wt', '20261125T214617123Z-1a2b3c4d'));
      expect([missing.code, missing.remoteData]).toEqual(['checkpoint-missing', true]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
