// Preloaded into the sessmig process by the bench (`node --import ./bench/rss-probe.mjs bin/sessmig.js`):
// on exit, writes this process's own peak RSS (getrusage RUSAGE_SELF, so opencode children are not
// counted) to $BENCH_RSS_FILE as JSON.
import { writeFileSync } from 'node:fs';

const file = process.env.BENCH_RSS_FILE;
if (file) {
  process.on('exit', () => {
    try {
      writeFileSync(file, JSON.stringify({ pid: process.pid, maxRssKiB: process.resourceUsage().maxRSS }));
    } catch {
      /* best effort: the bench falls back to its /proc samples */
    }
  });
}
