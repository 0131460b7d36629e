import type { LastUsed } from '../blob/sessionBlob.js';
import type { Manifest } from '../format/schema.js';
import { alignRows, compareInfo, describeDifferences, MESSAGE_LIMIT, type Difference, type RowsOutcome } from '../opencode/fidelity.js';
import type { SessionImporter } from '../opencode/importer.js';
import { compareVersions, parseVersion } from '../opencode/versions.js';
import { describeMissing, missingHere, readOfferings, type Missing, type Offerings } from '../opencode/offerings.js';
import type { OpencodeServer } from '../opencode/server.js';
import type { Context } from './context.js';
import { SessmigError } from '../util/errors.js';

/**
 * What pull checks on this host once sessions came in (#23 items 6 and 9), through one
 * `opencode serve` — the replay's, when it ran; else one started for these checks (about a second,
 * against one `opencode export` process per session plus two for the model and agent lists):
 *  - whether this host's opencode offers the model and agent each session last used (offerings.ts);
 *  - whether opencode stored each session as its blob says, field by field (fidelity.ts): fields it
 *    dropped from messages or parts are put back; anything else that differs is reported.
 * Neither fails the pull: each finding is a warning (and a field of the session in --json).
 */
export interface Arrival {
  id: string;
  title: string;
  /** The blob as imported (downloaded, rebased, adapted). */
  file: string;
  /** The directory it was imported into. */
  directory: string;
  via: 'replay' | 'import';
  lastUsed: LastUsed | undefined;
}

export interface ArrivalFindings {
  /** The model / agent the session last used that this host's opencode does not offer. */
  missing?: Missing;
  /** Fields this host's opencode dropped and sessmig put back (`messages[0].parts[2].synthetic`). */
  restored?: string[];
  /** What still differs from the blob after the restore: reported, not repaired. */
  differs?: string[];
}

/**
 * `exportedBy`: the opencode version that exported the blobs. A dropped field is put back only
 * where this host's opencode is that version or newer — a field its own export writes; from a
 * newer opencode it is reported instead (an older one may not expect it in its rows).
 */
export async function checkArrivals(ctx: Context, arrivals: Arrival[], importer: SessionImporter, exportedBy: string): Promise<Map<string, ArrivalFindings>> {
  const findings = new Map<string, ArrivalFindings>();
  if (arrivals.length === 0) return findings;
  const { report, timing } = ctx;
  let own: Promise<OpencodeServer> | undefined;
  try {
    // A server of our own starts beside the rows' `opencode db` (issue 22: one start less on the
    // wall clock). An `opencode db` that writes while `opencode serve` starts on the same database
    // can find it locked under load (seen in roundtrip.test and plugin.test): the adapter sends
    // such a statement again (Opencode.query), and a server that does not start only leaves the
    // models and the session info unchecked, with a warning.
    const local = await ctx.opencode.version();
    const restore = parseVersion(exportedBy) !== undefined && compareVersions(local, exportedBy) >= 0;
    const rows = timing.time('fields', () => alignRows(ctx.opencode, arrivals, { restore }));
    rows.catch(() => undefined); // awaited below
    if (!importer.server) {
      own = timing.time('serve-start', () => ctx.opencode.serve(ctx.worktree.root));
      own.catch(() => undefined);
    }
    // Without a server (it would not start), the rows are still checked; models, agents and the session info are not.
    const server = importer.server ?? (await own!.catch((error: unknown) => {
      if (error instanceof SessmigError && error.code === 'interrupted') throw error;
      report.warn(`opencode serve did not start (${(error as Error).message}): the models and agents of the ${arrivals.length} session(s) brought in, and their session info, went unchecked`);
      return undefined;
    }));
    if (server) await timing.time('models', () => checkModels(ctx, server, arrivals, findings));
    await timing.time('fields', async () => checkFields(ctx, server, arrivals, await rows, findings));
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'interrupted') throw error;
    report.warn(`could not check the ${arrivals.length} session(s) brought in against this host's opencode (${(error as Error).message}): fields it may have dropped and models or agents it may lack went unchecked`);
  } finally {
    await (await own?.catch(() => undefined))?.stop();
  }
  return findings;
}

async function checkModels(ctx: Context, server: OpencodeServer, arrivals: Arrival[], findings: Map<string, ArrivalFindings>): Promise<void> {
  const known = arrivals.filter((arrival) => arrival.lastUsed?.model || arrival.lastUsed?.agent !== undefined);
  if (known.length === 0) return;
  const byDirectory = new Map<string, Promise<Offerings | Error>>();
  const warned = new Set<string>();
  for (const arrival of known) {
    if (!byDirectory.has(arrival.directory)) byDirectory.set(arrival.directory, readOfferings(server, arrival.directory).catch((error: unknown) => error as Error));
  }
  for (const arrival of known) {
    const offerings = await byDirectory.get(arrival.directory)!;
    if (offerings instanceof Error) {
      if (offerings instanceof SessmigError && offerings.code === 'interrupted') throw offerings;
      if (!warned.has(arrival.directory)) ctx.report.warn(`could not list the models and agents of this host's opencode for ${arrival.directory} (${offerings.message}); sessions there were not checked against them`);
      warned.add(arrival.directory);
      continue;
    }
    const missing = missingHere(arrival.lastUsed, offerings);
    if (missing.model === undefined && missing.agent === undefined) continue;
    ctx.report.warn(describeMissing(arrival, missing, offerings));
    findings.set(arrival.id, { ...findings.get(arrival.id), missing });
  }
}

async function checkFields(ctx: Context, server: OpencodeServer | undefined, arrivals: Arrival[], rows: Map<string, RowsOutcome>, findings: Map<string, ArrivalFindings>): Promise<void> {
  const version = await ctx.opencode.version();
  for (const arrival of arrivals) {
    // The session info lives in columns, not JSON: compared as opencode serves it, and reported only.
    let info = { differences: [] as Difference[], more: 0 };
    if (server) {
      const { status, body } = await server.request('GET', `/session/${arrival.id}`);
      if (status !== 200) throw new Error(`opencode serve answered ${status} to GET /session/${arrival.id}`);
      info = await compareInfo(JSON.parse(body) as unknown, arrival.file);
    }
    const { restored, remaining } = rows.get(arrival.id)!;
    if (remaining.unchecked?.length) {
      ctx.report.warn(
        `session ${arrival.id} ("${arrival.title}"): ${remaining.unchecked.length} message(s) over ${MESSAGE_LIMIT / 1024 / 1024} MiB (${remaining.unchecked.slice(0, 3).join(', ')}${remaining.unchecked.length > 3 ? ', …' : ''}) were not compared field by field with what opencode stored (memory); opencode took them in and their count was verified`,
      );
    }
    const differences = [...info.differences, ...remaining.differences];
    const more = info.more + remaining.more;
    if (restored.length === 0 && differences.length === 0 && more === 0) continue;
    const finding: ArrivalFindings = { ...findings.get(arrival.id) };
    if (restored.length > 0) {
      finding.restored = restored;
      ctx.report.info(`session ${arrival.id} ("${arrival.title}"): ${describeRestored(version, restored)}`);
    }
    if (differences.length > 0 || more > 0) {
      finding.differs = differences.map((item) => item.at);
      ctx.report.warn(describeUnfaithful(arrival, version, differences, more));
    }
    findings.set(arrival.id, finding);
  }
}

export function describeRestored(version: string, restored: string[]): string {
  return `opencode ${version} here dropped ${restored.length} field(s) when it took the session in (${restored.slice(0, 5).join(', ')}${restored.length > 5 ? ', …' : ''}); sessmig put them back`;
}

export function describeUnfaithful(session: { id: string; title: string }, version: string, differences: Difference[], more: number): string {
  return (
    `session ${session.id} ("${session.title}") is not stored here as it was exported: opencode ${version} here keeps it with ${describeDifferences(differences, more)}; ` +
    'that is lost on this host (the copy it came from keeps it; a push from here will not carry it)'
  );
}

/**
 * After `sessmig undo` or a rollback re-imported local backups (opencode export files): the rows
 * made equal to the backups where opencode dropped fields, and a warning for whatever still differs.
 * Never throws (the restore itself succeeded); a failure to check is a warning.
 */
export async function alignRestored(ctx: Pick<Context, 'opencode' | 'report'>, restored: { id: string; title: string; file: string }[]): Promise<void> {
  if (restored.length === 0) return;
  try {
    const version = await ctx.opencode.version();
    const outcome = await alignRows(ctx.opencode, restored);
    for (const session of restored) {
      const found = outcome.get(session.id);
      if (!found) continue;
      if (found.restored.length > 0) ctx.report.info(`session ${session.id} ("${session.title}"): ${describeRestored(version, found.restored)}`);
      if (found.remaining.differences.length > 0 || found.remaining.more > 0) ctx.report.warn(describeUnfaithful(session, version, found.remaining.differences, found.remaining.more));
    }
  } catch (error) {
    ctx.report.warn(`could not compare the restored session(s) with their backups (${(error as Error).message}): fields opencode may have dropped went unchecked`);
  }
}

/** doctor: the sessions of a checkpoint whose last model or agent this host's opencode does not offer. */
export interface ResumeCheck {
  /** Sessions whose last model/agent this host lacks. */
  missing: { id: string; title: string; missing: Missing; hint: string }[];
  /** Sessions whose manifest entry does not say (pushed by an older sessmig). */
  unknown: number;
  /** Why the check could not be made (opencode serve failed, or listed its models unexpectedly). */
  error?: string;
}

export async function checkResumable(ctx: Context, manifest: Manifest): Promise<ResumeCheck> {
  const check: ResumeCheck = { missing: [], unknown: manifest.sessions.filter((session) => !session.lastUsed).length };
  const known = manifest.sessions.filter((session) => session.lastUsed);
  if (known.length === 0) return check;
  let server: OpencodeServer | undefined;
  try {
    server = await ctx.opencode.serve(ctx.worktree.root);
    const offerings = await readOfferings(server, ctx.worktree.root);
    for (const session of known) {
      const missing = missingHere(session.lastUsed as LastUsed, offerings);
      if (missing.model === undefined && missing.agent === undefined) continue;
      check.missing.push({ id: session.id, title: session.title, missing, hint: describeMissing(session, missing, offerings) });
    }
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'interrupted') throw error;
    check.error = (error as Error).message;
  } finally {
    await server?.stop();
  }
  return check;
}
