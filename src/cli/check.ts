import type { Command } from 'commander';
import os from 'node:os';
import { checkRemote, type CheckProblem, type ObjectCheck } from '../core/check.js';
import { LISTED_KINDS, LISTED_NOUN, type ListedKind } from '../core/checkpointObjects.js';
import { ExitCode, usageError } from '../util/errors.js';
import { findWorktree } from '../core/worktree.js';
import { assertWorktreeKey } from '../format/ids.js';
import { redact } from '../util/redact.js';
import { addCommonOptions, formatBytes, parsePositiveInt, openerFor, printJson, remoteFrom, settingsFrom, warnIfCleartext, type CommonOptions, type Io } from './options.js';

interface CheckFlags extends CommonOptions {
  all?: boolean;
  readData?: boolean;
}

/**
 * The worktrees `check` looks at: every one (--all, undefined), the --worktree key (no git needed),
 * or the current repository's key. Needs neither opencode nor a host identity: check only reads.
 */
export async function checkTargets(flags: CheckFlags, io: Io): Promise<string[] | undefined> {
  if (flags.all) {
    if (flags.worktree !== undefined) throw usageError('bad-flag', '--all and --worktree exclude each other', 'check one worktree with --worktree KEY, or every one with --all');
    return undefined;
  }
  const key = (await settingsFrom(flags, io)).worktree.value;
  if (key !== null) return [assertWorktreeKey(key)];
  return [(await findWorktree(io.cwd, undefined, io.env)).key];
}

export function registerCheck(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('check')
      .description("verify the remote copy of this worktree: pointer, checkpoints and every object they name — blobs, tool outputs, snapshot packs, code bundles (sizes; with --read-data, contents)")
      .option('--all', 'check every worktree in the remote')
      .option('--read-data', 'also download every referenced object and verify its checksum and content'),
  { opencode: false },
  ).action(async (flags: CheckFlags) => {
    const remote = await remoteFrom(flags, io);
    const worktrees = await checkTargets(flags, io);
    const jobs = parsePositiveInt(flags.jobs, '--jobs', Math.max(1, Math.min(4, os.availableParallelism())), 64);
    const quiet = flags.quiet === true;
    const result = await checkRemote(remote, {
      ...(worktrees ? { worktrees } : {}),
      readData: flags.readData === true,
      remoteFor: await openerFor(remote, io),
      jobs,
      signal: io.signal,
      progress: (line) => {
        if (!quiet) io.stderr(`${redact(line)}\n`);
      },
    });
    // No worktree opened (an empty remote): nothing proved the traffic sealed.
    if (result.worktrees.length === 0) warnIfCleartext(remote, io);
    if (flags.json) {
      printJson(io, { command: 'check', ...result });
    } else {
      const out = (line: string) => io.stdout(`${redact(line)}\n`);
      if (result.worktrees.length === 0) io.stderr(`no worktrees in ${remote.display}\n`);
      for (const problem of result.problems.filter((p) => p.worktree === null)) out(describe(problem));
      for (const wt of result.worktrees) {
        const b = wt.blobs;
        out(
          `worktree ${wt.worktree}  current: ${wt.pointer?.checkpoint ?? '-'}  ${wt.checkpoints.total} checkpoint(s), ${b.referenced} blob(s) referenced, ${b.stored} stored` +
            `${result.readData ? `, ${b.verified} verified (${formatBytes(b.bytesRead)} read)` : ''}${b.orphaned > 0 ? `, ${b.orphaned} orphaned` : ''}` +
            otherObjects(wt.objects, result.readData) +
            `  ${wt.errors === 0 ? 'ok' : `${wt.errors} error(s)`}${wt.warnings > 0 ? `, ${wt.warnings} warning(s)` : ''}`,
        );
        for (const problem of result.problems.filter((p) => p.worktree === wt.worktree)) out(`  ${describe(problem)}`);
      }
      const summary = `${result.errors} error(s), ${result.warnings} warning(s)${result.readData ? '' : ' (blob contents not read; use --read-data to verify them)'}`;
      io.stderr(result.ok ? `check passed: ${summary}\n` : `check FAILED: ${summary}\n`);
    }
    done(result.ok ? ExitCode.ok : ExitCode.failed);
  });
}

/** "; 2 code bundle(s) referenced, 2 stored, 2 verified": the kinds beside session blobs that the worktree has. */
function otherObjects(objects: Record<ListedKind, ObjectCheck>, readData: boolean): string {
  return LISTED_KINDS.filter((kind) => kind !== 'blob' && (objects[kind].stored > 0 || objects[kind].referenced > 0))
    .map((kind) => {
      const o = objects[kind];
      return `; ${o.referenced} ${LISTED_NOUN[kind]}(s) referenced, ${o.stored} stored${readData ? `, ${o.verified} verified` : ''}${o.missing > 0 ? `, ${o.missing} missing` : ''}${o.orphaned > 0 ? `, ${o.orphaned} orphaned` : ''}`;
    })
    .join('');
}

function describe(problem: CheckProblem): string {
  return `${problem.severity}: ${problem.message}${problem.hint ? `\n      hint: ${problem.hint}` : ''}`;
}
