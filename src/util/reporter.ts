/** Human progress and warnings: always on stderr (stdout is reserved for --json). */
export interface Reporter {
  info(message: string): void;
  warn(message: string): void;
  /** A progress line (sessions done / total, bytes), redrawn in place on a terminal; nothing otherwise. */
  progress(phase: string, done: number, total: number, bytes: number): void;
  readonly warnings: string[];
}
