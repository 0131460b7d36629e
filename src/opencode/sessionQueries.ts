import { z } from 'zod';
import { assertSessionId } from '../format/ids.js';
import type { Opencode } from './opencode.js';
import { sqlString } from './todos.js';

/**
 * The core's three reads of opencode's database that are not listings, todos or shares, as
 * statements of opencode 1.x's schema (`session`, `message`, `part`; each row's JSON in `data`;
 * checked on 1.14.41 and 1.18.33). The core asks the adapter (OpencodeAdapter); OpencodeCli
 * answers with these statements, a fake without SQL.
 */
export interface SessionQueries {
  /**
   * Sessions in `root` or below with an assistant message still running (no `time.completed`):
   * opencode is mid-turn there, in this or another opencode process.
   */
  busySessions(root: string): Promise<string[]>;
  /** The part fields a pull rewrites onto this checkout, by part id (parts absent: not in the database). */
  partFields(partIds: string[]): Promise<Map<string, PartFields>>;
  /** Message counts of these sessions (absent: no such session). */
  messageCounts(ids: string[]): Promise<Map<string, number>>;
}

/** A part's rewritten fields as opencode stores them (`files`: the JSON text of `data.files`; each null when absent). */
export interface PartFields {
  files: unknown;
  filepath: unknown;
  outputPath: unknown;
}

export const busySessions = (opencode: SessionQueries, root: string) => opencode.busySessions(root);
export const partFields = (opencode: SessionQueries, partIds: string[]) => opencode.partFields(partIds);
export const messageCounts = (opencode: SessionQueries, ids: string[]) => opencode.messageCounts(ids);

/** Statements over this many ids are sent in pieces (SQLite's default limit is far above; the command line is not). */
const BATCH = 500;

export async function selectBusySessions(opencode: Opencode, root: string): Promise<string[]> {
  const rows = await opencode.query(
    `SELECT DISTINCT s.id AS id FROM session s JOIN message m ON m.session_id = s.id
     WHERE (s.directory = ${sqlString(root)} OR substr(s.directory, 1, ${root.length + 1}) = ${sqlString(`${root}/`)})
       AND json_extract(m.data, '$.role') = 'assistant' AND json_extract(m.data, '$.time.completed') IS NULL`,
  );
  return z.array(z.object({ id: z.string() })).parse(rows).map((row) => row.id);
}

const PartRow = z.object({ id: z.string(), files: z.unknown(), filepath: z.unknown(), outputPath: z.unknown() });

export async function selectPartFields(opencode: Opencode, partIds: string[]): Promise<Map<string, PartFields>> {
  const fields = new Map<string, PartFields>();
  for (let i = 0; i < partIds.length; i += BATCH) {
    const list = partIds.slice(i, i + BATCH).map(sqlString).join(', ');
    const rows = await opencode.query(
      `SELECT id, json_extract(data, '$.files') AS files, json_extract(data, '$.state.metadata.filepath') AS filepath, json_extract(data, '$.state.metadata.outputPath') AS outputPath FROM part WHERE id IN (${list})`,
    );
    for (const { id, files, filepath, outputPath } of z.array(PartRow).parse(rows)) fields.set(id, { files: files ?? null, filepath: filepath ?? null, outputPath: outputPath ?? null });
  }
  return fields;
}

export async function selectMessageCounts(opencode: Opencode, ids: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < ids.length; i += BATCH) {
    const list = ids.slice(i, i + BATCH).map((id) => `'${assertSessionId(id)}'`).join(',');
    const rows = await opencode.query(`SELECT s.id AS id, (SELECT count(*) FROM message m WHERE m.session_id = s.id) AS messages FROM session s WHERE s.id IN (${list})`);
    for (const row of z.array(z.object({ id: z.string(), messages: z.number() })).parse(rows)) counts.set(row.id, row.messages);
  }
  return counts;
}
