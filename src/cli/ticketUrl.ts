import { randomBytes } from 'node:crypto';
import { lstat, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { usageError } from '../util/errors.js';
import { cleartextOrigin } from '../remote/cleartext.js';
import type { Io } from './options.js';

/** A ticket URL is a few KiB; anything much larger is not one. */
const MAX_URL_BYTES = 64 * 1024;

/**
 * The ticket URL a flag names. Every local user can read a process's command line (ps,
 * /proc/PID/cmdline), and a ticket URL is a secret — its signature, and for an encrypted worktree
 * the key in its fragment — so the flag takes `-` (read the URL from standard input) or `@FILE`
 * (from a file); the URL itself still works, with a warning.
 */
export async function ticketUrlFrom(value: string, flag: '--from-url' | '--to-url', io: Io): Promise<string> {
  const url = await readTicketUrl(value, flag, io);
  warnIfCleartextTicket(url, io);
  return url;
}

/**
 * A ticket's URLs all point at the store that minted it: plain HTTP to another machine carries the
 * sessions in the clear, unless the ticket is for an encrypted worktree (its key in the #fragment,
 * which no client sends: the objects are sealed).
 */
function warnIfCleartextTicket(url: string, io: Io): void {
  const hash = url.indexOf('#');
  if (hash >= 0 && hash < url.length - 1) return;
  const origin = cleartextOrigin(url);
  if (origin === undefined) return;
  io.stderr(
    `sessmig: warning: the ticket URL points at ${origin}, plain HTTP to another machine: these sessions cross the network unencrypted, readable and changeable on the way; ask for a ticket from an https:// endpoint or an encrypted worktree\n`,
  );
}

async function readTicketUrl(value: string, flag: '--from-url' | '--to-url', io: Io): Promise<string> {
  const example = flag === '--from-url' ? 'sessmig pull --from-url - < ticket.url' : 'sessmig push --to-url - < upload.url';
  if (value === '-') {
    return firstLine(await readStdin(io, flag), `standard input (${flag} -)`, example);
  }
  if (value.startsWith('@')) {
    const file = path.resolve(io.cwd, value.slice(1));
    let text: string;
    let mode = 0;
    try {
      const info = await stat(file);
      mode = info.mode & 0o777;
      if (info.size > MAX_URL_BYTES) throw usageError('bad-ticket-url', `${flag} @${value.slice(1)}: the file exceeds ${MAX_URL_BYTES} bytes: that is not a ticket URL`, `the file should hold the URL \`sessmig share\` printed, and nothing else`);
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as { exitCode?: number }).exitCode !== undefined) throw error;
      throw usageError('bad-ticket-url', `${flag} @${value.slice(1)}: cannot read the file: ${(error as Error).message}`, `give the file \`sessmig share --output FILE\` wrote, or ${flag} - to read the URL from standard input`);
    }
    const url = firstLine(text, `${value}`, example);
    if (mode & 0o044) {
      io.stderr(`sessmig: warning: ${value.slice(1)} has mode 0${mode.toString(8)}: other users of this machine can read the ticket URL in it; chmod 600 it (sessmig share --output writes it so)\n`);
    }
    return url;
  }
  io.stderr(`sessmig: warning: the ${flag} URL on the command line can be read by every user of this machine (ps) while sessmig runs; pass it on standard input instead: ${example}\n`);
  return value;
}

function firstLine(text: string, where: string, example: string): string {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  if (lines.length === 0) throw usageError('bad-ticket-url', `no ticket URL in ${where}`, `give it the URL \`sessmig share\` printed, e.g. ${example}`);
  if (lines.length > 1) throw usageError('bad-ticket-url', `${where} holds ${lines.length} lines; a ticket URL is one`, `give it only the URL \`sessmig share\` printed, e.g. ${example}`);
  return lines[0]!;
}

/** Reads standard input to its end (at most MAX_URL_BYTES); on a terminal, asks for the URL first. */
async function readStdin(io: Io, flag: string): Promise<string> {
  const input = io.stdin ?? process.stdin;
  if ((input as { isTTY?: boolean }).isTTY) io.stderr(`paste the ticket URL for ${flag}, then press Enter and Ctrl-D\n`);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += bytes.length;
    if (total > MAX_URL_BYTES) throw usageError('bad-ticket-url', `standard input (${flag} -) exceeds ${MAX_URL_BYTES} bytes: that is not a ticket URL`, 'pipe in only the URL `sessmig share` printed');
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Writes a ticket URL to a file only this user can read (0600, whatever the umask). Without
 * overwrite an existing file — or a symbolic link — is refused (O_EXCL); with it the URL goes
 * to a new private file renamed over the old one, so the old file's mode never applies.
 */
export async function writeTicketFile(file: string, url: string, overwrite: boolean): Promise<void> {
  const target = overwrite ? `${file}.tmp-${randomBytes(6).toString('hex')}` : file;
  try {
    const handle = await open(target, 'wx', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(`${url}\n`);
    } finally {
      await handle.close();
    }
    if (overwrite) await rename(target, file);
  } catch (error) {
    if (overwrite) await rm(target, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw usageError('output-exists', `--output ${file} exists; the ticket URL was not written`, 'pick another file, or add --overwrite to replace it');
    }
    throw usageError('output-unwritable', `--output ${file}: cannot write it: ${(error as Error).message}`, 'pick a file in a folder you can write');
  }
}

/** Refuses an existing --output (a dangling symbolic link included) before anything is minted. */
export async function assertOutputFree(file: string, overwrite: boolean): Promise<void> {
  if (overwrite) return;
  const exists = await lstat(file).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );
  if (exists) throw usageError('output-exists', `--output ${file} exists; no ticket was minted`, 'pick another file, or add --overwrite to replace it');
}
