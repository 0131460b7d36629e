/**
 * readBlob's limit per message (src/opencode/blobReader.ts): a message over `maxMessageBytes` is
 * neither kept nor parsed — it comes back with its size only — while every other piece is parsed as
 * before. This is what keeps pull's field-by-field check (fidelity.ts) from holding a huge message
 * several times over in memory (1.4 GB RSS for a 300 MB session, measured by `npm run bench`).
 * Pure (no process): a blob written to a temp file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBlob, type BlobPiece } from '../../src/opencode/blobReader.js';

const S = 'ses_0000000000001111111111aaaa';
let dir: string;
let file: string;
let bigText: string;

function message(index: number, text: string) {
  const id = `msg_00000000000${index}1111111111aaaa`;
  return { info: { id, sessionID: S, role: 'assistant' }, parts: [{ id: `prt_00000000000${index}1111111111aaaa`, sessionID: S, messageID: id, type: 'text', text }] };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-blob-reader-'));
  file = path.join(dir, 'blob.json');
  bigText = 'word '.repeat(6 * 1024 * 1024); // 30 MiB
  // Pretty-printed, as `opencode export` prints it; the big message in the middle.
  await writeFile(file, JSON.stringify({ info: { id: S, title: 't' }, messages: [message(1, 'small one'), message(2, bigText), message(3, 'small three')] }, null, 2));
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function pieces(options: { maxMessageBytes?: number; chunkBytes?: number }): Promise<BlobPiece[]> {
  const out: BlobPiece[] = [];
  for await (const piece of readBlob(file, options)) out.push(piece);
  return out;
}

describe('readBlob with maxMessageBytes', () => {
  it('yields a message over the limit by its size only, and every other piece parsed', async () => {
    for (const chunkBytes of [64 * 1024, 1024 * 1024]) {
      const got = await pieces({ maxMessageBytes: 1024 * 1024, chunkBytes });
      expect(got.map((p) => p.kind)).toEqual(['info', 'message', 'message', 'message']);
      expect(got[1]).toMatchObject({ index: 0, value: message(1, 'small one') });
      const big = got[2] as Extract<BlobPiece, { kind: 'message' }>;
      expect(big.index).toBe(1);
      expect(big.value).toBeUndefined();
      // its bytes as they stand in the file (pretty-printed)
      expect(big.oversized).toBe(Buffer.byteLength(JSON.stringify(message(2, bigText), null, 2).replaceAll('\n', '\n    ')));
      expect(got[3]).toMatchObject({ index: 2, value: message(3, 'small three') });
    }
  });

  it('without a limit, the large message is parsed as before', async () => {
    const got = await pieces({});
    expect((got[2] as Extract<BlobPiece, { kind: 'message' }>).value).toEqual(message(2, bigText));
    expect((got[2] as Extract<BlobPiece, { kind: 'message' }>).oversized).toBeUndefined();
  });
});
