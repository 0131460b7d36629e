/**
 * Every failure sessmig reports is a SessmigError: a stable code, a message for humans that names
 * what was wrong, and a hint that says what to do. The CLI maps them to exit codes in one place
 * (src/cli/run.ts); nothing else prints errors.
 */
export const ExitCode = {
  ok: 0,
  /** The operation failed; nothing was committed. */
  failed: 1,
  /** Bad usage or input: fix the command line, environment or local state and re-run. */
  usage: 2,
  /** Done, but some sessions were skipped or refused (listed on stderr and in --json). */
  partial: 3,
  /** Interrupted by SIGINT. */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
  exitCode?: ExitCode;
  /** Extra fields for --json output. */
  data?: Record<string, unknown>;
  /**
   * The remote holds bad data (malformed, damaged, not what the format promises): a finding that
   * `sessmig check` reports and goes on, unlike a failure to reach the remote. Set at the throw site.
   */
  remoteData?: boolean;
}

export class SessmigError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly data: Record<string, unknown> | undefined;
  /** See ErrorDetails.remoteData. */
  readonly remoteData: boolean;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SessmigError';
    this.code = code;
    this.hint = details.hint;
    this.exitCode = details.exitCode ?? ExitCode.failed;
    this.data = details.data;
    this.remoteData = details.remoteData === true;
  }
}

/** The user's command line, environment or working directory is wrong. */
export function usageError(code: string, message: string, hint?: string): SessmigError {
  return new SessmigError(code, message, { hint, exitCode: ExitCode.usage });
}

/** Something the remote holds is not what the format promises (malformed, corrupted, missing): `remoteData`. */
export function remoteDataError(code: string, message: string, hint?: string, cause?: unknown): SessmigError {
  return new SessmigError(code, message, { hint, cause, exitCode: ExitCode.failed, remoteData: true });
}

export class InterruptedError extends SessmigError {
  constructor(signal: string) {
    super('interrupted', `interrupted by ${signal}; nothing was committed`, {
      hint: 're-run the same command to finish the job',
      exitCode: ExitCode.interrupted,
    });
  }
}

export function isSessmigError(error: unknown): error is SessmigError {
  return error instanceof SessmigError;
}

/** A message for an unexpected error (a bug or an environment failure), without a stack trace. */
export function describeUnknown(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
