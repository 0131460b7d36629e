import { usageError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 604_800_000 };

/** A duration for people: "45 s", "12 min", "5 h", "3 days" (rounded; negative counts as 0). */
export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/**
 * The one duration grammar of every flag (--expires, --keep-within, --grace, --older-than): whole
 * numbers with units ms, s, m, h, d, w, concatenated ("90s", "1h30m", "7d", "2w"), or "0".
 */
export function parseDuration(value: string, flag: string): number {
  const text = value.trim();
  if (text === '0') return 0;
  if (!/^(?:\d{1,9}(?:ms|s|m|h|d|w))+$/.test(text)) {
    throw usageError('bad-flag', `${flag} ${JSON.stringify(value.slice(0, 40))} is not a duration`, `use a number and a unit (ms, s, m, h, d, w), e.g. ${flag} 1h or ${flag} 7d`);
  }
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)) total += Number(n) * UNIT_MS[unit!]!;
  return total;
}

/** ms → the largest exact unit up to days: 604800000 → "7d", 5400000 → "90m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const unit of ['d', 'h', 'm', 's']) if (ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return `${ms}ms`;
}

