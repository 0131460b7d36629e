import type { Reporter } from '../util/reporter.js';

/**
 * `write` prints one line (a newline is added). With `tty` (stderr is a terminal and no --json),
 * progress is drawn with `raw` on one line that later lines clear.
 */
export function makeReporter(write: (line: string) => void, options: { quiet?: boolean; tty?: boolean; raw?: (text: string) => void } = {}): Reporter {
  const warnings: string[] = [];
  let drawn = false;
  const clear = () => {
    if (drawn && options.raw) options.raw('\r\x1b[K');
    drawn = false;
  };
  return {
    warnings,
    info(message) {
      if (options.quiet) return;
      clear();
      write(message);
    },
    warn(message) {
      warnings.push(message);
      clear();
      write(`warning: ${message}`);
    },
    progress(phase, done, total, bytes) {
      if (!options.tty || options.quiet || !options.raw) return;
      const mib = (bytes / 1024 / 1024).toFixed(1);
      options.raw(`\r\x1b[K${phase} ${done}/${total} sessions, ${mib} MiB`);
      drawn = done < total;
      if (!drawn) options.raw('\r\x1b[K');
    },
  };
}
