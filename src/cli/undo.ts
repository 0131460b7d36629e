import type { Command } from 'commander';
import { findWorktree } from '../core/worktree.js';
import { hostPaths } from '../host/paths.js';
import { listUndoable, undo } from '../core/undo.js';
import { addCommonOptions, printJson, settingsFrom, withContext, type CommonOptions, type Io } from './options.js';

interface UndoFlags extends CommonOptions {
  list?: boolean;
}

export function registerUndo(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program
      .command('undo')
      .description('restore what the last pull on this host changed in this worktree (from its backups)')
      .option('-l, --list', 'list the pulls that can be undone, newest first'),
  ).action(async (flags: UndoFlags) => {
    if (flags.list) {
      const settings = await settingsFrom(flags, io);
      const worktree = await findWorktree(io.cwd, settings.worktree.value ?? undefined, io.env);
      const entries = await listUndoable({ paths: hostPaths(io.env), worktree });
      if (flags.json) {
        printJson(io, { command: 'undo', worktree: worktree.key, pulls: entries });
      } else {
        if (entries.length === 0) io.stderr(`no pulls to undo for worktree ${worktree.key}\n`);
        for (const entry of entries) {
          io.stdout(
            `${entry.pullId}  ${entry.createdAt}  checkpoint ${entry.checkpoint}  imported ${entry.imported.length}, would restore ${entry.restores.length}${entry.undoneAt ? `  (undone ${entry.undoneAt})` : ''}\n`,
          );
        }
      }
      done(0);
      return;
    }
    const result = await withContext(flags, io, (ctx) => undo(ctx), { remote: false });
    if (flags.json) {
      printJson(io, { command: 'undo', ...result });
    } else {
      io.stderr(`undid pull ${result.pullId}: removed ${result.removed.length} session(s), restored ${result.restored.length}\n`);
    }
    done(0);
  });
}
