/**
 * What each opencode version's `import` accepts, value by value, beyond the summary.diffs shape
 * (adapters.ts). opencode validates a blob message by message and stops at the first bad value,
 * after the session row and every earlier message are written: a value the destination refuses
 * means a partial session. These checks find such values before anything is imported.
 *
 * Read from opencode's own schemas (`GET /doc` of `opencode serve` on 1.3.2, 1.15.13, 1.17.0,
 * 1.17.11, 1.17.18, 1.17.19, 1.18.33) and confirmed with real imports (1.14.34 and 1.14.41 serve no
 * schema; their imports were probed): see docs/FORMAT.md "opencode versions" and
 * test/opencode/acceptance.test.ts.
 *
 * - Part types: the same twelve in every version from 1.3.2 to 1.18.33. Any other type is refused
 *   by all of them.
 * - Assistant `error.name`: seven names in every version; `ContentFilterError` from 1.17.11 (the
 *   first published build after 1.17.0 that has it).
 * - Numbers: up to 1.3.x times and counters are any number; from 1.14.34 (the first build after
 *   1.3.x that npm serves) they must be non-negative integers — except a user message's
 *   `time.created`, which from 1.17.0 may again be any non-negative number. 1.3.x wants integer
 *   text offsets in file parts, which later versions write as any number.
 *
 * For a destination newer than NEWEST_KNOWN, the newest known rules apply, but unknown part types
 * and error names are let through: a newer opencode may know them.
 */
import type { JsonPath } from '../util/jsonScan.js';
import { compareVersions, parseVersion } from './versions.js';

/** The newest opencode whose schema these rules were read from. */
export const NEWEST_KNOWN = '1.18.33';
/** From this version on, times and counters must be non-negative integers. */
export const STRICT_NUMBERS_FROM = '1.14.34';
/** From this version on, a user message's time.created may be fractional again. */
export const USER_TIME_NUMBER_FROM = '1.17.0';
/** From this version on, the assistant error union has ContentFilterError. */
export const CONTENT_FILTER_ERROR_FROM = '1.17.11';

export const PART_TYPES: readonly string[] = [
  'text',
  'subtask',
  'reasoning',
  'file',
  'tool',
  'step-start',
  'step-finish',
  'snapshot',
  'patch',
  'agent',
  'retry',
  'compaction',
];

const BASE_ERROR_NAMES = ['ProviderAuthError', 'UnknownError', 'MessageOutputLengthError', 'MessageAbortedError', 'StructuredOutputError', 'ContextOverflowError', 'APIError'];

/** The assistant error names opencode `version` imports. */
export function assistantErrorNames(version: string): string[] {
  return atLeast(version, CONTENT_FILTER_ERROR_FROM) ? [...BASE_ERROR_NAMES, 'ContentFilterError'] : [...BASE_ERROR_NAMES];
}

function atLeast(version: string, from: string): boolean {
  // An unreadable version is taken as a current one.
  return !parseVersion(version) || compareVersions(version, from) >= 0;
}

type Segment = string | number;
/** A path pattern: `#` is any array index, a string any of its '|'-separated keys. */
type Pattern = readonly Segment[];

const MESSAGE = ['messages', '#'] as const;
const PART = [...MESSAGE, 'parts', '#'] as const;

/** Must be non-negative integers from STRICT_NUMBERS_FROM on (opencode's schemas, 1.15.13 … 1.18.33). */
const STRICT_NUMBERS: readonly Pattern[] = [
  ['info', 'time', 'created|updated|compacting'],
  [...MESSAGE, 'info', 'time', 'completed'],
  [...MESSAGE, 'info', 'error', 'data', 'statusCode|retries'],
  [...PART, 'time', 'start|end|created'],
  [...PART, 'attempt'],
  [...PART, 'error', 'data', 'statusCode'],
  [...PART, 'state', 'time', 'start|end|compacted'],
  [...PART, 'source', 'start|end|kind'],
  [...PART, 'source', 'range', 'start|end', 'line|character'],
];
/** messages[i].info.time.created: an integer for assistant messages; for user ones only before 1.17.0. */
const MESSAGE_CREATED: Pattern = [...MESSAGE, 'info', 'time', 'created'];
const MESSAGE_ROLE: Pattern = [...MESSAGE, 'info', 'role'];
const ERROR_NAME: Pattern = [...MESSAGE, 'info', 'error', 'name'];
const PART_TYPE: Pattern = [...PART, 'type'];
/** Integers (of any sign) up to 1.3.x; later versions write any number here. */
const TEXT_OFFSETS: Pattern = [...PART, 'source', 'text', 'start|end'];

/** The last key of every pattern: most paths are turned away on it alone (the scanner asks per value). */
const LAST_KEYS = new Set(
  [...STRICT_NUMBERS, MESSAGE_CREATED, MESSAGE_ROLE, ERROR_NAME, PART_TYPE, TEXT_OFFSETS].flatMap((pattern) => String(pattern[pattern.length - 1]).split('|')),
);

/** The deepest path any pattern names (the scanner must report paths this long). */
export const ACCEPTANCE_PATH_DEPTH = Math.max(...[...STRICT_NUMBERS, MESSAGE_CREATED, TEXT_OFFSETS].map((pattern) => pattern.length));

function matches(path: JsonPath, pattern: Pattern): boolean {
  if (path.length !== pattern.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i]!;
    const got = path[i]!;
    if (want === '#') {
      if (typeof got !== 'number') return false;
    } else if (typeof got !== 'string' || (want !== got && !(want as string).split('|').includes(got))) {
      return false;
    }
  }
  return true;
}

const describeValue = (value: unknown): string => (typeof value === 'string' ? JSON.stringify(value).slice(0, 80) : String(value));

/** Why `value` is not a non-negative integer, or undefined when it is one. */
function notNonNegativeInteger(value: unknown): string | undefined {
  if (typeof value !== 'number') return undefined; // other types: opencode's own problem in every version
  if (value < 0) return `is ${value}, below 0`;
  if (!Number.isInteger(value)) return `is ${value}, not an integer`;
  return undefined;
}

export interface AcceptanceCheck {
  /** Should the value at this path be captured and handed to `check`? */
  captures(path: JsonPath): boolean;
  /** Why opencode `destination` would refuse this value (undefined: it takes it). */
  check(path: JsonPath, value: unknown): { path: JsonPath; why: string } | undefined;
}

/** The value checks for importing into opencode `destination`. */
export function acceptanceFor(destination: string): AcceptanceCheck {
  const known = !parseVersion(destination) || compareVersions(destination, NEWEST_KNOWN) <= 0;
  const strict = atLeast(destination, STRICT_NUMBERS_FROM);
  const userTimeLoose = atLeast(destination, USER_TIME_NUMBER_FROM);
  const errorNames = new Set(assistantErrorNames(destination));
  // messages[i].info.time.created waits for the message's role when the role comes later.
  const roles = new Map<number, unknown>();
  const pendingCreated = new Map<number, { path: JsonPath; why: string }>();

  const checkCreated = (path: JsonPath, role: unknown, why: string) =>
    role === 'user' && userTimeLoose && !why.includes('below') ? undefined : { path, why: `${why} (opencode ${destination} requires a non-negative integer)` };

  return {
    captures(path) {
      const last = path[path.length - 1];
      if (typeof last !== 'string' || !LAST_KEYS.has(last)) return false;
      if (path[0] === 'info') return strict && matches(path, STRICT_NUMBERS[0]!);
      if (path[0] !== 'messages') return false;
      if (known && (matches(path, ERROR_NAME) || matches(path, PART_TYPE))) return true;
      if (strict) return matches(path, MESSAGE_CREATED) || matches(path, MESSAGE_ROLE) || STRICT_NUMBERS.some((pattern) => matches(path, pattern));
      return matches(path, TEXT_OFFSETS);
    },
    check(path, value) {
      if (matches(path, PART_TYPE)) {
        if (typeof value === 'string' && PART_TYPES.includes(value)) return undefined;
        return { path, why: `is ${describeValue(value)}, a part type opencode ${destination} does not know (it knows ${PART_TYPES.join(', ')})` };
      }
      if (matches(path, ERROR_NAME)) {
        if (typeof value === 'string' && errorNames.has(value)) return undefined;
        const later = value === 'ContentFilterError' ? ` (added in opencode ${CONTENT_FILTER_ERROR_FROM})` : '';
        return { path, why: `is ${describeValue(value)}, an assistant error opencode ${destination} does not know${later}` };
      }
      if (matches(path, MESSAGE_ROLE)) {
        const index = path[1] as number;
        roles.set(index, value);
        const pending = pendingCreated.get(index);
        pendingCreated.delete(index);
        return pending ? checkCreated(pending.path, value, pending.why) : undefined;
      }
      if (matches(path, TEXT_OFFSETS)) {
        if (typeof value === 'number' && !Number.isInteger(value)) return { path, why: `is ${value}, not an integer (opencode ${destination} requires one)` };
        return undefined;
      }
      const why = notNonNegativeInteger(value);
      if (!why) return undefined;
      if (matches(path, MESSAGE_CREATED)) {
        const index = path[1] as number;
        if (!roles.has(index)) {
          pendingCreated.set(index, { path, why });
          return undefined;
        }
        return checkCreated(path, roles.get(index), why);
      }
      return { path, why: `${why} (opencode ${destination} requires a non-negative integer)` };
    },
  };
}
