import { stat } from 'node:fs/promises';
import type { Reporter } from '../util/reporter.js';
import { SessmigError } from '../util/errors.js';
import type { Timing } from '../util/timing.js';
import type { Opencode } from './opencode.js';
import { replayAvailableAs, replaySession, replaySupported } from './replay.js';
import { OpencodeServer } from './server.js';

export type ReplayMode = 'auto' | 'always' | 'never';

/** The version-cache fact: this binary's server has the replay routes (the version the probe saw). */
const REPLAY_ROUTES = 'replayRoutes';

/**
 * Blobs larger than this go through `opencode import` even on the replay path: replay holds one
 * message (and its read-back) in memory at a time, which for a session with a huge message breaks
 * sessmig's flat memory (measured: 481 MB peak RSS replaying a 53 MB session, against ~140 MB
 * otherwise), and a large blob replays slower than it imports (32 MiB: 6.3 s vs 3.6 s).
 */
export const REPLAY_MAX_BYTES = 8 * 1024 * 1024;

/** Brings one rebased blob into the local opencode; what pull calls per session. */
export interface SessionImporter {
  readonly kind: 'replay' | 'import';
  importSession(file: string, cwd: string, id: string): Promise<'replay' | 'import'>;
  close(): Promise<void>;
  /** The replay path's running `opencode serve` (until close), for the checks after the imports. */
  readonly server?: OpencodeServer;
}

/** What the core asks of opencode to bring a batch of sessions in (part of OpencodeAdapter; see startImporter). */
export interface ImporterSource {
  openImporter(cwd: string, count: number, mode: ReplayMode, report: Reporter, timing: Timing): Promise<SessionImporter>;
}

/** The core's entry point: asks the adapter it is given (the real one: startImporter). */
export const openImporter = (opencode: ImporterSource, cwd: string, count: number, mode: ReplayMode, report: Reporter, timing: Timing) =>
  opencode.openImporter(cwd, count, mode, report, timing);

/**
 * Chooses how pull brings sessions in: one `opencode serve` replaying synthesized events (one
 * process for all sessions; only where the destination has the strict replay route, detected
 * from its version and /doc, never by trial on user data), or one `opencode import` per session.
 * A replay that fails is cleaned up by the replay module, then the session goes through import.
 */
export async function startImporter(
  opencode: Opencode,
  cwd: string,
  count: number,
  mode: ReplayMode,
  report: Reporter,
  timing: Timing,
): Promise<SessionImporter> {
  const viaImport: SessionImporter = {
    kind: 'import',
    async importSession(file, dir, id) {
      await opencode.importFile(file, dir, id);
      return 'import';
    },
    close: async () => undefined,
  };
  if (mode === 'never' || count === 0) return viaImport;
  const version = await opencode.version();
  if (mode === 'auto' && (count < 2 || !replaySupported(version))) return viaImport;
  let server: OpencodeServer | undefined;
  try {
    server = await timing.time('serve-start', () => opencode.startServer(cwd));
    // The routes of this very binary were probed before (version cache): only its version is asked.
    const probed = await opencode.rememberedFact(REPLAY_ROUTES);
    if (!(await timing.time('serve-start', () => replayAvailableAs(server!, probed)))) throw new Error(`opencode ${version} has no strict /sync/replay route`);
    if (probed === undefined) await opencode.rememberFact(REPLAY_ROUTES, version);
  } catch (error) {
    await server?.stop();
    if (error instanceof SessmigError && error.code === 'interrupted') throw error;
    if (mode === 'always') throw new SessmigError('replay-unavailable', `--replay always: ${(error as Error).message}`, { hint: 'use --replay auto' });
    report.warn(`replay is not available here (${(error as Error).message}); importing one process per session`);
    return viaImport;
  }
  const live = server;
  return {
    kind: 'replay',
    server: live,
    async importSession(file, dir, id) {
      if (mode === 'auto' && (await stat(file)).size > REPLAY_MAX_BYTES) {
        await timing.time('import', () => opencode.importFile(file, dir, id));
        return 'import';
      }
      try {
        // Fields opencode dropped while decoding the events are left to the checks after the imports (destinationChecks.ts).
        await timing.time('replay', () => replaySession(live, file, { tempDir: opencode.options.tempDir, opencode }));
        return 'replay';
      } catch (error) {
        const cleaned = error instanceof SessmigError && error.code === 'replay-failed' && error.data?.cleaned === true;
        if (!cleaned) throw error;
        report.warn(`replay of ${id} failed (${error.message}); importing it instead`);
        await timing.time('import', () => opencode.importFile(file, dir, id));
        return 'import';
      }
    },
    close: () => live.stop(),
  };
}

export function parseReplayMode(value: string | undefined): ReplayMode {
  if (value === undefined || value === 'auto' || value === 'always' || value === 'never') return value ?? 'auto';
  throw new SessmigError('bad-flag', `--replay ${JSON.stringify(value.slice(0, 20))} is not auto, always or never`, { hint: 'use --replay auto' });
}
