import { describe, expect, it } from 'vitest';
import { SessmigError } from '../../src/util/errors.js';
import { assertKnownOpencode, breaksBetween, checkCompatibility, compareVersions, inRange, isKnownOpencode } from '../../src/opencode/versions.js';

describe('the schema-break table', () => {
  it('compares versions numerically', () => {
    expect(compareVersions('1.14.41', '1.4.0')).toBeGreaterThan(0);
    expect(compareVersions('1.3.2', '1.4.0')).toBeLessThan(0);
    expect(inRange('1.3.2', { below: '1.4.0' })).toBe(true);
    expect(inRange('1.4.0', { below: '1.4.0' })).toBe(false);
    expect(inRange('garbage', { from: '1.0.0' })).toBe(false);
  });

  it('same version: go; no known break: compatible with a note', () => {
    expect(checkCompatibility('1.18.33', '1.18.33').verdict).toBe('same');
    const ok = checkCompatibility('1.14.41', '1.18.33');
    expect(ok).toMatchObject({ verdict: 'compatible', adapted: [] });
    expect(checkCompatibility('1.3.2', '1.2.27')).toMatchObject({ verdict: 'compatible', adapted: [] });
    expect(checkCompatibility('1.18.33', 'dev-build')).toMatchObject({ verdict: 'compatible', note: expect.stringMatching(/cannot compare/) });
  });

  it('legacy diffs into 1.4+: a break that the adapter carries, so compatible once adapted', () => {
    expect(breaksBetween('1.3.2', '1.18.33').map((item) => item.id)).toEqual(['summary-diffs-patch', 'non-negative-integer-times']);
    for (const destination of ['1.4.0', '1.14.41', '1.17.20', '1.18.33']) {
      const adapted = checkCompatibility('1.3.2', destination);
      expect(adapted).toMatchObject({ verdict: 'compatible', adapted: ['summary-diffs-patch'] });
      if (adapted.verdict === 'compatible') {
        expect(adapted.note).toMatch(/imports them once adapted: summary\.diffs before\/after become patch/);
        expect(adapted.note).toContain("opencode drops on import: a user message's model variant");
      }
    }
    expect(checkCompatibility('1.3.2', '1.14.41')).toMatchObject({ checked: ['non-negative-integer-times'] });
    expect(checkCompatibility('1.3.2', '1.4.0')).toMatchObject({ checked: [] });
  });

  it('value breaks that only some sessions hold never refuse the pair: pull checks them session by session', () => {
    const down = checkCompatibility('1.18.33', '1.14.41');
    expect(down).toMatchObject({ verdict: 'compatible', adapted: [], checked: ['assistant-error-content-filter', 'user-time-created-fractional'] });
    if (down.verdict === 'compatible') expect(down.note).toContain('checked per session: sessions with a ContentFilterError are refused one by one');
    expect(checkCompatibility('1.17.19', '1.18.33')).toMatchObject({ verdict: 'compatible', checked: [] });
    expect(checkCompatibility('1.17.11', '1.17.0')).toMatchObject({ verdict: 'compatible', checked: ['assistant-error-content-filter'] });
    // Into 1.3.2 the diffs break still refuses the pair; ContentFilterError is one more reason.
    const old = checkCompatibility('1.18.33', '1.3.2');
    expect(old.verdict).toBe('incompatible');
    if (old.verdict === 'incompatible') expect(old.breaks.map((item) => item.id)).toEqual(['summary-diffs-before-after']);
  });

  it('patch diffs into < 1.4: refused (no honest way back), naming the upgrade', () => {
    for (const source of ['1.4.0', '1.14.41', '1.18.33']) {
      const refused = checkCompatibility(source, '1.3.2');
      expect(refused.verdict).toBe('incompatible');
      if (refused.verdict === 'incompatible') {
        expect(refused.breaks.map((item) => item.id)).toEqual(['summary-diffs-before-after']);
        expect(refused.breaks[0]!.upgrade).toMatch(/upgrade opencode on this host to ≥ 1\.4\.0/);
      }
    }
  });

  it('an opencode major sessmig does not know is never called compatible (issue 23, item 2)', () => {
    for (const version of ['2.0.0', '2.0.4', 'v2.1.0', '2.0.0-beta.3', '3.0.0', '0.15.8', '0.0.0-dev-202611291200']) {
      expect(isKnownOpencode(version), version).toBe(false);
      expect(() => assertKnownOpencode(version, '/usr/bin/opencode')).toThrow(SessmigError);
    }
    for (const version of ['1.0.0', '1.2.27', '1.3.2', '1.14.41', '1.18.33', '1.18.33-beta.1', '1.99.0']) expect(isKnownOpencode(version), version).toBe(true);
    try {
      assertKnownOpencode('2.0.4', '/opt/oc2/opencode');
      expect.unreachable();
    } catch (error) {
      const refused = error as SessmigError;
      expect(refused.code).toBe('opencode-unsupported');
      expect(refused.exitCode).toBe(2);
      expect(refused.message).toMatch(/opencode 2\.0\.4 \(\/opt\/oc2\/opencode\) is not supported: this sessmig knows opencode 1\.x \(tested: 1\.2\.27 to 1\.18\.33\)/);
    }
    for (const [source, destination] of [
      ['1.18.33', '2.0.0'],
      ['1.18.33', '2.0.4'],
      ['2.0.4', '1.18.33'],
      ['2.0.4', '2.0.4'],
    ] as const) {
      const verdict = checkCompatibility(source, destination);
      expect(verdict.verdict, `${source} -> ${destination}`).toBe('incompatible');
      if (verdict.verdict === 'incompatible') expect(verdict.breaks.map((item) => item.id)).toEqual(['unknown-opencode-major']);
    }
  });

  it('ranges compare releases; a pre-release belongs with its release', () => {
    expect(inRange('1.18.33-beta.1', { from: '1.18.33' })).toBe(true);
    expect(inRange('1.4.0-rc.1', { below: '1.4.0' })).toBe(false);
    expect(compareVersions('1.18.33-beta.1', '1.18.33')).toBeLessThan(0);
    expect(compareVersions('v1.10.0', '1.9.9')).toBeGreaterThan(0);
  });
});
