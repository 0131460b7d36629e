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

/**
 * Every error code sessmig reports, and the exit code it ends the command with: the one table
 * (issue #19). A code is stable (scripts read it from `--json` output as `error.code`); adding
 * one means adding it here, where the type checker then accepts it at a throw site.
 * `usage` (2): fix the command line, the environment or local state and re-run; `failed` (1):
 * the operation failed and nothing was committed; `interrupted` (130): SIGINT.
 * Whether an error is a finding about the remote's data (for `sessmig check`) is said at the throw
 * site (`remoteData`), since one code (a malformed document) may come from a ticket or a remote.
 */
export const ERROR_CODES = {
  'access-denied': ExitCode.usage,
  'backup-missing': ExitCode.failed,
  'backup-unremovable': ExitCode.failed,
  'bad-checkpoint-id': ExitCode.usage,
  'bad-env': ExitCode.usage,
  'bad-flag': ExitCode.usage,
  'bad-git-config': ExitCode.usage,
  'bad-host-file': ExitCode.usage,
  'bad-key': ExitCode.usage,
  'bad-remote': ExitCode.usage,
  'bad-session-id': ExitCode.usage,
  'bad-setting': ExitCode.usage,
  'bad-ticket-url': ExitCode.usage,
  'bad-worktree-key': ExitCode.usage,
  'blob-corrupt': ExitCode.failed,
  'blob-too-large': ExitCode.usage,
  'blob-unfit': ExitCode.failed,
  'bucket-missing': ExitCode.usage,
  'carried-missing': ExitCode.failed,
  'checkpoint-exists': ExitCode.failed,
  'checkpoint-missing': ExitCode.failed,
  'clock-skew': ExitCode.usage,
  'code-already-undone': ExitCode.failed,
  'code-branch-busy': ExitCode.usage,
  'code-bundle-damaged': ExitCode.failed,
  'code-bundle-invalid': ExitCode.failed,
  'code-bundle-missing': ExitCode.failed,
  'code-changed-since-apply': ExitCode.failed,
  'code-destination-dirty': ExitCode.failed,
  'code-destination-invalid': ExitCode.usage,
  'code-format-newer': ExitCode.usage,
  'code-index-locked': ExitCode.failed,
  'code-no-commit': ExitCode.usage,
  'code-object-format': ExitCode.usage,
  'code-rollback-failed': ExitCode.failed,
  'code-state-incomplete': ExitCode.failed,
  'code-state-invalid': ExitCode.failed,
  'code-state-malformed': ExitCode.failed,
  'code-too-large': ExitCode.usage,
  'code-unmerged': ExitCode.usage,
  'config-unwritable': ExitCode.usage,
  'doctor-found-problems': ExitCode.failed,
  'document-invalid': ExitCode.failed,
  'document-malformed': ExitCode.failed,
  'document-too-large': ExitCode.failed,
  'error-body-too-large': ExitCode.usage,
  'export-malformed': ExitCode.failed,
  'export-unclear': ExitCode.failed,
  'format-too-new': ExitCode.failed,
  'git-failed': ExitCode.failed,
  'git-missing': ExitCode.usage,
  'http-error': ExitCode.failed,
  'import-rejected': ExitCode.failed,
  'import-unverified': ExitCode.failed,
  'interrupted': ExitCode.interrupted,
  'key-exists': ExitCode.usage,
  'key-unreadable': ExitCode.usage,
  'local-io': ExitCode.usage,
  'lost-race': ExitCode.failed,
  'manifest-mismatch': ExitCode.failed,
  'manifest-too-large': ExitCode.failed,
  'manifest-unverified': ExitCode.failed,
  'no-commit': ExitCode.usage,
  'no-credentials': ExitCode.usage,
  'no-home': ExitCode.usage,
  'no-key': ExitCode.usage,
  'not-a-ticket': ExitCode.failed,
  'not-a-worktree': ExitCode.usage,
  'not-encrypted': ExitCode.failed,
  'not-found': ExitCode.failed,
  'not-owner': ExitCode.failed,
  'nothing-pushed': ExitCode.failed,
  'nothing-to-undo': ExitCode.failed,
  'opencode-busy': ExitCode.failed,
  'opencode-failed': ExitCode.failed,
  'opencode-missing': ExitCode.usage,
  'opencode-timeout': ExitCode.failed,
  'opencode-unrecognised': ExitCode.usage,
  'opencode-unsupported': ExitCode.usage,
  'output-exists': ExitCode.usage,
  'output-unwritable': ExitCode.usage,
  'owned-elsewhere': ExitCode.failed,
  'pointer-busy': ExitCode.failed,
  'pointer-dangling': ExitCode.failed,
  'pointer-mismatch': ExitCode.failed,
  'pointer-moved': ExitCode.failed,
  'precondition-failed': ExitCode.failed,
  'prune-unmatched': ExitCode.failed,
  'prune-unreadable': ExitCode.failed,
  'push-locked': ExitCode.failed,
  'remote-error': ExitCode.failed,
  'remote-io': ExitCode.failed,
  'remote-locked': ExitCode.failed,
  'remote-unreachable': ExitCode.failed,
  'replay-failed': ExitCode.failed,
  'replay-unavailable': ExitCode.failed,
  'rollback-failed': ExitCode.failed,
  'sealed-unreadable': ExitCode.failed,
  'session-busy': ExitCode.usage,
  'session-gone': ExitCode.failed,
  'snapshot-failed': ExitCode.failed,
  'temp-unwritable': ExitCode.usage,
  'ticket-expired': ExitCode.failed,
  'ticket-invalid': ExitCode.failed,
  'ticket-key-damaged': ExitCode.usage,
  'ticket-key-missing': ExitCode.usage,
  'ticket-key-wrong': ExitCode.usage,
  'ticket-malformed': ExitCode.failed,
  'ticket-needs-s3': ExitCode.usage,
  'ticket-other-worktree': ExitCode.usage,
  'ticket-read-only': ExitCode.usage,
  'ticket-too-large': ExitCode.failed,
  'ticket-too-small': ExitCode.usage,
  'ticket-wrong-direction': ExitCode.usage,
  'too-large': ExitCode.failed,
  'undo-unverified': ExitCode.failed,
  'unknown-session': ExitCode.usage,
  'upload-conflict': ExitCode.partial,
  'upload-rejected': ExitCode.failed,
  'upload-unverified': ExitCode.failed,
  'url-expired': ExitCode.failed,
  'url-tampered': ExitCode.failed,
  'version-skew': ExitCode.failed,
  'worktree-key-needed': ExitCode.usage,
  'worktree-not-found': ExitCode.usage,
  'wrong-key': ExitCode.usage,
} as const satisfies Record<string, ExitCode>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorDetails {
  hint?: string;
  cause?: unknown;
  /** Extra fields for --json output. */
  data?: Record<string, unknown>;
  /**
   * The remote holds bad data (malformed, damaged, not what the format promises): a finding that
   * `sessmig check` reports and goes on, unlike a failure to reach the remote. Set at the throw site.
   */
  remoteData?: boolean;
}

export class SessmigError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly exitCode: ExitCode;
  readonly data: Record<string, unknown> | undefined;
  /** See ErrorDetails.remoteData. */
  readonly remoteData: boolean;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SessmigError';
    this.code = code;
    this.hint = details.hint;
    this.exitCode = ERROR_CODES[code];
    this.data = details.data;
    this.remoteData = details.remoteData === true;
  }
}

/** The user's command line, environment or working directory is wrong. */
export function usageError(code: ErrorCode, message: string, hint?: string): SessmigError {
  return new SessmigError(code, message, { hint });
}

/** Something the remote holds is not what the format promises (malformed, corrupted, missing): `remoteData`. */
export function remoteDataError(code: ErrorCode, message: string, hint?: string, cause?: unknown): SessmigError {
  return new SessmigError(code, message, { hint, cause, remoteData: true });
}

export class InterruptedError extends SessmigError {
  constructor(signal: string) {
    super('interrupted', `interrupted by ${signal}; nothing was committed`, {
      hint: 're-run the same command to finish the job',
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
