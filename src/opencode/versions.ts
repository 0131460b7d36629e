import semver from 'semver';
import { SessmigError } from '../util/errors.js';

/**
 * Known breaks in opencode's export schema between versions, and what sessmig does about each.
 * One table, read by pull (before anything is imported) and by `sessmig doctor`. Sources:
 * ../shared/OPENCODE.md (measured on real builds) and opencode's history (#15797, #21941).
 *
 * A break names the versions whose exports have a shape (`writtenBy`) and the versions that
 * cannot take that shape faithfully (`refusedBy`: rejected half-way, or silently stripped).
 * A break with `adaptedBy` is carried across by an adapter on pull (src/opencode/adapters.ts):
 * pull warns and goes. Any other break refuses the pull before anything is imported (`--force`
 * imports anyway; blobs that the destination would still reject half-way stay refused, one by one).
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
  /** The adapter that carries sessions across this break, if one does (what it does, in words). */
  adaptedBy?: string;
  /**
   * A break in values that only some sessions hold: the pair is not refused; pull checks every blob
   * while it streams (src/opencode/acceptance.ts) and refuses, before importing it, each session
   * that holds such a value, naming the field. What it checks, in words.
   */
  checkedPerSession?: string;
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
    adaptedBy: 'summary.diffs before/after become patch, a unified diff of the two texts',
  },
  {
    id: 'summary-diffs-before-after',
    description:
      'opencode before 1.4.0 requires summary.diffs[] entries as {file, before, after} and rejects {file, patch} half-way (measured: 1.3.2); a patch cannot be turned back into the two texts honestly',
    writtenBy: { from: '1.4.0' },
    refusedBy: [{ below: '1.4.0' }],
    upgrade: 'upgrade opencode on this host to ≥ 1.4.0 (1.14.41 and 1.18.33 are tested)',
  },
  {
    id: 'assistant-error-content-filter',
    description:
      'assistant messages may carry error.name "ContentFilterError" from 1.17.11; earlier versions reject that message half-way (measured: 1.3.2, 1.14.34, 1.14.41, 1.17.0)',
    writtenBy: { from: '1.17.11' },
    refusedBy: [{ below: '1.17.11' }],
    upgrade: 'upgrade opencode on this host to ≥ 1.17.11',
    checkedPerSession: 'sessions with a ContentFilterError are refused one by one, the others import',
  },
  {
    id: 'non-negative-integer-times',
    description:
      'up to 1.3.x times and counters may be any number; from 1.14.34 they must be non-negative integers (a user message time.created: any non-negative number again from 1.17.0), or the import stops half-way',
    writtenBy: { below: '1.14.34' },
    refusedBy: [{ from: '1.14.34' }],
    upgrade: 'none needed for sessions opencode itself wrote (its times are integer milliseconds)',
    checkedPerSession: 'sessions holding a negative or fractional time or counter are refused one by one, the others import',
  },
  {
    id: 'user-time-created-fractional',
    description: "from 1.17.0 a user message's time.created may be fractional; 1.14.34–1.15.x reject it half-way",
    writtenBy: { from: '1.17.0' },
    refusedBy: [{ from: '1.14.34', below: '1.17.0' }],
    upgrade: 'upgrade opencode on this host to ≥ 1.17.0',
    checkedPerSession: 'sessions with a fractional user message time.created are refused one by one, the others import',
  },
];

/**
 * Known losses that opencode itself makes on import and that no break above refuses: the value is
 * dropped silently (unknown keys are dropped by every version). Pull names them in its warning.
 */
export const KNOWN_LOSSES: readonly { id: string; description: string; between: [VersionRange, VersionRange] }[] = [
  {
    id: 'user-variant',
    description: "a user message's model variant (top-level `variant` before 1.4.0, `model.variant` from 1.4.0) is dropped when it crosses 1.4.0, either way",
    between: [{ below: '1.4.0' }, { from: '1.4.0' }],
  },
];

/**
 * The opencode versions sessmig knows: major 1 (measured from 1.2.27 to 1.18.33). Another major is
 * another program as far as sessions go — opencode 2 moved sessions to `opencode session
 * export/import` through a server and changed the transfer document (`info.location`, flat typed
 * messages) — so sessmig refuses it before reading or writing anything (assertKnownOpencode),
 * rather than feed it 1.x blobs or store its usage page as a session.
 */
export const KNOWN_OPENCODE: VersionRange = { from: '1.0.0', below: '2.0.0' };
export const KNOWN_OPENCODE_TEXT = 'opencode 1.x (tested: 1.2.27 to 1.18.33)';

/** A version as semver reads it (a leading `v` allowed), or undefined. */
function parsed(version: string): semver.SemVer | undefined {
  return semver.parse(version.trim()) ?? undefined;
}

export function parseVersion(version: string): [number, number, number] | undefined {
  const v = parsed(version);
  return v ? [v.major, v.minor, v.patch] : undefined;
}

/** semver order (a pre-release sorts before its release); 0 when either is not a version. */
export function compareVersions(a: string, b: string): number {
  const x = parsed(a);
  const y = parsed(b);
  return x && y ? semver.compare(x, y) : 0;
}

export function inRange(version: string, range: VersionRange): boolean {
  const v = parsed(version);
  if (!v) return false;
  // A pre-release of a version belongs where that version does (1.18.33-beta.1 is a 1.18.33).
  const release = `${v.major}.${v.minor}.${v.patch}`;
  if (range.from && semver.lt(release, range.from)) return false;
  if (range.below && semver.gte(release, range.below)) return false;
  return true;
}

/** Whether sessmig knows this opencode (its major); an unreadable version is not known either. */
export function isKnownOpencode(version: string): boolean {
  return inRange(version, KNOWN_OPENCODE);
}

/** Refuses an opencode sessmig does not know, naming it and what is known (`opencode-unsupported`, exit 2). */
export function assertKnownOpencode(version: string, bin: string): void {
  if (isKnownOpencode(version)) return;
  const major = parsed(version)?.major;
  throw new SessmigError(
    'opencode-unsupported',
    `opencode ${version} (${bin}) is not supported: this sessmig knows ${KNOWN_OPENCODE_TEXT}` +
      (major !== undefined && major >= 2 ? `; opencode ${major} changed how sessions are exported and imported` : '') +
      '; nothing was read or written',
    {
      hint: 'install opencode 1.x (npm i -g opencode-ai@1) or point --opencode / SESSMIG_OPENCODE at one; opencode 2 needs a sessmig release that supports it',
      data: { opencodeVersion: version, supported: '>=1.0.0 <2.0.0' },
    },
  );
}

export type Compatibility =
  | { verdict: 'same'; source: string; destination: string }
  /**
   * `adapted`: the ids of the breaks that pull's adapters carry across (empty: no known break);
   * `checked`: the ids of the value breaks that pull checks session by session.
   */
  | { verdict: 'compatible'; source: string; destination: string; note: string; adapted: string[]; checked: string[] }
  | { verdict: 'incompatible'; source: string; destination: string; breaks: SchemaBreak[] };

/** The known breaks between sessions exported by `source` and an import by `destination`. */
export function breaksBetween(source: string, destination: string): SchemaBreak[] {
  return SCHEMA_BREAKS.filter((item) => inRange(source, item.writtenBy) && item.refusedBy.some((range) => inRange(destination, range)));
}

/** Can sessions exported by `source` be imported faithfully by `destination` (with pull's adapters)? */
export function checkCompatibility(source: string, destination: string): Compatibility {
  const unknownMajor = [source, destination].filter((version) => parseVersion(version) !== undefined && !isKnownOpencode(version));
  if (unknownMajor.length > 0) return { verdict: 'incompatible', source, destination, breaks: [unknownMajorBreak(unknownMajor)] };
  if (source === destination) return { verdict: 'same', source, destination };
  const found = breaksBetween(source, destination);
  const perSession = found.filter((item) => item.checkedPerSession !== undefined);
  const all = found.filter((item) => item.checkedPerSession === undefined);
  const checks = perSession.map((item) => item.checkedPerSession).join('; ');
  const losses = lossesBetween(source, destination).map((item) => item.description);
  const extra = [...(checks ? [`checked per session: ${checks}`] : []), ...(losses.length > 0 ? [`opencode drops on import: ${losses.join('; ')}`] : [])];
  const tail = extra.length > 0 ? ` (${extra.join('; ')})` : '';
  const refused = all.filter((item) => item.adaptedBy === undefined);
  if (refused.length > 0) return { verdict: 'incompatible', source, destination, breaks: refused };
  if (all.length > 0) {
    return {
      verdict: 'compatible',
      source,
      destination,
      adapted: all.map((item) => item.id),
      checked: perSession.map((item) => item.id),
      note: `opencode ${source} exported these sessions and ${destination} imports them once adapted: ${all.map((item) => item.adaptedBy).join('; ')}${tail}`,
    };
  }
  const unknown = !parseVersion(source) || !parseVersion(destination);
  return {
    verdict: 'compatible',
    source,
    destination,
    adapted: [],
    checked: perSession.map((item) => item.id),
    note:
      (unknown
        ? `cannot compare opencode versions ${source} and ${destination}; no known break applies`
        : perSession.length > 0
          ? `opencode ${source} exported these sessions and ${destination} imports them; no break needs an adapter`
          : `opencode ${source} exported these sessions and ${destination} imports them; no known schema break between them`) + tail,
  };
}

/** The refusal of an opencode major sessmig does not know, as a break (doctor, pull). */
function unknownMajorBreak(versions: string[]): SchemaBreak {
  return {
    id: 'unknown-opencode-major',
    description: `opencode ${[...new Set(versions)].join(' and ')} is outside what this sessmig knows (${KNOWN_OPENCODE_TEXT}); another major changes how sessions are exported and imported`,
    writtenBy: KNOWN_OPENCODE,
    refusedBy: [],
    upgrade: 'use opencode 1.x on both hosts, or a sessmig release that supports the newer opencode',
  };
}

/** The known silent losses when sessions exported by `source` are imported by `destination`. */
export function lossesBetween(source: string, destination: string): (typeof KNOWN_LOSSES)[number][] {
  return KNOWN_LOSSES.filter(({ between: [a, b] }) => (inRange(source, a) && inRange(destination, b)) || (inRange(source, b) && inRange(destination, a)));
}
