/**
 * A wrapper of the REAL opencode that records when each process starts and ends — not a mock:
 * every command runs the real binary. Used where the order or number of opencode processes is what
 * a test asserts. With FAIL_FIRST_DB set in its environment, the first `opencode db` exits 1 the way
 * an `opencode db` does when another opencode migrates the same new database at that moment (a race
 * that cannot be provoked on demand).
 */
import fs from 'node:fs/promises';
import path from 'node:path';

export interface OpencodeEvent {
  kind: 'start' | 'end';
  /** The first argument (`db`, `serve`, `export`, …). */
  cmd: string;
  /** Milliseconds (wall clock). */
  at: number;
  /** For `db`: the second argument (the statement, or `path`). */
  arg: string;
}

export async function recordingOpencode(dir: string, real: string): Promise<{ bin: string; events: () => Promise<OpencodeEvent[]>; clear: () => Promise<void> }> {
  const bin = path.join(dir, 'opencode-recording');
  const log = path.join(dir, 'opencode.log');
  const failed = `${log}.failed`;
  await fs.writeFile(
    bin,
    `#!/bin/bash
arg=$(printf '%s' "$2" | head -c 60 | tr '\\n\\t ' '___')
echo "start $1 $(date +%s%N) $arg" >> ${JSON.stringify(log)}
if [ "$1" = "db" ] && [ -n "$FAIL_FIRST_DB" ] && [ ! -e ${JSON.stringify(failed)} ]; then
  touch ${JSON.stringify(failed)}
  printf 'Error: Failed query: CREATE TABLE \\x60workspace\\x60 (\\n  CONSTRAINT fk FOREIGN KEY (project_id)\\n);\\nSQLiteError: table \\x60workspace\\x60 already exists\\n      CONSTRAINT \\x60fk_workspace_project_id_project_id_fk\\x60 FOREIGN KEY\\n        );\\n' >&2
  exit 1
fi
if [ "$1" = "serve" ]; then exec ${JSON.stringify(real)} "$@"; fi
${JSON.stringify(real)} "$@"; rc=$?
echo "end $1 $(date +%s%N) $arg" >> ${JSON.stringify(log)}
exit $rc
`,
    { mode: 0o755 },
  );
  return {
    bin,
    async events() {
      const text = await fs.readFile(log, 'utf8').catch(() => '');
      return text
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => line.split(' '))
        .map(([kind, cmd, at, arg]) => ({ kind: kind as 'start' | 'end', cmd: cmd!, at: Number(at) / 1e6, arg: arg ?? '' }));
    },
    clear: () => fs.rm(log, { force: true }),
  };
}
