import type { Command } from 'commander';
import os from 'node:os';
import { ExitCode, usageError } from '../util/errors.js';
import {
  DEFAULT_BACKUP_AGE_MS,
  DEFAULT_GRACE_MS,
  DEFAULT_KEEP_LAST,
  DEFAULT_KEEP_WITHIN_MS,
  formatDuration,
  describeCounts,
  parseDuration,
  PRUNE_KINDS,
  PRUNE_NOUN,
  pruneLocalBackups,
  pruneRemote,
  type PrunePolicy,
} from '../core/prune.js';
import { findWorktree } from '../core/worktree.js';
import { assertWorktreeKey } from '../format/ids.js';
import { hostPaths } from '../host/paths.js';
import { redact } from '../util/redact.js';
import { addCommonOptions, formatBytes, parsePositiveInt, openerFor, printJson, remoteFrom, settingsFrom, type CommonOptions, type Io } from './options.js';

interface PruneFlags extends CommonOptions {
  keepLast?: string;
  keepWithin?: string;
  grace?: string;
  dryRun?: boolean;
  local?: boolean;
  olderThan?: string;
}

/** The policy from the flags: a policy flag replaces the whole default (last 5 and younger than 7 days). */
export function policyFrom(flags: PruneFlags): PrunePolicy {
  const given = flags.keepLast !== undefined || flags.keepWithin !== undefined;
  return {
    keepLast: flags.keepLast !== undefined ? parsePositiveInt(flags.keepLast, '--keep-last', DEFAULT_KEEP_LAST) : given ? null : DEFAULT_KEEP_LAST,
    keepWithinMs: flags.keepWithin !== undefined ? parseDuration(flags.keepWithin, '--keep-within') : given ? null : DEFAULT_KEEP_WITHIN_MS,
    graceMs: flags.grace !== undefined ? parseDuration(flags.grace, '--grace') : DEFAULT_GRACE_MS,
  };
}

export function registerPrune(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('prune')
      .description(
        `delete old checkpoints of this worktree from the remote, then the objects no kept checkpoint references (blobs, tool outputs, snapshot packs, code bundles) ` +
          `(default: keep the last ${DEFAULT_KEEP_LAST} and every one younger than ${formatDuration(DEFAULT_KEEP_WITHIN_MS)}); with --local, old pull backups on this host`,
      )
      .option('--keep-last <n>', 'keep the N newest checkpoints (a policy flag replaces the default policy)')
      .option('--keep-within <duration>', 'keep every checkpoint younger than this, e.g. 7d, 12h (a policy flag replaces the default policy)')
      .option('--grace <duration>', `never delete a checkpoint or an unreferenced object written less than this long ago: an unfinished push (default ${formatDuration(DEFAULT_GRACE_MS)})`)
      .option('-n, --dry-run', 'show what would be deleted; delete nothing')
      .option('--local', `remove this host's pull backups of the worktree instead (from $XDG_STATE_HOME/sessmig/backups/); touches no remote`)
      .option('--older-than <duration>', `with --local: remove backups older than this (default ${formatDuration(DEFAULT_BACKUP_AGE_MS)})`),
  { opencode: false },
  ).action(async (flags: PruneFlags) => {
    const quiet = flags.quiet === true;
    const progress = (line: string) => {
      if (!quiet) io.stderr(`${redact(line)}\n`);
    };
    const out = (line: string) => io.stdout(`${redact(line)}\n`);
    const dryRun = flags.dryRun === true;

    if (flags.local) {
      for (const [set, flag] of [
        [flags.keepLast, '--keep-last'],
        [flags.keepWithin, '--keep-within'],
        [flags.grace, '--grace'],
      ] as const) {
        if (set !== undefined) throw usageError('bad-flag', `${flag} applies to the remote; --local prunes backups by --older-than`, 'run the two prunes separately');
      }
      const olderThanMs = flags.olderThan !== undefined ? parseDuration(flags.olderThan, '--older-than') : DEFAULT_BACKUP_AGE_MS;
      const worktree = await worktreeKey(flags, io);
      const result = await pruneLocalBackups(hostPaths(io.env).state, worktree, { olderThanMs, dryRun, progress });
      if (flags.json) {
        printJson(io, { command: 'prune', mode: 'local', ...result });
      } else {
        for (const b of result.backups) {
          out(`  ${b.action === 'delete' ? (dryRun ? 'would delete' : 'deleted') : 'keep'}  ${b.pullId}  ${b.createdAt}  ${b.sessions} session(s)  ${formatBytes(b.bytes)}`);
        }
        io.stderr(
          `worktree ${worktree}: ${dryRun ? 'would remove' : 'removed'} ${result.deleted.backups} of ${result.backups.length} backup(s) older than ${formatDuration(olderThanMs)}` +
            `, ${dryRun ? 'would free' : 'freed'} ${formatBytes(result.bytesFreed)} (${result.dir})\n`,
        );
      }
      done(ExitCode.ok);
      return;
    }

    if (flags.olderThan !== undefined) throw usageError('bad-flag', '--older-than applies to --local only', 'the remote takes --keep-last, --keep-within and --grace');
    const policy = policyFrom(flags);
    const remote = await remoteFrom(flags, io);
    const worktree = await worktreeKey(flags, io);
    const jobs = parsePositiveInt(flags.jobs, '--jobs', Math.max(1, Math.min(4, os.availableParallelism())), 64);
    const reader = await (await openerFor(remote, io))(worktree);
    const result = await pruneRemote(reader, worktree, { policy, dryRun, jobs, signal: io.signal, progress });
    if (flags.json) {
      printJson(io, { command: 'prune', mode: 'remote', ...result });
    } else {
      const rules = [
        ...(policy.keepLast !== null ? [`the last ${policy.keepLast}`] : []),
        ...(policy.keepWithinMs !== null ? [`younger than ${formatDuration(policy.keepWithinMs)}`] : []),
      ];
      out(`worktree ${worktree}  current: ${result.current ?? '-'}  keep: ${rules.join(' and ')}, the current one, and anything younger than ${formatDuration(policy.graceMs)} (grace)`);
      for (const c of result.checkpoints) {
        out(`  ${c.action === 'delete' ? (dryRun ? 'would delete' : 'deleted') : 'keep'}  ${c.id}${c.reasons.length > 0 ? `  (${c.reasons.join(', ')})` : ''}`);
      }
      const verb = dryRun ? 'would delete' : 'deleted';
      // Each object by kind on a dry run (what the user decides on); the counts otherwise.
      if (dryRun) for (const o of result.deletedObjects) out(`  would delete  ${PRUNE_NOUN[o.kind]}  ${o.sha256 ?? o.key}  ${formatBytes(o.bytes)}`);
      const young = PRUNE_KINDS.reduce((n, kind) => n + result.objects[kind].young, 0);
      io.stderr(
        `worktree ${worktree}: ${verb} ${result.deleted.checkpoints} checkpoint(s) and ${describeCounts(result.deletedObjects)}, ${dryRun ? 'would free' : 'freed'} ${formatBytes(result.bytesFreed)}` +
          `${young > 0 ? `; kept ${young} unreferenced object(s) younger than the grace period (a push in progress?)` : ''}` +
          `${result.missing > 0 ? `; ${result.missing} object(s) the kept checkpoints name are missing (run \`sessmig check\`)` : ''}\n`,
      );
    }
    done(ExitCode.ok);
  });
}

/** --worktree KEY (or SESSMIG_WORKTREE, git config sessmig.worktree), else the current repository's key; no opencode, no host identity needed. */
async function worktreeKey(flags: PruneFlags, io: Io): Promise<string> {
  const key = (await settingsFrom(flags, io)).worktree.value;
  if (key !== null) return assertWorktreeKey(key);
  return (await findWorktree(io.cwd, undefined, io.env)).key;
}
