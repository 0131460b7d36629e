import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ExitCode, SessmigError, usageError, remoteDataError, type ErrorCode } from '../../src/util/errors.js';
import { REPO_ROOT } from '../support/host.js';

/** Every .ts file under src/. */
function sources(dir = path.join(REPO_ROOT, 'src')): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? sources(file) : file.endsWith('.ts') ? [file] : [];
  });
}

const text = sources().map((file) => [path.relative(REPO_ROOT, file), readFileSync(file, 'utf8')] as const);
/** `usageError('code'`, `remoteDataError('code'`, `new SessmigError('code'` (a literal code) at every throw site. */
const SITE = /(usageError|remoteDataError|new SessmigError)\(\s*(?:[^'(),]*\?\s*)?'([a-z0-9-]+)'/g;
const sites = text.flatMap(([file, source]) => [...source.matchAll(SITE)].map((match) => ({ file, helper: match[1]!, code: match[2]! })));

describe('the error-code table (src/util/errors.ts ERROR_CODES)', () => {
  it('maps each code to one of the documented exit codes', () => {
    const exits = new Set<number>(Object.values(ExitCode));
    for (const [code, exit] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/);
      expect(exits.has(exit), code).toBe(true);
      expect(exit, code).not.toBe(ExitCode.ok);
    }
  });

  it('every error takes its exit code from the table', () => {
    const table: [ErrorCode, number][] = [
      ['nothing-pushed', ExitCode.failed],
      ['bad-flag', ExitCode.usage],
      ['access-denied', ExitCode.usage],
      ['interrupted', ExitCode.interrupted],
      ['upload-conflict', ExitCode.partial],
    ];
    for (const [code, exit] of table) {
      expect(new SessmigError(code, 'm').exitCode, code).toBe(exit);
      expect(ERROR_CODES[code]).toBe(exit);
    }
    expect(usageError('bad-flag', 'm', 'h')).toMatchObject({ code: 'bad-flag', exitCode: ExitCode.usage, hint: 'h', remoteData: false });
    expect(remoteDataError('manifest-malformed', 'm')).toMatchObject({ exitCode: ERROR_CODES['manifest-malformed'], remoteData: true });
  });

  it('the throw sites found in src use codes of the table, and usageError only usage codes', () => {
    expect(sites.length).toBeGreaterThan(100);
    for (const site of sites) {
      expect(Object.hasOwn(ERROR_CODES, site.code), `${site.file}: ${site.code}`).toBe(true);
      if (site.helper === 'usageError') expect(ERROR_CODES[site.code as ErrorCode], `${site.file}: usageError('${site.code}')`).toBe(ExitCode.usage);
    }
  });

  it('has no code that nothing in src throws or names', () => {
    const all = text.map(([, source]) => source).join('\n');
    const unused = Object.keys(ERROR_CODES).filter((code) => all.split(`'${code}'`).length - 1 < 2); // its table line, and one use
    expect(unused).toEqual([]);
  });
});
