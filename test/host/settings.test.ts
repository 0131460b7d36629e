/**
 * Where each setting comes from: flag > environment > git config > default, one row per case.
 */
import { describe, expect, it } from 'vitest';
import { parseGitConfigZ, resolveSettings, type SettingsInput } from '../../src/host/settings.js';

const base: SettingsInput = { flags: {}, env: {}, git: new Map(), defaultRemoteFolder: '/home/u/.local/share/sessmig/remote' };
const git = (entries: Record<string, string>) => new Map(Object.entries(entries));

type Row = [name: string, input: Partial<SettingsInput>, setting: 'remote' | 'worktree' | 'encrypt' | 'opencode', value: unknown, source: string];

const rows: Row[] = [
  ['remote: default', {}, 'remote', 'file:///home/u/.local/share/sessmig/remote', 'default'],
  ['remote: git config', { git: git({ 'sessmig.remote': 's3://b/git' }) }, 'remote', 's3://b/git', 'git-config'],
  ['remote: env beats git config', { env: { SESSMIG_REMOTE: 's3://b/env' }, git: git({ 'sessmig.remote': 's3://b/git' }) }, 'remote', 's3://b/env', 'env'],
  ['remote: flag beats env and git config', { flags: { remote: 's3://b/flag' }, env: { SESSMIG_REMOTE: 's3://b/env' }, git: git({ 'sessmig.remote': 's3://b/git' }) }, 'remote', 's3://b/flag', 'flag'],
  ['remote: an empty variable is unset', { env: { SESSMIG_REMOTE: '' }, git: git({ 'sessmig.remote': 's3://b/git' }) }, 'remote', 's3://b/git', 'git-config'],
  ['worktree: default is null (the project id)', {}, 'worktree', null, 'default'],
  ['worktree: git config', { git: git({ 'sessmig.worktree': 'app-main' }) }, 'worktree', 'app-main', 'git-config'],
  ['worktree: env', { env: { SESSMIG_WORKTREE: 'env-key' }, git: git({ 'sessmig.worktree': 'app-main' }) }, 'worktree', 'env-key', 'env'],
  ['worktree: flag', { flags: { worktree: 'flag-key' }, env: { SESSMIG_WORKTREE: 'env-key' } }, 'worktree', 'flag-key', 'flag'],
  ['encrypt: default off', {}, 'encrypt', false, 'default'],
  ['encrypt: git config true', { git: git({ 'sessmig.encrypt': 'true' }) }, 'encrypt', true, 'git-config'],
  ['encrypt: git config yes', { git: git({ 'sessmig.encrypt': 'yes' }) }, 'encrypt', true, 'git-config'],
  ['encrypt: env 0 switches git config off', { env: { SESSMIG_ENCRYPT: '0' }, git: git({ 'sessmig.encrypt': 'true' }) }, 'encrypt', false, 'env'],
  ['encrypt: flag on beats env 0', { flags: { encrypt: true }, env: { SESSMIG_ENCRYPT: '0' } }, 'encrypt', true, 'flag'],
  ['encrypt: flag absent (false) is not a flag', { flags: { encrypt: false }, git: git({ 'sessmig.encrypt': '1' }) }, 'encrypt', true, 'git-config'],
  ['opencode: default', {}, 'opencode', 'opencode', 'default'],
  ['opencode: git config', { git: git({ 'sessmig.opencode': '/opt/oc' }) }, 'opencode', '/opt/oc', 'git-config'],
  ['opencode: env', { env: { SESSMIG_OPENCODE: '/env/oc' }, git: git({ 'sessmig.opencode': '/opt/oc' }) }, 'opencode', '/env/oc', 'env'],
  ['opencode: flag', { flags: { opencode: '/flag/oc' }, env: { SESSMIG_OPENCODE: '/env/oc' } }, 'opencode', '/flag/oc', 'flag'],
];

describe('resolveSettings', () => {
  it.each(rows)('%s', (_name, input, setting, value, source) => {
    const resolved = resolveSettings({ ...base, ...input });
    expect(resolved[setting].value).toEqual(value);
    expect(resolved[setting].source).toBe(source);
  });

  it('names where a value came from', () => {
    const resolved = resolveSettings({ ...base, env: { SESSMIG_REMOTE: 's3://b/e' }, git: git({ 'sessmig.worktree': 'w' }) });
    expect(resolved.remote.from).toBe('SESSMIG_REMOTE');
    expect(resolved.worktree.from).toBe('sessmig.worktree');
    expect(resolved.opencode.from).toBeUndefined();
  });

  it('refuses a value that is not a boolean, naming where it came from', () => {
    expect(() => resolveSettings({ ...base, git: git({ 'sessmig.encrypt': 'maybe' }) })).toThrow(/sessmig\.encrypt/);
    expect(() => resolveSettings({ ...base, env: { SESSMIG_ENCRYPT: 'maybe' } })).toThrow(/SESSMIG_ENCRYPT/);
  });
});

describe('parseGitConfigZ', () => {
  it('reads key\\nvalue\\0 records; lowercases keys; the last value wins; a bare key is empty', () => {
    const parsed = parseGitConfigZ('sessmig.remote\ns3://a/x\0sessmig.Remote\ns3://b/y\0sessmig.encrypt\0sessmig.opencode\n/path with\nnewline\0');
    expect(parsed.get('sessmig.remote')).toBe('s3://b/y');
    expect(parsed.get('sessmig.encrypt')).toBe('');
    expect(parsed.get('sessmig.opencode')).toBe('/path with\nnewline');
  });
});
