import { isIP } from 'node:net';

/**
 * Plain HTTP to another machine carries every session in the clear: anyone on the path reads (and
 * can change) it. Loopback never leaves this machine. The decision is on the name as written, with
 * no DNS lookup: a name that happens to resolve to 127.0.0.1 still counts as another machine.
 */

/** localhost, 127.0.0.0/8 and ::1 (also as ::ffff:127.x.y.z), as a URL's hostname or bare. */
export function isLoopbackHost(hostname: string): boolean {
  let host = hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host === 'localhost' || host === 'localhost.') return true;
  if (isIP(host) === 4) return host.split('.')[0] === '127';
  if (isIP(host) === 6) {
    const groups = expandIpv6(host);
    if (groups === undefined) return false;
    if (groups.slice(0, 7).every((g) => g === 0) && groups[7] === 1) return true;
    // IPv4-mapped: ::ffff:127.0.0.1 (a URL writes it ::ffff:7f00:1).
    return groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff && groups[6]! >> 8 === 127;
  }
  return false;
}

/**
 * For an http:// URL whose host is not loopback: its origin (scheme, host, port: no path, query or
 * credentials, so safe to print). Undefined for https://, loopback, or what is not a URL.
 */
export function cleartextOrigin(url: string | URL): string | undefined {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'http:' || isLoopbackHost(parsed.hostname)) return undefined;
  return `http://${parsed.host}`;
}

function expandIpv6(address: string): number[] | undefined {
  let text = address.split('%')[0]!;
  // A trailing dotted IPv4 part is two groups.
  const dotted = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[2]!.split('.').map(Number) as [number, number, number, number];
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 0) return undefined;
  return [...left, ...new Array<number>(missing).fill(0), ...right];
}
