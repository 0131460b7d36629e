/**
 * Known breaks in opencode's export schema between versions, and what sessmig does about each.
 * One table, read by pull (before anything is imported) and by `sessmig doctor`. Sources:
 * ../shared/OPENCODE.md (measured on real builds) and opencode's history (#15797, #21941).
 *
 * A break names the versions whose exports have a shape (`writtenBy`) and the versions that
 * cannot take that shape faithfully (`refusedBy`: rejected half-way, or silently stripped).
 */
export interface SchemaBreak {
  id: string;
  description: string;
  /** Exports made by these versions may carry the old shape. */
  writtenBy: VersionRange;
  /** Importing that shape into these versions fails or loses data. */
  refusedBy: VersionRange[];
  /** What to do instead. */
  upgrade: string;
}

export interface VersionRange {
  /** Inclusive. */
  from?: string;
  /** Exclusive. */
  below?: string;
}

export const SCHEMA_BREAKS: readonly SchemaBreak[] = [
  {
    id: 'summary-diffs-patch',
    description:
      'summary.diffs[] entries changed from {file, before, after} to {file, patch} in 1.4.0; 1.4.0–1.14.x and 1.17.x reject the old shape half-way (a partial session), 1.15.x and 1.18.x drop before/after silently (the diff content is lost)',
    writtenBy: { below: '1.4.0' },
    refusedBy: [{ from: '1.4.0' }],
    upgrade: 'export from opencode ≥ 1.4.0 on the source host (upgrade it and push again)',
  },
];

export function parseVersion(version: string): [number, number, number] | undefined {
  const match = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version.trim());
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  if (!x || !y) return 0;
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

export function inRange(version: string, range: VersionRange): boolean {
  if (!parseVersion(version)) return false;
  if (range.from && compareVersions(version, range.from) < 0) return false;
  if (range.below && compareVersions(version, range.below) >= 0) return false;
  return true;
}

export type Compatibility =
  | { verdict: 'same'; source: string; destination: string }
  | { verdict: 'compatible'; source: string; destination: string; note: string }
  | { verdict: 'incompatible'; source: string; destination: string; breaks: SchemaBreak[] };

/** Can sessions exported by `source` be imported faithfully by `destination`? */
export function checkCompatibility(source: string, destination: string): Compatibility {
  if (source === destination) return { verdict: 'same', source, destination };
  const breaks = SCHEMA_BREAKS.filter((item) => inRange(source, item.writtenBy) && item.refusedBy.some((range) => inRange(destination, range)));
  if (breaks.length > 0) return { verdict: 'incompatible', source, destination, breaks };
  const unknown = !parseVersion(source) || !parseVersion(destination);
  return {
    verdict: 'compatible',
    source,
    destination,
    note: unknown
      ? `cannot compare opencode versions ${source} and ${destination}; no known break applies`
      : `opencode ${source} exported these sessions and ${destination} imports them; no known schema break between them`,
  };
}
