/**
 * Throughput of the streaming blob scanner (src/blob/jsonScan.ts) as push uses it: blobHooks plus
 * the normalized hash, 64 KiB chunks. Two documents of about SCAN_MB MiB (default 64), made from the
 * real opencode exports in test/fixtures/blobs: "messages" repeats their messages (the usual mix
 * of keys, short strings, numbers and literals), "text" inflates one text part (long strings, the
 * shape of a large session). Prints MB/s of CPU time (user + system: steadier than wall time on a
 * shared machine), the best of SCAN_REPEAT runs (default 5) per document.
 *
 *   node --import ./bench/register.mjs bench/scanThroughput.ts
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsonScanner } from '../src/util/jsonScan.js';
import { blobHooks } from '../src/blob/sessionBlob.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, '..', 'test', 'fixtures', 'blobs');
const targetBytes = Number(process.env.SCAN_MB ?? 64) * 1024 * 1024;
const repeat = Number(process.env.SCAN_REPEAT ?? 5);
const CHUNK = 64 * 1024;

const blobs = ['tools', 'task', 'child'].map((name) => JSON.parse(readFileSync(path.join(fixtures, `${name}.json`), 'utf8')) as { info: unknown; messages: unknown[] });

function messagesDocument(): Buffer {
  const pool = blobs.flatMap((blob) => blob.messages);
  const messages: unknown[] = [];
  let size = 0;
  for (let i = 0; size < targetBytes; i++) {
    const message = pool[i % pool.length]!;
    messages.push(message);
    size += JSON.stringify(message, null, 2).length;
  }
  return Buffer.from(`${JSON.stringify({ info: blobs[0]!.info, messages }, null, 2)}\n`);
}

function textDocument(): Buffer {
  const line = 'The quick brown fox jumps over the lazy dog — "quoted" \\ tab\there; é 😀 0123456789.\n';
  const text = line.repeat(Math.ceil(targetBytes / Buffer.byteLength(line)));
  const message = { info: { id: 'msg_1', role: 'assistant' }, parts: [{ type: 'text', text }] };
  return Buffer.from(`${JSON.stringify({ info: blobs[0]!.info, messages: [message] }, null, 2)}\n`);
}

/** CPU time (user + system, ms) of one scan: steadier than wall time on a shared machine. */
async function scanOnce(doc: Buffer): Promise<number> {
  const { hooks } = blobHooks();
  const scanner = new JsonScanner(hooks, { normalizedHash: true });
  scanner.on('data', () => undefined);
  const t0 = process.cpuUsage();
  for (let i = 0; i < doc.length; i += CHUNK) {
    await new Promise<void>((resolve, reject) => scanner.write(doc.subarray(i, i + CHUNK), (error) => (error ? reject(error) : resolve())));
  }
  await new Promise<void>((resolve, reject) => {
    scanner.once('error', reject);
    scanner.end(() => resolve());
  });
  scanner.normalizedDigest();
  const used = process.cpuUsage(t0);
  return (used.user + used.system) / 1000;
}

for (const [name, doc] of [
  ['messages', messagesDocument()],
  ['text', textDocument()],
] as const) {
  let best = Infinity;
  for (let i = 0; i < repeat; i++) best = Math.min(best, await scanOnce(doc));
  console.log(`${name.padEnd(9)} ${(doc.length / 1e6).toFixed(1)} MB  best of ${repeat}: ${(best / 1000).toFixed(3)} s = ${(doc.length / 1e6 / (best / 1000)).toFixed(1)} MB/s`);
}
