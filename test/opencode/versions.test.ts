import { describe, expect, it } from 'vitest';
import { checkCompatibility, compareVersions, inRange } from '../../src/opencode/versions.js';

describe('the schema-break table', () => {
  it('compares versions numerically', () => {
    expect(compareVersions('1.14.41', '1.4.0')).toBeGreaterThan(0);
    expect(compareVersions('1.3.2', '1.4.0')).toBeLessThan(0);
    expect(inRange('1.3.2', { below: '1.4.0' })).toBe(true);
    expect(inRange('1.4.0', { below: '1.4.0' })).toBe(false);
    expect(inRange('garbage', { from: '1.0.0' })).toBe(false);
  });

  it('same version: go; no known break: compatible with a note; legacy diffs into 1.4+: incompatible', () => {
    expect(checkCompatibility('1.18.33', '1.18.33').verdict).toBe('same');
    const ok = checkCompatibility('1.14.41', '1.18.33');
    expect(ok.verdict).toBe('compatible');
    const bad = checkCompatibility('1.3.2', '1.18.33');
    expect(bad.verdict).toBe('incompatible');
    if (bad.verdict === 'incompatible') expect(bad.breaks.map((b) => b.id)).toEqual(['summary-diffs-patch']);
    expect(checkCompatibility('1.3.2', '1.2.27').verdict).toBe('compatible');
  });
});
