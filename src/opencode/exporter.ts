import type { Readable } from 'node:stream';
import type { Reporter } from '../util/reporter.js';
import { SessmigError } from '../util/errors.js';
import type { Opencode } from './opencode.js';
import { OpencodeServer, serverSupported } from './server.js';
import { CheckedServerExporter, readRowSizes } from './servedExport.js';
import type { ListedRowSizes } from './todos.js';

/** Anything that yields a session as `opencode export <id>` prints it (the same JSON value). */
export interface SessionExporter {
  exportSession(id: string): Promise<Readable>;
}

export type ExportVia = 'auto' | 'server' | 'cli';

/** An exporter opened for a batch of sessions; close() stops what it started (a server). */
export interface OpenedExporter {
  exporter: SessionExporter;
  kind: 'server' | 'cli';
  close(): Promise<void>;
}

/** What the core asks of opencode to export a batch of sessions (part of OpencodeAdapter; see startExporter). */
export interface ExporterSource {
  openExporter(cwd: string, count: number, via: ExportVia, report: Reporter, ids?: string[], known?: ListedRowSizes, early?: EarlyExportServer): Promise<OpenedExporter>;
  /** Starts the exports' server before the command knows what it exports (see EarlyExportServer). */
  startExportServer(cwd: string, via: ExportVia, version: Promise<string>): EarlyExportServer;
}

/** The core's entry points: ask the adapter they are given (the real one: startExporter, startExportServerFor). */
export const openExporter = (opencode: ExporterSource, cwd: string, count: number, via: ExportVia, report: Reporter, ids?: string[], known?: ListedRowSizes, early?: EarlyExportServer) =>
  opencode.openExporter(cwd, count, via, report, ids, known, early);
export const startExportServer = (opencode: ExporterSource, cwd: string, via: ExportVia, version: Promise<string>) => opencode.startExportServer(cwd, via, version);

/**
 * `opencode serve` for the exports, started before the command knows what it will export, so that
 * its start (about a second of CPU) overlaps the listing `opencode db` instead of following it.
 * `server` settles to the running server, or to `undefined` where the server would not be used
 * (via cli; a version without the export shape) — never rejects: a failed start is kept in `error`
 * for openExporter to report (it then exports through the CLI). Hand it to openExporter, which
 * owns it from then on; a command that ends before that calls stop().
 */
export interface EarlyExportServer {
  readonly server: Promise<OpencodeServer | undefined>;
  /** Why the server did not start (set once `server` settled to undefined after a failure). */
  readonly error: () => unknown;
  stop(): Promise<void>;
}

export function startExportServerFor(opencode: Opencode, cwd: string, via: ExportVia, version: Promise<string> = opencode.version()): EarlyExportServer {
  let failure: unknown;
  const server =
    via === 'cli'
      ? Promise.resolve(undefined)
      : version
          .then((version) => (via === 'auto' && !serverSupported(version) ? undefined : opencode.startServer(cwd)))
          .catch((error: unknown) => {
            failure = error;
            return undefined;
          });
  return {
    server,
    error: () => failure,
    stop: async () => (await server)?.stop(),
  };
}

/**
 * Chooses how to export `count` sessions: one `opencode serve` for all of them (one process start,
 * then one HTTP request per session), or one `opencode export` process per session. The server
 * pays off from two sessions on, where the local opencode is known to serve the export shape —
 * and from one on when it is already running (`early`); if it cannot start, the CLI path takes
 * over with a warning. Always call close().
 */
export async function startExporter(
  opencode: Opencode,
  cwd: string,
  count: number,
  via: ExportVia,
  report: Reporter,
  /**
   * The sessions that will be exported: through the server, each is checked against opencode's
   * database and exported through the CLI where the server left a field out (servedExport.ts).
   */
  ids?: string[],
  /** Row sizes read already (with the listing): only the sessions they do not cover are asked for. */
  known?: ListedRowSizes,
  /** A server started early (startExportServer): used, or stopped when there is nothing to export. */
  early?: EarlyExportServer,
): Promise<OpenedExporter> {
  const cli = { exporter: opencode, kind: 'cli' as const, close: async () => undefined };
  // Sessions known to be large go through `opencode export` (see CheckedServerExporter's `direct`).
  const large = new Set((ids ?? []).filter((id) => (known?.sessionBytes?.get(id) ?? 0) > SERVED_EXPORT_MAX_BYTES));
  const served = (ids ?? []).filter((id) => !large.has(id));
  const checked = (server: OpencodeServer) => {
    const sizes = ids ? rowSizes(opencode, served, known) : undefined;
    const exporter = sizes ? new CheckedServerExporter(server, opencode, sizes, undefined, large) : server;
    return { exporter, kind: 'server' as const, close: () => server.stop() };
  };
  const fallBack = (error: unknown) => {
    if (error instanceof SessmigError && error.code === 'interrupted') throw error;
    if (via === 'server') throw error;
    report.warn(`opencode serve did not start (${(error as Error).message}); exporting one process per session instead`);
    return cli;
  };
  if (early) {
    if (via === 'cli' || count === 0 || (via === 'auto' && ids !== undefined && served.length === 0)) {
      await early.stop();
      return cli;
    }
    const server = await early.server;
    if (server) return checked(server);
    const error = early.error();
    return error === undefined ? cli : fallBack(error);
  }
  if (via === 'cli' || count === 0) return cli;
  const version = await opencode.version();
  if (via === 'auto' && (count < 2 || !serverSupported(version))) return cli;
  try {
    const sizes = ids ? rowSizes(opencode, ids, known) : undefined; // asked while the server starts
    sizes?.catch(() => undefined);
    const server = await opencode.startServer(cwd);
    const exporter = sizes ? new CheckedServerExporter(server, opencode, sizes) : server;
    return { exporter, kind: 'server', close: () => server.stop() };
  } catch (error) {
    return fallBack(error);
  }
}

/**
 * Above this size (the sum of its rows' JSON, as the listing read it) a session is exported through
 * `opencode export` even where a server runs: the served export's check holds a message whole in
 * memory, and the CLI's export of a large session is no slower than the server's.
 */
export const SERVED_EXPORT_MAX_BYTES = 8 * 1024 * 1024;

/** The row sizes of these sessions: those `known` covers from it, the others through one `opencode db`. */
async function rowSizes(opencode: Opencode, ids: string[], known: ListedRowSizes | undefined): Promise<Map<string, number>> {
  const missing = known ? ids.filter((id) => !known.sessions.has(id)) : ids;
  if (missing.length === 0) return known!.rows;
  const read = await readRowSizes(opencode, missing);
  if (!known) return read;
  return new Map([...known.rows, ...read]);
}

export function parseExportVia(value: string | undefined): ExportVia {
  return value === 'server' || value === 'cli' ? value : 'auto';
}
