import type { Readable } from 'node:stream';
import type { Reporter } from '../util/reporter.js';
import { SessmigError } from '../util/errors.js';
import type { Opencode } from './opencode.js';
import { OpencodeServer, serverSupported } from './server.js';
import { CheckedServerExporter, readRowSizes } from './servedExport.js';

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
  openExporter(cwd: string, count: number, via: ExportVia, report: Reporter, ids?: string[]): Promise<OpenedExporter>;
}

/** The core's entry point: asks the adapter it is given (the real one: startExporter). */
export const openExporter = (opencode: ExporterSource, cwd: string, count: number, via: ExportVia, report: Reporter, ids?: string[]) =>
  opencode.openExporter(cwd, count, via, report, ids);

/**
 * Chooses how to export `count` sessions: one `opencode serve` for all of them (one process start,
 * then one HTTP request per session), or one `opencode export` process per session. The server
 * pays off from two sessions on, where the local opencode is known to serve the export shape;
 * if it cannot start, the CLI path takes over with a warning. Always call close().
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
): Promise<OpenedExporter> {
  const cli = { exporter: opencode, kind: 'cli' as const, close: async () => undefined };
  if (via === 'cli' || count === 0) return cli;
  const version = await opencode.version();
  if (via === 'auto' && (count < 2 || !serverSupported(version))) return cli;
  try {
    const sizes = ids ? readRowSizes(opencode, ids) : undefined; // asked while the server starts
    sizes?.catch(() => undefined);
    const server = await OpencodeServer.start({ ...opencode.options, cwd });
    const exporter = sizes ? new CheckedServerExporter(server, opencode, sizes) : server;
    return { exporter, kind: 'server', close: () => server.stop() };
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'interrupted') throw error;
    if (via === 'server') throw error;
    report.warn(`opencode serve did not start (${(error as Error).message}); exporting one process per session instead`);
    return cli;
  }
}

export function parseExportVia(value: string | undefined): ExportVia {
  return value === 'server' || value === 'cli' ? value : 'auto';
}
