import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { SessmigError } from '../util/errors.js';
import { OBJECT_ID } from '../format/codeSchema.js';

/** What a git bundle file declares in its header (v2 and v3 formats, gitformat-bundle(5)). */
export interface BundleHeader {
  version: 2 | 3;
  objectFormat: 'sha1' | 'sha256';
  /** Commits the receiving repository must have ("-<oid>" lines). */
  prerequisites: string[];
  /** Refs the bundle carries: object id and ref name. */
  refs: { id: string; name: string }[];
}

/** A header longer than this is not one we wrote (10,000 prerequisites take ~ 450 KB). */
const MAX_HEADER_BYTES = 4 * 1024 * 1024;

/** Reads and parses the header of the bundle at `file`; throws `code-bundle-invalid` if it is not one. */
export async function readBundleHeader(file: string): Promise<BundleHeader> {
  const handle = await open(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    let end = -1;
    while (end < 0 && total < MAX_HEADER_BYTES) {
      const buffer = Buffer.alloc(64 * 1024);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
      end = Buffer.concat(chunks).indexOf('\n\n');
    }
    if (end < 0) throw invalid(file, 'no header end');
    const lines = Buffer.concat(chunks).subarray(0, end).toString('utf8').split('\n');
    const signature = lines.shift();
    const version = signature === '# v2 git bundle' ? 2 : signature === '# v3 git bundle' ? 3 : undefined;
    if (!version) throw invalid(file, 'not a git bundle');
    const header: BundleHeader = { version, objectFormat: 'sha1', prerequisites: [], refs: [] };
    for (const line of lines) {
      if (line.startsWith('@')) {
        const [name, value] = line.slice(1).split('=');
        if (name === 'object-format' && (value === 'sha1' || value === 'sha256')) header.objectFormat = value;
        else if (name === 'object-format' || name !== 'filter') throw invalid(file, `unknown capability ${line}`);
        continue;
      }
      if (line.startsWith('-')) {
        const id = line.slice(1).split(' ')[0] ?? '';
        if (!OBJECT_ID.test(id)) throw invalid(file, 'bad prerequisite line');
        header.prerequisites.push(id);
        continue;
      }
      const space = line.indexOf(' ');
      const id = line.slice(0, space);
      if (space < 0 || !OBJECT_ID.test(id)) throw invalid(file, 'bad ref line');
      header.refs.push({ id, name: line.slice(space + 1) });
    }
    return header;
  } finally {
    await handle.close();
  }
}

/** sha256 (hex) and size of a file, streamed. */
export async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await pipeline(createReadStream(file), async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  });
  return { sha256: hash.digest('hex'), bytes };
}

function invalid(file: string, why: string): SessmigError {
  return new SessmigError('code-bundle-invalid', `${file} is not a usable git bundle (${why})`, {
    hint: 'the code leg in the remote is damaged; push the code again from the source host',
  });
}
