/**
 * The per-destination value checks (src/opencode/acceptance.ts): first through the streaming
 * rebase, then against real builds — for each installed opencode and each crafted value, sessmig
 * refuses a blob exactly when that opencode's own `opencode import` fails on it.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JsonScanner } from '../../src/util/jsonScan.js';
import { blobHooks } from '../../src/blob/sessionBlob.js';
import { assistantErrorNames, NEWEST_KNOWN } from '../../src/opencode/acceptance.js';
import { adaptBlobFor, BlobUnfitError } from '../../src/opencode/adapters.js';
import { startFakeLlm, type FakeLlm } from '../support/fakeLlm.js';
import { createHost, createRepo, type Host } from '../support/host.js';
import { installedOpencode } from '../support/opencodeVersions.js';

/** Rebases `blob` onto `directory` and adapts it for `destination`, as pull does; the refusal or the output. */
async function throughPull(blob: unknown, destination: string, directory = '/dst/app'): Promise<{ out?: any; unfit?: BlobUnfitError }> {
  const { hooks } = blobHooks(directory);
  const adaptation = adaptBlobFor(destination);
  const text = Buffer.from(JSON.stringify(blob, null, 1));
  const chunks: Buffer[] = [];
  for (let i = 0; i < text.length; i += 5) chunks.push(text.subarray(i, i + 5));
  const out: Buffer[] = [];
  try {
    await pipeline(
      Readable.from(chunks),
      new JsonScanner({ ...hooks, ...adaptation.hooks }),
      new Writable({
        write(data: Buffer, _encoding, callback) {
          out.push(data);
          callback();
        },
      }),
    );
  } catch (error) {
    if (error instanceof BlobUnfitError) return { unfit: error };
    throw error;
  }
  return { out: JSON.parse(Buffer.concat(out).toString('utf8')) };
}

/** A small blob shaped like a 1.18.33 export: a user message, an assistant one with a text and a tool part. */
function blob(): any {
  return {
    info: { id: 'ses_1', projectID: 'p', directory: '/src/app', title: 't', version: '1.18.33', time: { created: 10, updated: 20 } },
    messages: [
      { info: { role: 'user', time: { created: 11 }, id: 'msg_1' }, parts: [{ type: 'text', text: 'hi', id: 'prt_1' }] },
      {
        info: { role: 'assistant', time: { created: 12, completed: 13 }, id: 'msg_2' },
        parts: [
          { type: 'text', text: 'ok', time: { start: 12, end: 13 }, id: 'prt_2' },
          { type: 'tool', tool: 'write', state: { status: 'completed', input: { time: { start: -1.5 } }, time: { start: 12, end: 13 } }, id: 'prt_3' },
        ],
      },
    ],
  };
}

describe('what each destination accepts, checked while the blob streams', () => {
  it('lets a current blob through to every version unchanged (tool input keeps its own odd numbers)', async () => {
    for (const version of ['1.3.2', '1.14.41', '1.17.0', '1.17.19', '1.18.33', '9.0.0', 'dev']) {
      const { out, unfit } = await throughPull(blob(), version);
      expect(unfit, version).toBeUndefined();
      expect(out.messages).toEqual(blob().messages);
    }
  });

  it('refuses ContentFilterError below 1.17.11, with the field path and the version that added it', async () => {
    const b = blob();
    b.messages[1].info.error = { name: 'ContentFilterError', data: { message: 'refused' } };
    for (const version of ['1.3.2', '1.14.41', '1.17.0']) {
      const { unfit } = await throughPull(b, version);
      expect(unfit?.fieldPath).toBe('messages[1].info.error.name');
      expect(unfit?.message).toContain(`is "ContentFilterError", an assistant error opencode ${version} does not know (added in opencode 1.17.11)`);
    }
    // A newer 1.x keeps the newest rules; 2.x never gets here (refused before anything is read: versions.ts).
    for (const version of ['1.17.11', '1.18.33', '1.19.0']) expect((await throughPull(b, version)).unfit).toBeUndefined();
    expect(assistantErrorNames('1.17.0')).not.toContain('ContentFilterError');
  });

  it('refuses part types and error names no known version has, except for versions newer than the table', async () => {
    const b = blob();
    b.messages[1].parts[0].type = 'hologram';
    expect((await throughPull(b, '1.18.33')).unfit?.fieldPath).toBe('messages[1].parts[0].type');
    expect((await throughPull(b, '1.3.2')).unfit?.message).toContain('"hologram", a part type opencode 1.3.2 does not know');
    expect((await throughPull(b, '1.99.0')).unfit).toBeUndefined();
    const c = blob();
    c.messages[1].info.error = { name: 'MadeUpError', data: {} };
    expect((await throughPull(c, NEWEST_KNOWN)).unfit?.fieldPath).toBe('messages[1].info.error.name');
  });

  it('from 1.14.34 refuses negative and fractional times, naming each field; 1.3.2 takes them', async () => {
    const cases: Array<[string, (b: any) => void]> = [
      ['info.time.created', (b) => (b.info.time.created = -5)],
      ['info.time.updated', (b) => (b.info.time.updated = 20.5)],
      ['messages[1].info.time.completed', (b) => (b.messages[1].info.time.completed = 13.25)],
      ['messages[1].parts[0].time.start', (b) => (b.messages[1].parts[0].time.start = -1)],
      ['messages[1].parts[1].state.time.end', (b) => (b.messages[1].parts[1].state.time.end = 13.5)],
    ];
    for (const [field, mutate] of cases) {
      const b = blob();
      mutate(b);
      for (const version of ['1.14.34', '1.14.41', '1.17.19', '1.18.33']) {
        const { unfit } = await throughPull(b, version);
        expect(unfit?.fieldPath, `${field} on ${version}`).toBe(field);
        expect(unfit?.message).toContain(`requires a non-negative integer`);
      }
      expect((await throughPull(b, '1.3.2')).unfit, field).toBeUndefined();
    }
  });

  it("a user message's fractional time.created: refused by 1.14.34–1.16, taken from 1.17.0; negative refused everywhere strict", async () => {
    const fractional = blob();
    fractional.messages[0].info.time.created = 11.5;
    expect((await throughPull(fractional, '1.14.41')).unfit?.fieldPath).toBe('messages[0].info.time.created');
    for (const version of ['1.3.2', '1.17.0', '1.18.33']) expect((await throughPull(fractional, version)).unfit, version).toBeUndefined();
    const negative = blob();
    negative.messages[0].info.time.created = -1;
    expect((await throughPull(negative, '1.18.33')).unfit?.fieldPath).toBe('messages[0].info.time.created');
    // The role may come after the time: the check waits for it.
    const late = blob();
    late.messages[1].info = { time: { created: 12.5, completed: 13 }, role: 'assistant', id: 'msg_2' };
    expect((await throughPull(late, '1.18.33')).unfit?.fieldPath).toBe('messages[1].info.time.created');
    const lateUser = blob();
    lateUser.messages[0].info = { time: { created: 11.5 }, role: 'user', id: 'msg_1' };
    expect((await throughPull(lateUser, '1.18.33')).unfit).toBeUndefined();
  });

  it('still collects the facts and rebases the fields it also checks', async () => {
    const { hooks, facts } = blobHooks('/dst/app');
    const adaptation = adaptBlobFor('1.18.33');
    const out: Buffer[] = [];
    await pipeline(
      Readable.from([Buffer.from(JSON.stringify(blob()))]),
      new JsonScanner({ ...hooks, ...adaptation.hooks }),
      new Writable({
        write(data: Buffer, _encoding, callback) {
          out.push(data);
          callback();
        },
      }),
    );
    expect(facts).toMatchObject({ id: 'ses_1', messages: 2, lastAssistantCompleted: true, timeUpdated: 20 });
    expect(JSON.parse(Buffer.concat(out).toString('utf8')).info).toMatchObject({ directory: '/dst/app', projectID: '' });
  });
});

/**
 * Against real builds: a session made by 1.18.33, crafted one value at a time, is imported as is by
 * each installed opencode, and checked by sessmig for that version. Summary diffs are emptied (their
 * shape has its own adapter and matrix, test/e2e/versionMatrix.test.ts).
 */
// 1.17.19 gave the same verdicts as 1.18.33 for every craft (measured), so it is left out here.
const DESTINATIONS = ['1.3.2', '1.14.41', '1.18.33'].map(installedOpencode);
const SOURCE = installedOpencode('1.18.33');

const CRAFTS: Record<string, (b: any) => void> = {
  'ContentFilterError on an assistant message': (b) => {
    assistantOf(b).info.error = { name: 'ContentFilterError', data: { message: 'refused by the provider' } };
  },
  "a fractional user message time.created": (b) => {
    b.messages.find((m: any) => m.info.role === 'user').info.time.created += 0.5;
  },
  'a fractional tool state time.start': (b) => {
    const tool = b.messages.flatMap((m: any) => m.parts).find((p: any) => p.type === 'tool');
    tool.state.time.start += 0.5;
  },
  'a negative session time.created': (b) => {
    b.info.time.created = -5;
  },
  'a part of an unknown type': (b) => {
    const assistant = assistantOf(b);
    assistant.parts.push({ ...assistant.parts[0], id: `${assistant.parts[0].id.slice(0, -3)}zzz`, type: 'hologram' });
  },
};

function assistantOf(b: any): any {
  return b.messages.find((m: any) => m.info.role === 'assistant');
}

describe.skipIf(!SOURCE.bin)('sessmig refuses exactly what each real opencode would import half-way', () => {
  let llm: FakeLlm;
  const hosts: Host[] = [];
  let exported: any;

  beforeAll(async () => {
    llm = await startFakeLlm();
    const source = await createHost('acceptance-src', { llm, opencodeBin: SOURCE.bin });
    hosts.push(source);
    const repo = path.join(source.workDir, 'app');
    await createRepo(repo);
    const { sessionID } = await source.run(repo, 'crafting [[write notes.txt alpha\\nbeta]]');
    exported = await source.exportSession(sessionID);
    expect(exported.messages.flatMap((m: any) => m.parts).some((p: any) => p.type === 'tool')).toBe(true);
  }, 120_000);

  afterAll(async () => {
    for (const host of hosts) await host.cleanup();
    await llm?.close();
  });

  for (const destination of DESTINATIONS) {
    it.skipIf(!destination.bin)(`opencode ${destination.version}`, async () => {
      const host = await createHost(`acceptance-${destination.version}`, { opencodeBin: destination.bin });
      hosts.push(host);
      const repo = path.join(host.workDir, 'app');
      await createRepo(repo);
      const verdicts: string[] = [];
      const expected: string[] = [];
      const outcomes: Array<{ name: string; id: string; imported: boolean; total: { messages: number; parts: number } }> = [];
      let craft = 0;
      for (const [name, mutate] of Object.entries(CRAFTS)) {
        // Fresh ids per craft (the same 26-character shape), so that every import starts clean.
        const suffix = (++craft).toString(36).padStart(2, '0');
        const b = JSON.parse(JSON.stringify(exported).replace(/\b(ses|msg|prt)_([0-9a-f]{12}[0-9A-Za-z]{12})[0-9A-Za-z]{2}\b/g, (_m, kind, body) => `${kind}_${body}${suffix}`));
        for (const m of b.messages) if (m.info.summary?.diffs) m.info.summary.diffs = [];
        if (b.info.summary?.diffs) b.info.summary.diffs = [];
        mutate(b);
        const checked = await throughPull(b, destination.version, repo);
        const file = path.join(host.root, `craft-${craft}.json`);
        await writeFile(file, JSON.stringify({ ...b, info: { ...b.info, directory: repo, projectID: '' } }));
        const imported = await host.opencode(['import', file], { cwd: repo }).then(
          () => true,
          () => false,
        );
        // What opencode did, and what sessmig said it would do.
        expected.push(`${name}: ${imported ? 'imported' : 'refused'}`);
        verdicts.push(`${name}: ${checked.unfit ? 'refused' : 'imported'}`);
        outcomes.push({ name, id: b.info.id, imported, total: { messages: b.messages.length, parts: b.messages.reduce((sum: number, m: any) => sum + m.parts.length, 0) } });
      }
      expect(verdicts).toEqual(expected);
      // One `opencode db` for every craft: a failed import leaves nothing or a partial session.
      const rows = await host.db<{ id: string; messages: number; parts: number }>(
        'SELECT s.id, (SELECT count(*) FROM message m WHERE m.session_id = s.id) AS messages, (SELECT count(*) FROM part p WHERE p.session_id = s.id) AS parts FROM session s',
      );
      for (const { name, id, imported, total } of outcomes) {
        const row = rows.find((r) => r.id === id);
        const counts = { messages: Number(row?.messages ?? 0), parts: Number(row?.parts ?? 0) };
        if (imported) expect(counts, `${name} on ${destination.version}`).toEqual(total);
        else expect(counts.messages < total.messages || counts.parts < total.parts, `${name}: opencode ${destination.version} failed yet kept everything`).toBe(true);
      }
    });
  }
});
