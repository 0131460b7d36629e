/**
 * Which endpoints carry sessions in the clear: plain http:// to a host that is not loopback.
 * The decision is on the name as written (no DNS), after the URL parser's normalisation.
 */
import { describe, expect, it } from 'vitest';
import { cleartextOrigin, isLoopbackHost } from '../../src/remote/cleartext.js';

describe('cleartextOrigin', () => {
  const silent = [
    'http://127.0.0.1:9000',
    'http://127.255.255.254/',
    'http://127.1:9', // the URL parser makes it 127.0.0.1
    'http://2130706433/',
    'http://0x7f.1/',
    'http://[::1]:9000',
    'http://[0:0:0:0:0:0:0:1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://localhost:9000',
    'http://LOCALHOST/',
    'http://localhost./',
    'https://10.255.255.1:9',
    'https://s3.eu-west-1.amazonaws.com',
    'not a url',
  ];
  const warned: [string, string][] = [
    ['http://10.255.255.1:9', 'http://10.255.255.1:9'],
    ['http://minio.local:9000', 'http://minio.local:9000'],
    ['http://128.0.0.1/', 'http://128.0.0.1'],
    ['http://0.0.0.0:9000', 'http://0.0.0.0:9000'],
    ['http://[::2]/', 'http://[::2]'],
    ['http://[::ffff:10.0.0.1]/', 'http://[::ffff:a00:1]'],
    ['http://localhost.example.com/', 'http://localhost.example.com'],
    ['http://127.0.0.1.nip.io/', 'http://127.0.0.1.nip.io'],
    // Only scheme, host and port are printed: no credentials, path, query or fragment.
    ['http://user:secret@10.0.0.1:9/bucket/key?X-Amz-Signature=abc#AGE', 'http://10.0.0.1:9'],
  ];
  it.each(silent)('%s: no warning', (url) => expect(cleartextOrigin(url)).toBeUndefined());
  it.each(warned)('%s: warns about %s', (url, origin) => expect(cleartextOrigin(url)).toBe(origin));
});

describe('isLoopbackHost', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:7f00:1', true],
    ['::ffff:127.1.2.3', true],
    ['localhost', true],
    ['126.255.255.255', false],
    ['::', false],
    ['::ffff:8000:1', false],
    ['fe80::1', false],
    ['example.com', false],
  ] as const)('%s → %s', (host, loopback) => expect(isLoopbackHost(host)).toBe(loopback));
});
