import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { composeHooks, pathRebaseHooks, rebasePath, sessionRefHooks } from '../../src/blob/sessionRefs.js';
import { adaptBlobFor } from '../../src/opencode/adapters.js';

const SRC = '/home/a/app';
const DST = '/srv/b/moved/app';
const T1 = 'cb7cd64e2ac629d4e7a9895b884213116c64e0ba';
const T2 = '3c80a55d7974eab552300a24c45bc3b9907a8c04';
const T3 = '8732a7e9aaae4f2a3aad39cc89d9735f48092eeb';
const OUT = '/home/a/.local/share/opencode/tool-output/tool_2295a5ca6001Nw7gessaelOqC3';

/** The shape of a real 1.18.33 export (key order included: `files` before the part's `id`). */
const blob = {
  info: { id: 'ses_0123456789abABCDEFGHIJKLMN', directory: SRC, projectID: 'p', title: 't', version: '1.18.33', time: { created: 1, updated: 2 }, revert: { messageID: 'msg_1', snapshot: T3 } },
  messages: [
    {
      info: { id: 'msg_1', role: 'assistant', path: { cwd: SRC, root: SRC }, time: { created: 1, completed: 2 } },
      parts: [
        { snapshot: T1, type: 'step-start', id: 'prt_1' },
        {
          type: 'tool',
          tool: 'write',
          callID: 'c1',
          state: { status: 'completed', input: { filePath: `${SRC}/notes.txt` }, output: `wrote ${SRC}/notes.txt`, metadata: { filepath: `${SRC}/notes.txt`, exists: false }, title: 'notes.txt', time: { start: 1, end: 2 } },
          id: 'prt_2',
        },
        { type: 'step-finish', snapshot: T2, id: 'prt_3' },
        { type: 'patch', hash: T1, files: [`${SRC}/notes.txt`, '/etc/elsewhere.txt', `${SRC}/sub/dir/x.ts`], id: 'prt_4' },
        { type: 'tool', tool: 'bash', callID: 'c2', state: { status: 'completed', input: { command: 'seq 1 30000' }, output: `Full output saved to: ${OUT}`, metadata: { truncated: true, outputPath: OUT } }, id: 'prt_5' },
        { type: 'text', text: `see ${SRC}/notes.txt`, id: 'prt_6' },
      ],
    },
  ],
};

async function run(hooks: import('../../src/util/jsonScan.js').ScanHooks, text: string, chunk = 5): Promise<string> {
  const buf = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    new JsonScanner(hooks),
    new Writable({
      write(c, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out).toString('utf8');
}

describe('rebasePath', () => {
  it('moves paths under the source root and leaves others', () => {
    expect(rebasePath(`${SRC}/a/b.txt`, SRC, DST)).toBe(`${DST}/a/b.txt`);
    expect(rebasePath(SRC, SRC, DST)).toBe(DST);
    expect(rebasePath('/home/a/app-other/x', SRC, DST)).toBeUndefined();
    expect(rebasePath('/etc/passwd', SRC, DST)).toBeUndefined();
    expect(rebasePath('relative/x', SRC, DST)).toBeUndefined();
    expect(rebasePath(`${SRC}/x`, SRC, SRC)).toBeUndefined();
  });
});

describe('sessionRefHooks', () => {
  it('collects tree ids (parts and a pending revert) and tool-output paths, whatever the chunking', async () => {
    for (const chunk of [1, 3, 64, 4096]) {
      const { hooks, refs } = sessionRefHooks();
      const text = JSON.stringify(blob, null, 2);
      expect(await run(hooks, text, chunk)).toBe(text);
      expect(refs.trees.sort()).toEqual([T1, T2, T3].sort());
      expect(refs.outputPaths).toEqual([OUT]);
    }
  });
});

describe('pathRebaseHooks with the rebase and the adapters', () => {
  it('rewrites patch files, tool filepath and a carried outputPath; nothing else changes', async () => {
    const target = '/srv/b/data/opencode/tool-output/tool_2295a5ca6001Nw7gessaelOqC3';
    const rewritten = new Map();
    const rebase = pathRebaseHooks({ from: SRC, to: DST, outputs: new Map([[OUT, target]]), rewritten });
    const hooks = composeHooks(blobHooks(DST).hooks, adaptBlobFor('1.18.33').hooks, rebase.hooks);
    const out = JSON.parse(await run(hooks, JSON.stringify(blob, null, 2), 7));
    const expected = structuredClone(blob) as any;
    expected.info.directory = DST;
    expected.info.projectID = '';
    expected.messages[0].parts[1].state.metadata.filepath = `${DST}/notes.txt`;
    expected.messages[0].parts[3].files = [`${DST}/notes.txt`, '/etc/elsewhere.txt', `${DST}/sub/dir/x.ts`];
    expected.messages[0].parts[4].state.metadata.outputPath = target;
    expect(out).toEqual(expected);
    expect(rebase.rewritten).toEqual([
      { partId: 'prt_2', field: 'filepath', value: `${DST}/notes.txt` },
      { partId: 'prt_4', field: 'files', index: 0, value: `${DST}/notes.txt` },
      { partId: 'prt_4', field: 'files', index: 2, value: `${DST}/sub/dir/x.ts` },
      { partId: 'prt_5', field: 'outputPath', value: target },
    ]);
  });

  it('leaves an outputPath whose file did not travel, and changes nothing when the roots are equal', async () => {
    const rebase = pathRebaseHooks({ from: SRC, to: SRC, outputs: new Map() });
    const text = JSON.stringify(blob);
    expect(await run(composeHooks(blobHooks(SRC).hooks, rebase.hooks), text)).toBe(text.replace('"projectID":"p"', '"projectID":""'));
    expect(rebase.rewritten).toEqual([]);
  });
});
