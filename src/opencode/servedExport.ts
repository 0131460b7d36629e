import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { assertSessionId } from '../format/ids.js';
import type { Opencode } from './opencode.js';
import { readBlob } from './blobReader.js';
import type { OpencodeServer } from './server.js';
import { sqlString } from './todos.js';

/**
 * `opencode serve` encodes messages and parts through opencode's schemas, and leaves out what those
 * do not list: measured on 1.18.33, `synthetic: true` of a user `file` part (an attachment), which
 * `opencode export` prints (it prints each row's JSON as stored). A session exported through the
 * server would lose it in the blob — silently, and with a content hash that differs from the CLI
 * export's, so the next push through the CLI would take it for changed.
 *
 * So each session exported through the server is checked against opencode's database: every
 * message and part row's JSON size (`length(data)`, one `opencode db` for all sessions, asked while
 * the server starts) must equal the size of the served object without its ids (opencode stores
 * compact JSON: the same value has the same size whatever its key order). A session where any row
 * differs is exported again through `opencode export`. A session that changes between the two
 * reads (opencode still writing) is exported through the CLI as well: correct, only slower.
 */
export class CheckedServerExporter {
  constructor(
    private readonly server: OpencodeServer,
    private readonly opencode: Opencode,
    private readonly sizes: Promise<Map<string, number>>,
    /** Called for each session that went through the CLI instead (for a note). */
    private readonly onFallback: (id: string) => void = () => undefined,
    /**
     * Sessions exported through the CLI straight away: large ones, whose check would parse each
     * message whole in memory (a 300 MB text part is 300 MB here) — `opencode export` needs no check.
     */
    private readonly direct: Set<string> = new Set(),
  ) {
    sizes.catch(() => undefined); // awaited per export; a failure means: export through the CLI
  }

  async exportSession(id: string): Promise<Readable> {
    assertSessionId(id);
    if (this.direct.has(id)) return this.opencode.exportSession(id);
    const file = path.join(this.opencode.options.tempDir, `served-${randomBytes(6).toString('hex')}.json`);
    await this.server.exportToFile(id, file);
    let faithful = false;
    try {
      faithful = await sameSizes(file, await this.sizes);
    } catch {
      faithful = false;
    }
    if (!faithful) {
      await rm(file, { force: true });
      this.onFallback(id);
      return this.opencode.exportSession(id);
    }
    const stream = createReadStream(file);
    stream.on('close', () => void rm(file, { force: true }));
    return stream;
  }
}

/** JSON sizes of every message and part row of these sessions, by row id (one `opencode db`). */
export async function readRowSizes(opencode: Opencode, ids: string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (ids.length === 0) return out;
  const list = ids.map((id) => sqlString(assertSessionId(id))).join(', ');
  const rows = await opencode.query(
    `SELECT id, length(CAST(data AS BLOB)) AS bytes FROM message WHERE session_id IN (${list}) UNION ALL SELECT id, length(CAST(data AS BLOB)) AS bytes FROM part WHERE session_id IN (${list})`,
  );
  for (const row of rows as { id?: unknown; bytes?: unknown }[]) {
    if (typeof row.id === 'string' && typeof row.bytes === 'number') out.set(row.id, row.bytes);
  }
  return out;
}

async function sameSizes(file: string, sizes: Map<string, number>): Promise<boolean> {
  const blob = readBlob(file);
  try {
    for await (const piece of blob) {
      if (piece.kind !== 'message') continue;
      const { info, parts } = piece.value as { info?: Record<string, unknown>; parts?: Record<string, unknown>[] };
      if (!info || !Array.isArray(parts)) return false;
      if (!sizeMatches(info, sizes)) return false;
      for (const part of parts) if (!sizeMatches(part, sizes)) return false;
    }
    return true;
  } finally {
    await blob.return(undefined).catch(() => undefined);
  }
}

function sizeMatches(value: Record<string, unknown>, sizes: Map<string, number>): boolean {
  const { id, sessionID: _sessionID, messageID: _messageID, ...data } = value;
  return typeof id === 'string' && sizes.get(id) === Buffer.byteLength(JSON.stringify(data));
}
