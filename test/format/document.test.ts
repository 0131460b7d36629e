import { describe, expect, it } from 'vitest';
import { parseDocument } from '../../src/format/document.js';
import { assertCheckpointId, assertSessionId, assertWorktreeKey, newCheckpointId } from '../../src/format/ids.js';
import { blobKey, checkpointKey, pointerKey } from '../../src/format/layout.js';
import { Manifest, Pointer } from '../../src/format/schema.js';
import { redact } from '../../src/util/redact.js';

const host = { hostId: '0f8fad5b-d9cb-469f-a165-70867728950e', hostname: 'laptop' };
const manifest = {
  formatVersion: 1,
  kind: 'sessmig.checkpoint',
  id: '20261125T214617123Z-1a2b3c4d',
  worktree: 'abc123',
  parent: null,
  createdAt: '2026-11-25T21:46:17.123Z',
  source: { host, worktreeRoot: '/src', opencodeVersion: '1.18.33', sessmigVersion: '0.1.0' },
  sessions: [
    {
      id: 'ses_0123456789abABCDEFGHIJKLMN',
      parentID: null,
      title: 't',
      directory: '/src',
      version: '1.18.33',
      sha256: 'a'.repeat(64),
      contentHash: 'b'.repeat(64),
      rawBytes: 10,
      storedBytes: 5,
      timeUpdated: 1,
      messages: 2,
      busy: false,
    },
  ],
  skipped: [],
  someFutureField: { kept: true },
};

describe('documents', () => {
  it('parses a valid manifest and keeps unknown fields', () => {
    const parsed = parseDocument(Buffer.from(JSON.stringify(manifest)), Manifest, 'm', 1 << 20);
    expect(parsed.sessions[0]!.id).toBe(manifest.sessions[0]!.id);
    expect((parsed as Record<string, unknown>).someFutureField).toEqual({ kept: true });
  });

  it('refuses a future format version with an upgrade message', () => {
    const future = Buffer.from(JSON.stringify({ ...manifest, formatVersion: 2 }));
    expect(() => parseDocument(future, Manifest, 'm', 1 << 20)).toThrow(/format version 2.*upgrade|upgrade/s);
    try {
      parseDocument(future, Manifest, 'm', 1 << 20);
    } catch (error) {
      expect((error as { hint: string }).hint).toMatch(/upgrade sessmig/);
    }
  });

  it('refuses truncated JSON, wrong types and hostile names, naming the field', () => {
    const text = JSON.stringify(manifest);
    expect(() => parseDocument(Buffer.from(text.slice(0, 50)), Manifest, 'm', 1 << 20)).toThrow(/not valid JSON/);
    const badSha = structuredClone(manifest);
    badSha.sessions[0]!.sha256 = '../../etc/passwd';
    expect(() => parseDocument(Buffer.from(JSON.stringify(badSha)), Manifest, 'm', 1 << 20)).toThrow(/sessions\.0\.sha256/);
    const badId = structuredClone(manifest);
    badId.sessions[0]!.id = 'ses_$(rm -rf ~)';
    expect(() => parseDocument(Buffer.from(JSON.stringify(badId)), Manifest, 'm', 1 << 20)).toThrow(/sessions\.0\.id/);
    const badType = { ...manifest, sessions: 'nope' };
    expect(() => parseDocument(Buffer.from(JSON.stringify(badType)), Manifest, 'm', 1 << 20)).toThrow(/sessions/);
  });

  it('refuses a document over its cap, saying so', () => {
    expect(() => parseDocument(Buffer.alloc(2000, 0x20), Pointer, 'pointer', 1000)).toThrow(/exceeds 1000 bytes/);
  });
});

describe('ids and keys', () => {
  it('accepts real ids and refuses hostile ones', () => {
    expect(assertSessionId('ses_0123456789abABCDEFGHIJKLMN')).toBeTruthy();
    for (const bad of ['', 'ses_', 'ses_../../x', '--help', 'ses_0123456789abABCDEFGHIJKLM;', 'SES_0123456789abABCDEFGHIJKLMN']) {
      expect(() => assertSessionId(bad)).toThrow(/not an opencode session id/);
    }
    for (const bad of ['..', '.', '../x', 'a/b', '', '-x', 'x'.repeat(129), 'a b']) {
      expect(() => assertWorktreeKey(bad)).toThrow(/not valid/);
    }
    expect(() => assertCheckpointId('latest')).toThrow(/not valid/);
    expect(assertCheckpointId(newCheckpointId())).toBeTruthy();
  });

  it('builds keys only from valid parts', () => {
    expect(pointerKey('abc')).toBe('sessmig/v1/worktrees/abc/HEAD.json');
    expect(checkpointKey('abc', '20261125T214617123Z-1a2b3c4d')).toBe('sessmig/v1/worktrees/abc/checkpoints/20261125T214617123Z-1a2b3c4d.json');
    expect(() => blobKey('abc', '../x')).toThrow();
    expect(() => pointerKey('../etc')).toThrow();
  });

  it('checkpoint ids sort by creation time', () => {
    const a = newCheckpointId(new Date('2026-01-01T00:00:00Z'));
    const b = newCheckpointId(new Date('2026-01-01T00:00:00.001Z'));
    expect([b, a].sort()).toEqual([a, b]);
  });
});

describe('redact', () => {
  it('removes signatures, credentials, tokens and fragments', () => {
    const url = 'https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAXXX%2F20261125&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok#key=secret';
    const out = redact(`see ${url} and AWS_SECRET_ACCESS_KEY=abc123`);
    expect(out).not.toMatch(/deadbeef|AKIAXXX|tok#|secret|abc123/);
    expect(out).toContain('X-Amz-Signature=REDACTED');
  });
});
