/**
 * Finding the session in what `opencode export` printed when a plugin printed too (issue 23,
 * item 1). The session is a real opencode 1.18.33 export (test/fixtures/blobs/tools.json); the junk
 * is what plugins print: log lines, JSON lines, text with braces, before and after it.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessmigError } from '../../src/util/errors.js';
import { locateSessionInOutput } from '../../src/opencode/exportOutput.js';

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'blobs', 'tools.json');
let session: string;
let id: string;
let dir: string;

beforeAll(async () => {
  session = await readFile(fixture, 'utf8');
  id = JSON.parse(session).info.id;
  dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-export-output-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function locate(output: string) {
  const file = path.join(dir, 'out');
  await writeFile(file, output);
  return locateSessionInOutput(file, id);
}

async function refusal(output: string): Promise<SessmigError> {
  try {
    await locate(output);
  } catch (error) {
    if (error instanceof SessmigError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('the session in the output of opencode export', () => {
  it('clean output is stored as it is', async () => {
    const found = await locate(session);
    expect(found).toMatchObject({ start: 0, clean: true, junkBefore: 0, junkAfter: 0 });
    expect(found.end).toBe(Buffer.byteLength(session.trimEnd()));
  });

  it('finds the session among what plugins print, before and after, JSON or not', async () => {
    const json = session.trimEnd();
    const cases: Array<[string, string]> = [
      ['[noisy] loaded\n[noisy] loaded\n', ''],
      ['{"level":"info","msg":"plugin loaded"}\n', ''],
      ['[noisy] {not json} [1,2] "quote\n{"info":{"id":"ses_other"},"messages":[]}\n', '\n[noisy] bye\n'],
      ['no newline before it: ', '{"level":"info","msg":"after"}\n'],
      ['{ broken json {{ \n', '\n}'],
      [`${'[noisy] loaded\n'.repeat(2000)}`, ''],
    ];
    for (const [before, after] of cases) {
      const output = `${before}${json}\n${after}`;
      const found = await locate(output);
      expect(found.clean, before).toBe(false);
      expect(Buffer.from(output).subarray(found.start, found.end).toString()).toBe(json);
      expect(found.junkBefore).toBe(before.replace(/\s/g, '').length);
    }
  });

  it('refuses, naming what was printed, when the session cannot be told from the junk', async () => {
    const json = session.trimEnd();
    const twice = await refusal(`[noisy] loaded\n${json}\n${json}\n`);
    expect(twice.code).toBe('export-unclear');
    expect(twice.message).toMatch(new RegExp(`printed session ${id} twice`));
    const cut = await refusal(`[noisy] loaded\n${json.slice(0, 300)}\n[noisy] late\n${json.slice(300)}\n`);
    expect(cut.message).toMatch(/printed \d+ bytes with no JSON object that is session .* \(it starts: '\[noisy\] loaded/);
    expect(cut.message).toMatch(/a plugin writes to stdout/);
    const other = await refusal(`${json.replace(id, 'ses_0000000000000000000000000')}\n`);
    expect(other.code).toBe('export-unclear');
    expect((await refusal('')).message).toMatch(/printed nothing/);
  });
});
