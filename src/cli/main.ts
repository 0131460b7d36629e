import { Command, CommanderError } from 'commander';
import { ExitCode, InterruptedError, isSessmigError, usageError } from '../util/errors.js';
import { SESSMIG_VERSION } from '../version.js';
import { redact } from '../util/redact.js';
import { registerCheck } from './check.js';
import { registerDoctor } from './doctor.js';
import { registerKey } from './key.js';
import { registerLs } from './ls.js';
import type { Io } from './options.js';
import { registerPlugin } from './plugin.js';
import { registerPrune } from './prune.js';
import { registerPull } from './pull.js';
import { registerPush } from './push.js';
import { registerShare } from './share.js';
import { registerStatus } from './status.js';
import { registerUndo } from './undo.js';

/**
 * Runs sessmig with argv; returns the exit code. The one place errors become exit codes.
 * `io` replaces the process's environment, folder, output and input (a library call, the tests'
 * in-process runs): nothing of the command reads process.env, process.cwd() or process.stdin then.
 */
export async function main(argv: string[], io?: Partial<Omit<Io, 'signal'>>): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(ExitCode.interrupted);
    controller.abort(new InterruptedError('SIGINT'));
  };
  process.on('SIGINT', onSigint);
  const full: Io = {
    env: io?.env ?? process.env,
    cwd: io?.cwd ?? process.cwd(),
    stdout: io?.stdout ?? ((text) => void process.stdout.write(text)),
    stderr: io?.stderr ?? ((text) => void process.stderr.write(text)),
    stderrIsTTY: io?.stderrIsTTY ?? process.stderr.isTTY === true,
    signal: controller.signal,
    ...(io?.stdin ? { stdin: io.stdin } : {}),
  };
  let code: number = ExitCode.ok;
  const program = new Command('sessmig')
    .description('move opencode sessions between hosts through S3 or a local folder')
    .version(SESSMIG_VERSION)
    .exitOverride()
    .configureOutput({ writeOut: (text) => full.stdout(text), writeErr: (text) => full.stderr(text) })
    .showSuggestionAfterError(true);
  const done = (value: number) => {
    code = value;
  };
  registerPush(program, full, done);
  registerPull(program, full, done);
  registerLs(program, full, done);
  registerStatus(program, full, done);
  registerUndo(program, full, done);
  registerCheck(program, full, done);
  registerDoctor(program, full, done);
  registerPrune(program, full, done);
  registerShare(program, full, done);
  registerPlugin(program, full, done);
  registerKey(program, full, done, () => readKeyStdin(full));
  try {
    await program.parseAsync(argv);
    if (controller.signal.aborted) throw controller.signal.reason;
    return code;
  } catch (error) {
    return report(error, full, argv.includes('--json'), controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function readKeyStdin(io: Io): Promise<string> {
  const input = io.stdin ?? process.stdin;
  if ((input as { isTTY?: boolean }).isTTY) io.stderr('paste the key, then press Enter and Ctrl-D\n');
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += bytes.length;
    if (total > 4096) throw usageError('bad-key', 'stdin exceeds 4096 bytes: that is not a key', 'pipe in what `sessmig key show` printed');
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function report(error: unknown, io: Io, json: boolean, signal: AbortSignal): number {
  if (error instanceof CommanderError) {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return ExitCode.ok;
    return ExitCode.usage; // commander already printed the message
  }
  if (signal.aborted && !(isSessmigError(error) && error.code === 'rollback-failed')) {
    error = signal.reason instanceof InterruptedError ? signal.reason : new InterruptedError('SIGINT');
  }
  if (isSessmigError(error)) {
    io.stderr(`sessmig: ${redact(error.message)}\n`);
    if (error.hint) io.stderr(`  hint: ${redact(error.hint)}\n`);
    if (json) io.stdout(`${redact(JSON.stringify({ error: { code: error.code, message: error.message, hint: error.hint ?? null, ...(error.data ?? {}) } }, null, 2))}\n`);
    return error.exitCode;
  }
  // Not a user mistake: a bug or an environment failure. One line, plus the stack only on request.
  const message = error instanceof Error ? error.message : String(error);
  io.stderr(`sessmig: unexpected error: ${redact(message)}\n  hint: re-run with SESSMIG_DEBUG=1 for details, and report it if it persists\n`);
  if (io.env.SESSMIG_DEBUG && error instanceof Error && error.stack) io.stderr(`${redact(error.stack)}\n`);
  if (json) io.stdout(`${JSON.stringify({ error: { code: 'unexpected', message: redact(message) } })}\n`);
  return ExitCode.failed;
}
