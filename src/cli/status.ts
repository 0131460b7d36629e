import type { Command } from 'commander';
import { status } from '../core/status.js';
import { readAutoPushState } from '../host/autoPushState.js';
import { describeSettings } from '../host/settings.js';
import { addCommonOptions, printJson, settingsView, withContext, type CommonOptions, type Io } from './options.js';

export function registerStatus(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program.command('status').description("show the worktree's owner, current checkpoint, and where each session stands against the remote"),
  ).action(async (flags: CommonOptions) => {
    const { result, settings, autoPush } = await withContext(flags, io, async (ctx) => ({
      result: await status(ctx),
      settings: settingsView(ctx),
      autoPush: (await readAutoPushState(ctx.paths.state, ctx.worktree.key))?.last ?? null,
    }));
    if (flags.json) {
      printJson(io, { command: 'status', ...result, settings, autoPush });
    } else {
      const out = (line: string) => io.stdout(`${line}\n`);
      out(`worktree ${result.worktree} (${result.worktreeRoot})`);
      out(`remote   ${result.remote}`);
      for (const line of describeSettings(settings, result.worktree)) out(`setting  ${line}`);
      out(`auto push ${autoPush ? `last ${autoPush.finishedAt}: ${autoPush.result} — ${autoPush.message}` : 'none yet (sessmig plugin install pushes on idle)'}`);
      out(`stored   ${result.encrypted ? `encrypted (key ${result.encrypted.keyId})` : 'in the clear (push --encrypt to encrypt)'}`);
      out(`owner    ${result.ownerDescription}${result.ownedByThisHost ? '  ← this host' : ''}`);
      out(`current  ${result.checkpoint ?? '-'}${result.generation ? ` (generation ${result.generation})` : ''}`);
      if (result.handedAway) out(`handed away from this host by push --migrate at ${result.handedAway.at} (checkpoint ${result.handedAway.checkpoint})`);
      if (result.code) {
        const off = (['head', 'branch', 'index', 'worktree'] as const).filter((part) => !result.code![part]);
        out(`code     ${off.length === 0 ? 'the same as the checkpoint\'s' : `differs from the checkpoint's: ${off.join(', ')}`}`);
      }
      out(`checkout ${result.checkout.root} (${result.checkout.branch ? `branch ${result.checkout.branch}` : 'detached HEAD'})`);
      for (const session of result.sessions) {
        const where = session.state === 'other-checkout' ? session.local?.directory ?? session.checkout?.root : session.checkout && session.checkout.root !== result.worktreeRoot ? `${session.checkout.host.hostname || session.checkout.host.hostId}:${session.checkout.root}` : undefined;
        out(`  ${session.state.padEnd(16)} ${session.id}  ${session.parentID ? '└ ' : ''}${session.title}${where ? `  [${where}${session.checkout?.branch ? ` (${session.checkout.branch})` : ''}]` : ''}`);
      }
      for (const backup of result.backups) out(`backup ${backup.pullId}  ${backup.sessions.length} session(s)  ${backup.dir}`);
    }
    done(0);
  });
}
