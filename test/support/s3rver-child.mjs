// Runs s3rver in its own process so a test can SIGKILL it mid-transfer and start it again on the
// same port with the same data directory. Started by test/support/s3.ts as
//   node --openssl-legacy-provider s3rver-child.mjs PORT DIR
// (the legacy provider is needed: s3rver encrypts ListObjectsV2 continuation tokens with DES).
// PORT 0 picks a free port. Prints one line `READY <port>` on stdout once listening; exits when
// its stdin closes (so it never outlives the test process; it then removes DIR, as the dead test
// process cannot) or on SIGTERM.
import { createRequire } from 'node:module';
import { mkdirSync, rmSync } from 'node:fs';

const require = createRequire(import.meta.url);
const S3rver = require('s3rver');

const [portArg, directory] = process.argv.slice(2);
if (!directory) {
  process.stderr.write('usage: s3rver-child.mjs PORT DIR\n');
  process.exit(2);
}
mkdirSync(directory, { recursive: true });

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(portArg),
  directory,
  silent: true,
  // path-style only: with vhost buckets on, a Host of "127.0.0.1:PORT" is fine, but keep it simple
  vhostBuckets: false,
});

try {
  const { port } = await server.run();
  process.stdout.write(`READY ${port}\n`);
} catch (err) {
  process.stderr.write(`s3rver failed to start: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
}

const quit = () => process.exit(0);
const orphaned = () => {
  rmSync(directory, { recursive: true, force: true });
  quit();
};
process.stdin.on('end', orphaned);
process.stdin.on('close', orphaned);
process.stdin.resume();
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
