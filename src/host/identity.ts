import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { SessmigError } from '../util/errors.js';
import { HOST_ID } from '../format/ids.js';
import type { Host } from '../format/schema.js';

const HostFile = z.looseObject({ hostId: z.string().regex(HOST_ID), createdAt: z.string() });

/**
 * This host's stable identity: a random id made once and kept in the XDG config dir, plus the
 * hostname (for humans; the id is what ownership compares).
 */
export async function loadHostIdentity(configDir: string): Promise<Host> {
  const file = path.join(configDir, 'host.json');
  const hostname = os.hostname().slice(0, 256);
  try {
    const parsed = HostFile.safeParse(JSON.parse(await readFile(file, 'utf8')));
    if (parsed.success) return { hostId: parsed.data.hostId, hostname };
    throw new SessmigError('bad-host-file', `${file} is not a valid sessmig host file`, {
      hint: `remove ${file} to make a new host id (this host will then be a new owner)`,
    });
  } catch (error) {
    if (error instanceof SessmigError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new SessmigError('bad-host-file', `cannot read ${file}: ${(error as Error).message}`, {
        hint: `fix or remove ${file}`,
      });
    }
  }
  const hostId = randomUUID();
  try {
    await mkdir(configDir, { recursive: true, mode: 0o700 });
    const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`; // unique per call: two commands may run in one process (main() as a library)
    await writeFile(temp, `${JSON.stringify({ hostId, createdAt: new Date().toISOString() }, null, 2)}\n`, { mode: 0o600 });
    await rename(temp, file);
  } catch (error) {
    throw new SessmigError('config-unwritable', `cannot write ${file}: ${(error as Error).message}`, {
      hint: 'make the XDG config dir ($XDG_CONFIG_HOME or ~/.config) writable',
    });
  }
  return { hostId, hostname };
}
