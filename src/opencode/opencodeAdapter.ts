import type { Readable } from 'node:stream';
import type { SessionExporter, ExporterSource } from './exporter.js';
import type { RowAligner } from './fidelity.js';
import type { ImporterSource } from './importer.js';
import type { SessionRow } from './opencode.js';
import type { OpencodeServer } from './server.js';
import type { SessionQueries } from './sessionQueries.js';
import type { ShareStore } from './shareRows.js';
import type { TodoStore } from './todos.js';

/**
 * This host's opencode as the core sees it: everything push, pull, status, undo, doctor and the
 * tickets ask of it, and nothing else. The real one is OpencodeCli (opencodeCli.ts: `opencode`
 * processes, `opencode db`, `opencode serve`); the unit tests of the core's orchestration run
 * against an in-memory fake (test/support/fakeOpencode.ts).
 *
 * The core reaches the grouped capabilities through the adapter modules' entry points
 * (`readTodos(opencode, ids)` in todos.ts, `openImporter(opencode, …)` in importer.ts, …), which
 * ask the adapter they are given.
 */
export interface OpencodeAdapter extends SessionExporter, TodoStore, ShareStore, SessionQueries, ExporterSource, ImporterSource, RowAligner {
  /**
   * `bin`: what `doctor` prints as the opencode it runs; `env`: the environment opencode runs with
   * (its XDG_DATA_HOME decides where its data lives: the snapshot repositories sessionFiles.ts fills).
   */
  readonly options: { readonly bin: string; readonly env: NodeJS.ProcessEnv };
  /** The same opencode, deaf to the abort signal: for rolling back after an interrupt. */
  uninterruptible(): OpencodeAdapter;
  /** opencode's version (`1.18.33`); rejects with 'opencode-missing' / 'opencode-failed' (exit 2) when there is none. */
  version(): Promise<string>;
  /** Every session in the local database. */
  listSessions(): Promise<SessionRow[]>;
  /** The session as `opencode export <id>` prints it; rejects with 'session-gone' when it is not there. */
  exportSession(id: string): Promise<Readable>;
  /** Brings one export file in (as `opencode import <file>` run in `cwd`); rejects with 'import-rejected'. */
  importFile(file: string, cwd: string, expectedId: string): Promise<void>;
  /** Deletes the session with its children (as `opencode session delete <id>`). */
  deleteSession(id: string, cwd: string): Promise<void>;
  /** Starts an `opencode serve` in `cwd` (its models, agents and sessions over HTTP); the caller stops it. */
  serve(cwd: string): Promise<OpencodeServer>;
}
