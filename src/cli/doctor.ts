import type { Command } from 'commander';
import { doctor } from '../core/doctor.js';
import { ExitCode, SessmigError } from '../util/errors.js';
import { describeSettings } from '../host/settings.js';
import { addCommonOptions, printJson, settingsView, withContext, type CommonOptions, type Io } from './options.js';

export function registerDoctor(program: Command, io: Io, done: (code: number) => void): void {
  addCommonOptions(
    program.command('doctor').description("check this host's opencode against the version that made the remote's current checkpoint"),
  ).action(async (flags: CommonOptions) => {
    // An opencode sessmig does not know is the finding: exit 1 (doctor-found-problems), before the remote is read.
    const { result, settings } = await withContext(flags, io, async (ctx) => ({ result: await doctor(ctx), settings: settingsView(ctx) }), { remote: true }).catch((error: unknown) => {
      if (!(error instanceof SessmigError) || error.code !== 'opencode-unsupported') throw error;
      throw new SessmigError('doctor-found-problems', error.message, { ...(error.hint ? { hint: error.hint } : {}), ...(error.data ? { data: error.data } : {}) });
    });
    const incompatible = result.compatibility?.verdict === 'incompatible';
    if (flags.json) {
      printJson(io, { command: 'doctor', ...result, settings });
    } else {
      const out = (line: string) => io.stdout(`${line}\n`);
      for (const line of describeSettings(settings, result.worktree)) out(`setting           ${line}`);
      out(`opencode here     ${result.opencode.version} (${result.opencode.bin})`);
      out(`remote's export   ${result.remoteExport ? `${result.remoteExport.opencodeVersion} (checkpoint ${result.remoteExport.checkpoint}, from ${result.remoteExport.host})` : '- (nothing pushed yet)'}`);
      const c = result.compatibility;
      if (c?.verdict === 'same') out('compatible        yes (same version)');
      if (c?.verdict === 'compatible') out(`compatible        yes — ${c.note}`);
      if (c?.verdict === 'incompatible') {
        out('compatible        NO');
        for (const item of c.breaks) out(`  ${item.id}: ${item.description}\n  fix: ${item.upgrade}`);
      }
      const resume = result.resume;
      if (resume?.error) out(`models, agents    not checked: ${resume.error}`);
      else if (resume && resume.missing.length === 0 && resume.unknown === 0) out('models, agents    this host offers what every session last used');
      if (resume && resume.missing.length > 0) {
        out(`models, agents    ${resume.missing.length} session(s) last used a model or agent this host lacks:`);
        for (const item of resume.missing) out(`  ${item.hint}`);
      }
      if (resume && resume.unknown > 0) out(`                  ${resume.unknown} session(s) were pushed by an older sessmig, which did not record their model and agent`);
    }
    done(incompatible ? ExitCode.failed : ExitCode.ok);
  });
}
