import { checkCompatibility, type Compatibility } from '../opencode/versions.js';
import type { Context } from './context.js';
import { checkResumable, type ResumeCheck } from './destinationChecks.js';
import { readManifest, readPointer } from './remoteStore.js';

export interface DoctorResult {
  worktree: string;
  remote: string;
  opencode: { bin: string; version: string };
  remoteExport: { checkpoint: string; opencodeVersion: string; host: string } | null;
  compatibility: Compatibility | null;
  /** Sessions of the current checkpoint whose last model or agent this host's opencode does not offer (#23 item 6). */
  resume: ResumeCheck | null;
}

/** This host's opencode, the version that made the remote's current checkpoint, and whether they fit. */
export async function doctor(ctx: Context): Promise<DoctorResult> {
  const version = await ctx.opencode.version();
  const pointer = await readPointer(ctx.remote, ctx.worktree.key);
  const manifest = pointer ? await readManifest(ctx.remote, ctx.worktree.key, pointer.pointer.checkpoint) : undefined;
  return {
    worktree: ctx.worktree.key,
    remote: ctx.remote.display,
    opencode: { bin: ctx.opencode.options.bin, version },
    remoteExport: manifest ? { checkpoint: manifest.id, opencodeVersion: manifest.source.opencodeVersion, host: manifest.source.host.hostname } : null,
    compatibility: manifest ? checkCompatibility(manifest.source.opencodeVersion, version) : null,
    resume: manifest ? await checkResumable(ctx, manifest) : null,
  };
}
