import { SessmigError } from '../util/errors.js';
import { CODE_FORMAT_VERSION, CodeState } from '../format/codeSchema.js';
import type { Remote } from '../remote/remote.js';
import { applyCode, bundlesNeeded, type ApplyResult } from './apply.js';
import { captureCode } from './capture.js';
import { fetchCodeLeg, storeCodeLeg } from './codeStore.js';

/**
 * The code leg as push and pull call it: two functions and one reader of the manifest's `code`
 * field. Push: `pushCodeLeg` before it writes the manifest, then puts the returned state in
 * `manifest.code`. Pull: `readCodeState(manifest)`, then `pullCodeLeg` after its blobs are
 * verified and before it imports sessions; the returned backup goes into the pull's backup
 * record so `sessmig undo` (and a failed pull) can call `undoCode`.
 */

export interface PushCodeOptions {
  remote: Remote;
  worktreeKey: string;
  /** The worktree's top-level folder. */
  root: string;
  /** The code part of the checkpoint the push builds on (the pointer's), if it has one. */
  base: CodeState | undefined;
  /** A private temp folder (the bundle file is written there). */
  tempDir: string;
  /** --code-max-bytes (default 512 MiB). */
  maxBytes?: number;
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
}

export interface PushedCode {
  /** For `manifest.code`. */
  state: CodeState;
  /** Bytes uploaded by this push (0: nothing changed since the base). */
  uploadedBytes: number;
  /** What this push added: nothing, a new chain ('full': it starts with a bundle without prerequisites) or an increment. */
  bundle: 'none' | 'full' | 'incremental';
}

/** Captures the worktree's code and stores its new bundle. Errors: see captureCode and storeCodeLeg. */
export async function pushCodeLeg(options: PushCodeOptions): Promise<PushedCode> {
  const captured = await captureCode(options.root, { tempDir: options.tempDir, base: options.base, maxBytes: options.maxBytes, env: options.env });
  for (const warning of captured.warnings) options.warn?.(warning);
  const stored = await storeCodeLeg(options.remote, options.worktreeKey, captured);
  const fresh = captured.newBundles[0];
  return {
    state: stored.state,
    uploadedBytes: stored.uploadedBytes,
    bundle: !fresh ? 'none' : fresh.prerequisites.length === 0 ? 'full' : 'incremental',
  };
}

export interface PullCodeOptions {
  remote: Remote;
  worktreeKey: string;
  /** The destination: a checkout's top-level folder, or an empty or missing folder. */
  destination: string;
  state: CodeState;
  tempDir: string;
  /** The pull's backup folder: the destination's saved state is recorded there. */
  backupDir: string;
  force?: boolean;
  env?: NodeJS.ProcessEnv;
}

/** Downloads what the destination lacks (verified), then applies. Errors: see fetchCodeLeg and applyCode. */
export async function pullCodeLeg(options: PullCodeOptions): Promise<ApplyResult & { downloadedBytes: number }> {
  const needed = await bundlesNeeded(options.destination, options.state, options.env);
  const fetched = await fetchCodeLeg(options.remote, options.worktreeKey, options.state, options.tempDir, needed);
  const applied = await applyCode(options.destination, options.state, {
    bundleFiles: fetched.files,
    tempDir: options.tempDir,
    backupDir: options.backupDir,
    force: options.force,
    env: options.env,
  });
  return { ...applied, downloadedBytes: fetched.downloadedBytes };
}

/**
 * The `code` part of a checkpoint manifest (a loose document: the field is not in its schema),
 * or undefined when the checkpoint carries no code. A newer part version is refused with an
 * upgrade hint (`code-format-newer`), a malformed one as damaged (`code-state-malformed`).
 */
export function readCodeState(manifest: { id: string } & Record<string, unknown>): CodeState | undefined {
  const value = manifest.code;
  if (value === undefined) return undefined;
  const version = (value as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof version === 'number' && version > CODE_FORMAT_VERSION) {
    throw new SessmigError('code-format-newer', `checkpoint ${manifest.id} carries code in format ${version}; this sessmig reads up to ${CODE_FORMAT_VERSION}`, {
      hint: 'upgrade sessmig on this host, or pull with --no-code',
      remoteData: true,
    });
  }
  const parsed = CodeState.safeParse(value);
  if (!parsed.success) {
    throw new SessmigError('code-state-malformed', `checkpoint ${manifest.id} has a malformed code part: ${parsed.error.issues[0]?.message ?? 'invalid'} at ${parsed.error.issues[0]?.path.join('.') ?? '?'}`, {
      hint: 'the remote was edited by hand or damaged; run `sessmig check`, or pull with --no-code',
      remoteData: true,
    });
  }
  return parsed.data;
}
