/**
 * Runs the real sessmig CLI (bin/sessmig.js, built from src/) as a child process on a simulated
 * host: the host's HOME/XDG dirs and opencode, plus whatever remote env a test adds.
 */
import { execa } from 'execa';
import path from 'node:path';
import { REPO_ROOT, type Host } from '../support/host.js';

export const SESSMIG_BIN = path.join(REPO_ROOT, 'bin', 'sessmig.js');

export interface SessmigRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  json: any;
}

/** Every output sessmig printed in this test process, for the secrets grep. */
export const allOutput: string[] = [];

export async function sessmig(
  host: Host,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number; input?: string },
): Promise<SessmigRun> {
  const result = await execa(process.execPath, [SESSMIG_BIN, ...args], {
    cwd: options.cwd,
    env: { ...host.env, SESSMIG_OPENCODE: host.opencodeBin, ...options.env },
    extendEnv: false,
    reject: false,
    timeout: options.timeoutMs ?? 300_000,
    ...(options.input !== undefined ? { input: options.input } : { stdin: 'ignore' as const }),
  });
  const stdout = String(result.stdout);
  const stderr = String(result.stderr);
  allOutput.push(stdout, stderr);
  assertNoSecrets(args, stdout, stderr, { ...host.env, ...options.env });
  let json: any;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(stdout);
    } catch {
      json = undefined;
    }
  }
  return { exitCode: result.exitCode ?? -1, stdout, stderr, json };
}

/**
 * Every sessmig run of the suite goes through here, so every output is checked: no credential and
 * no URL signature may appear, except the ticket URL that `share` exists to print on stdout.
 */
export function assertNoSecrets(args: string[], stdout: string, stderr: string, env: Record<string, string | undefined>): void {
  const printsTicket = args[0] === 'share';
  const checked = printsTicket ? stderr : `${stdout}\n${stderr}`;
  const leaks: string[] = [];
  // `key show` prints the key; `share` prints an encrypted ticket's key in its URL's fragment.
  const printsKey = (args[0] === 'key' && args[1] === 'show') || printsTicket;
  if (/AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]{20,}/.test(printsKey ? stderr : `${stdout}\n${stderr}`)) leaks.push('an age secret key');
  if (/X-Amz-Signature=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Signature');
  if (/X-Amz-Credential=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Credential');
  if (/X-Amz-Security-Token=(?!REDACTED)/i.test(checked)) leaks.push('an X-Amz-Security-Token');
  for (const name of ['AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'SESSMIG_KEY']) {
    const value = env[name];
    if (value && value.length >= 8 && `${stdout}\n${stderr}`.includes(value)) leaks.push(`the value of ${name}`);
  }
  if (leaks.length > 0) throw new Error(`sessmig ${args.join(' ')} printed ${leaks.join(', ')}:\n${stdout}\n${stderr}`);
}

/** A failed expectation message with everything sessmig said. */
export function explain(run: SessmigRun): string {
  return `exit ${run.exitCode}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}
