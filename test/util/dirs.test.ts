/**
 * Directories compared as directories (src/util/dirs.ts). The Windows forms run through
 * `path.win32` here (Windows itself cannot run on this machine); the symlink case uses the real
 * file system.
 */
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirComparer, dirSpelling, type DirStyle } from '../../src/util/dirs.js';

const posix: DirStyle = { platform: 'posix', caseInsensitive: false };
const win: DirStyle = { platform: 'win32', caseInsensitive: true };
const mac: DirStyle = { platform: 'posix', caseInsensitive: true };

describe('dirSpelling', () => {
  const rows: [DirStyle, string, string][] = [
    [posix, '/src/app', '/src/app'],
    [posix, '/src/app/', '/src/app'],
    [posix, '/src//app/./', '/src/app'],
    [posix, '/src/x/../app', '/src/app'],
    [posix, '/', '/'],
    [mac, '/Users/Me/App/', '/users/me/app'],
    [win, 'C:/src/app', 'c:\\src\\app'],
    [win, 'C:\\src\\app\\', 'c:\\src\\app'],
    [win, 'c:\\SRC\\App', 'c:\\src\\app'],
    [win, 'C:/', 'c:\\'],
    [win, 'C:\\src/app/', 'c:\\src\\app'],
  ];
  it.each(rows)('%o: %s → %s', (style, input, expected) => {
    expect(dirSpelling(input, style)).toBe(expected);
  });
});

describe('DirComparer', () => {
  it('Windows forms: C:/ and C:\\ are the same place, inside works across forms, case folded', () => {
    const dirs = new DirComparer(win, () => {
      throw new Error('no file system');
    });
    expect(dirs.same('C:/src/app', 'C:\\src\\app')).toBe(true);
    expect(dirs.same('C:/src/app/', 'c:\\SRC\\APP')).toBe(true);
    expect(dirs.inside('C:\\src\\app', 'C:/src/app/sub/dir')).toBe(true);
    expect(dirs.inside('C:\\src\\app', 'C:/src/app-wt')).toBe(false);
    expect(dirs.inside('C:\\src\\app', 'D:/src/app')).toBe(false);
    expect(dirs.rebase('C:/src/app/Sub', 'C:\\src\\app', 'E:\\work\\app')).toBe('E:\\work\\app\\Sub');
  });

  it('posix: a sibling with a common prefix is not inside; trailing slashes do not matter', () => {
    const dirs = new DirComparer(posix, (dir) => dir);
    expect(dirs.inside('/w/app', '/w/app-wt')).toBe(false);
    expect(dirs.inside('/w/app/', '/w/app/sub/')).toBe(true);
    expect(dirs.same('/w/app/', '/w/app')).toBe(true);
    expect(dirs.rebase('/w/app/sub', '/w/app', '/box/app')).toBe('/box/app/sub');
    expect(dirs.rebase('/elsewhere', '/w/app', '/box/app')).toBeUndefined();
  });

  describe('on the real file system', () => {
    let tmp: string;
    beforeAll(async () => {
      tmp = await mkdtemp(path.join(os.tmpdir(), 'sessmig-dirs-'));
      await mkdir(path.join(tmp, 'real', 'app', 'sub'), { recursive: true });
      await symlink(path.join(tmp, 'real'), path.join(tmp, 'link'));
    });
    afterAll(() => rm(tmp, { recursive: true, force: true }));

    it('a symlinked spelling equals its target, also for a folder below it that is gone', () => {
      const dirs = new DirComparer();
      expect(dirs.same(path.join(tmp, 'link', 'app'), path.join(tmp, 'real', 'app'))).toBe(true);
      expect(dirs.inside(path.join(tmp, 'real', 'app'), path.join(tmp, 'link', 'app', 'sub'))).toBe(true);
      expect(dirs.inside(path.join(tmp, 'real', 'app'), path.join(tmp, 'link', 'app', 'gone', 'deeper'))).toBe(true);
      expect(dirs.same(`${path.join(tmp, 'link', 'app')}/`, path.join(tmp, 'real', 'app'))).toBe(true);
    });
  });
});
