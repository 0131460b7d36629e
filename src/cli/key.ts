import type { Command } from 'commander';
import { usageError } from '../util/errors.js';
import { keyFile, loadUserKey, saveUserKey, UserKey } from '../crypto/keys.js';
import { hostPaths } from '../host/paths.js';
import type { Io } from './options.js';

/**
 * `sessmig key new | show | import`: the user's encryption key (src/crypto/keys.ts). `show` is the
 * one command that prints it. Losing the key loses every session encrypted with it.
 */
export function registerKey(program: Command, io: Io, done: (code: number) => void, readStdin: () => Promise<string>): void {
  const key = program.command('key').description("this user's encryption key for `push --encrypt` (kept in $XDG_CONFIG_HOME/sessmig/key, mode 0600)");
  const config = () => hostPaths(io.env).config;

  key
    .command('new')
    .description('make a new key and keep it in the key file; copy it to your other hosts with `key show` / `key import`')
    .option('-f, --force', 'replace an existing, different key (sessions encrypted with it become unreadable here)')
    .action(async (flags: { force?: boolean }) => {
      const made = await UserKey.generate();
      const file = await saveUserKey(config(), made, flags.force === true);
      io.stderr(
        `made key ${made.keyId()} in ${file}\n` +
          'keep a copy somewhere safe: without it, sessions pushed with --encrypt cannot be read by anyone, sessmig included\n' +
          'to use it on another host: `sessmig key show` here, then `sessmig key import` there (or SESSMIG_KEY)\n',
      );
      done(0);
    });

  key
    .command('show')
    .description('print the key (to copy it to another host); treat the output like a password')
    .action(async () => {
      const found = await loadUserKey(config(), io.env);
      if (!found) throw usageError('no-key', `this host has no key (${keyFile(config())} is missing and SESSMIG_KEY is unset)`, 'make one with `sessmig key new`, or import one with `sessmig key import`');
      io.stdout(`${found.reveal()}\n`);
      io.stderr(`key ${found.keyId()}: anyone with it can read every session encrypted with it\n`);
      done(0);
    });

  key
    .command('import')
    .description('read a key from stdin (as `sessmig key show` printed it) into the key file')
    .option('-f, --force', 'replace an existing, different key')
    .action(async (flags: { force?: boolean }) => {
      const text = await readStdin();
      const imported = UserKey.parse(text, 'the key on stdin');
      const file = await saveUserKey(config(), imported, flags.force === true);
      io.stderr(`imported key ${imported.keyId()} into ${file}\n`);
      done(0);
    });
}
