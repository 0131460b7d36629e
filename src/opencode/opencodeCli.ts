import type { Reporter } from '../util/reporter.js';
import type { Timing } from '../util/timing.js';
import { startExporter, startExportServerFor, type EarlyExportServer, type ExportVia, type OpenedExporter } from './exporter.js';
import { alignStoredRows, type RowsOutcome } from './fidelity.js';
import { startImporter, type ReplayMode, type SessionImporter } from './importer.js';
import { Opencode, type SessionRow } from './opencode.js';
import type { OpencodeAdapter } from './opencodeAdapter.js';
import { OpencodeServer } from './server.js';
import { selectBusySessions, selectMessageCounts, selectPartFields, type PartFields } from './sessionQueries.js';
import { replaceShares, selectSessionExtras, type SessionExtras, type ShareRow } from './shareRows.js';
import { replaceTodos, selectSessionState, selectSessionsWithTodos, selectTodos, type ListedRowSizes, type RowSizeScope, type SessionState, type Todo } from './todos.js';

/**
 * The real OpencodeAdapter: the process runner of opencode.ts (version, `opencode db`, export,
 * import, delete) plus the statements and servers the adapter modules build on it. Each method
 * only hands over to the module that always did the work.
 */
export class OpencodeCli extends Opencode implements OpencodeAdapter {
  listSessionsWithTodos(sizes?: RowSizeScope): Promise<{ rows: SessionRow[]; todos: Map<string, Todo[]>; rowSizes?: ListedRowSizes }> {
    return selectSessionsWithTodos(this, sizes);
  }

  readTodos(ids: string[]): Promise<Map<string, Todo[]>> {
    return selectTodos(this, ids);
  }

  readSessionState(ids: string[]): Promise<SessionState> {
    return selectSessionState(this, ids);
  }

  writeTodos(lists: Map<string, Todo[]>, options: { emptyNow?: boolean } = {}): Promise<void> {
    return replaceTodos(this, lists, options);
  }

  readSessionExtras(ids: string[]): Promise<SessionExtras> {
    return selectSessionExtras(this, ids);
  }

  writeShares(shares: Map<string, ShareRow>): Promise<void> {
    return replaceShares(this, shares);
  }

  openExporter(cwd: string, count: number, via: ExportVia, report: Reporter, ids?: string[], known?: ListedRowSizes, early?: EarlyExportServer): Promise<OpenedExporter> {
    return startExporter(this, cwd, count, via, report, ids, known, early);
  }

  startExportServer(cwd: string, via: ExportVia, version: Promise<string>): EarlyExportServer {
    return startExportServerFor(this, cwd, via, version);
  }

  openImporter(cwd: string, count: number, mode: ReplayMode, report: Reporter, timing: Timing): Promise<SessionImporter> {
    return startImporter(this, cwd, count, mode, report, timing);
  }

  alignRows(sessions: { id: string; file: string }[], options: { restore?: boolean } = {}): Promise<Map<string, RowsOutcome>> {
    return alignStoredRows(this, sessions, options);
  }

  busySessions(root: string): Promise<string[]> {
    return selectBusySessions(this, root);
  }

  partFields(partIds: string[]): Promise<Map<string, PartFields>> {
    return selectPartFields(this, partIds);
  }

  messageCounts(ids: string[]): Promise<Map<string, number>> {
    return selectMessageCounts(this, ids);
  }

  serve(cwd: string): Promise<OpencodeServer> {
    return this.startServer(cwd);
  }
}
