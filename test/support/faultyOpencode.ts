/**
 * Fault injection around the REAL opencode binary — not a mock: every command is passed to the
 * real opencode, except at the one point where a test asks for a failure. Used where a failure of
 * opencode itself cannot be provoked on demand (a session deleted between listing and export, an
 * import that dies half-way, a hung export).
 *
 * Knobs (environment of the sessmig process, inherited by this script):
 *   FAULT_DELETE_BEFORE_EXPORT=<id>  delete the session for real, then run the real export (→ "Session not found")
 *   FAULT_FAIL_EXPORT=<id>           the export of <id> exits 1 with a message
 *   FAULT_HANG_EXPORT=1              every export hangs (sleeps) until killed
 *   FAULT_HANG_IMPORT_NTH=<n>        the n-th import (counted in FAULT_COUNTER_FILE) hangs until killed
 *   FAULT_PID_FILE=<file>            a hanging process writes its pid here (to clean up after a SIGKILL test)
 *   FAULT_HOOK_EXPORT=<id> FAULT_HOOK_CMD=<cmd>   run <cmd> (bash) just before the real export of <id>
 *                                    (e.g. kill the S3 server mid-push)
 *   FAULT_FAIL_IMPORT_NTH=<n>        the n-th import (counted in FAULT_COUNTER_FILE) runs the real import, then exits 1
 *                                    without its success line: a partial, failed import
 */
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';

export async function writeFaultyOpencode(dir: string, realBin: string): Promise<string> {
  const file = path.join(dir, 'opencode-faulty');
  const script = `#!/bin/bash
REAL=${JSON.stringify(realBin)}
if [ "$1" = "export" ]; then
  if [ -n "$FAULT_DELETE_BEFORE_EXPORT" ] && [ "$2" = "$FAULT_DELETE_BEFORE_EXPORT" ]; then
    "$REAL" session delete "$2" >/dev/null 2>&1
  fi
  if [ -n "$FAULT_HOOK_EXPORT" ] && [ "$2" = "$FAULT_HOOK_EXPORT" ]; then
    bash -c "$FAULT_HOOK_CMD" >/dev/null 2>&1
  fi
  if [ -n "$FAULT_FAIL_EXPORT" ] && [ "$2" = "$FAULT_FAIL_EXPORT" ]; then
    echo "injected export failure for $2" >&2
    exit 1
  fi
  if [ -n "$FAULT_HANG_EXPORT" ]; then
    [ -n "$FAULT_PID_FILE" ] && echo $$ >> "$FAULT_PID_FILE"
    exec sleep 3600
  fi
fi
if [ "$1" = "import" ] && [ -n "$FAULT_HANG_IMPORT_NTH" ]; then
  n=$(( $(cat "$FAULT_COUNTER_FILE" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$FAULT_COUNTER_FILE"
  if [ "$n" = "$FAULT_HANG_IMPORT_NTH" ]; then
    [ -n "$FAULT_PID_FILE" ] && echo $$ >> "$FAULT_PID_FILE"
    exec sleep 3600
  fi
fi
if [ "$1" = "import" ] && [ -n "$FAULT_FAIL_IMPORT_NTH" ]; then
  n=$(( $(cat "$FAULT_COUNTER_FILE" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$FAULT_COUNTER_FILE"
  if [ "$n" = "$FAULT_FAIL_IMPORT_NTH" ]; then
    "$REAL" "$@" >/dev/null 2>&1
    echo "injected import failure" >&2
    exit 1
  fi
fi
exec "$REAL" "$@"
`;
  await writeFile(file, script);
  await chmod(file, 0o755);
  return file;
}
