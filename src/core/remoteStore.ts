import { randomBytes } from 'node:crypto';
import { SessmigError } from '../util/errors.js';
import { parseDocument, serializeDocument } from '../format/document.js';
import { checkpointKey, checkpointsPrefix, MAX_MANIFEST_BYTES, MAX_POINTER_BYTES, pointerKey } from '../format/layout.js';
import { FORMAT_VERSION, Manifest, MANIFEST_FORMAT_VERSION, Pointer, type Host } from '../format/schema.js';
import type { Remote } from '../remote/remote.js';

/** Reading and writing the format's documents for one worktree (docs/FORMAT.md). */

export interface PointerState {
  pointer: Pointer;
  etag: string;
}

export async function readPointer(remote: Remote, worktree: string): Promise<PointerState | undefined> {
  const key = pointerKey(worktree);
  const stored = await remote.get(key, MAX_POINTER_BYTES);
  if (!stored) return undefined;
  const pointer = parseDocument(stored.body, Pointer, `pointer ${key}`, MAX_POINTER_BYTES);
  if (pointer.worktree !== worktree) {
    throw new SessmigError('pointer-mismatch', `pointer ${key} belongs to worktree ${pointer.worktree}`, {
      hint: 'the remote was edited by hand or damaged; run `sessmig check`',
      remoteData: true,
    });
  }
  return { pointer, etag: stored.etag };
}

export interface PointerChange {
  checkpoint: string;
  owner: Host | null;
}

/**
 * Moves the pointer with compare-and-swap: the write is conditional on the etag read (or on absence),
 * and the result is read back, so a racing writer on a store that ignores conditions is detected too.
 */
export async function writePointer(
  remote: Remote,
  worktree: string,
  previous: PointerState | undefined,
  change: PointerChange,
  by: Host,
): Promise<PointerState> {
  const key = pointerKey(worktree);
  const writeId = randomBytes(8).toString('hex');
  const next: Pointer = {
    formatVersion: FORMAT_VERSION,
    kind: 'sessmig.pointer',
    worktree,
    generation: (previous?.pointer.generation ?? 0) + 1,
    checkpoint: change.checkpoint,
    owner: change.owner,
    updatedAt: new Date().toISOString(),
    updatedBy: by,
    writeId,
  };
  const lost = () =>
    new SessmigError('lost-race', `another host moved the pointer of worktree ${worktree} while this command ran`, {
      hint: 'nothing of this run was made current; run `sessmig status` to see the new state, then re-run',
    });
  try {
    await remote.put(key, serializeDocument(next), previous ? { ifMatch: previous.etag } : { ifNoneMatch: true });
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'precondition-failed') throw lost();
    throw error;
  }
  const check = await readPointer(remote, worktree);
  if (!check || check.pointer.generation !== next.generation || check.pointer.writeId !== writeId) throw lost();
  return check;
}

export async function readManifest(remote: Remote, worktree: string, checkpoint: string): Promise<Manifest> {
  const key = checkpointKey(worktree, checkpoint);
  const stored = await remote.get(key, MAX_MANIFEST_BYTES);
  if (!stored) {
    throw new SessmigError('checkpoint-missing', `checkpoint ${checkpoint} of worktree ${worktree} is not in the remote`, {
      hint: 'list the checkpoints with `sessmig ls`',
      remoteData: true,
    });
  }
  const manifest = parseDocument(stored.body, Manifest, `checkpoint ${key}`, MAX_MANIFEST_BYTES, MANIFEST_FORMAT_VERSION);
  if (manifest.worktree !== worktree || manifest.id !== checkpoint) {
    throw new SessmigError('manifest-mismatch', `checkpoint ${key} names worktree ${manifest.worktree} / checkpoint ${manifest.id}`, {
      hint: 'the remote was edited by hand or damaged; run `sessmig check`',
      remoteData: true,
    });
  }
  return manifest;
}

/** Writes a new checkpoint (never overwriting one) and reads it back to verify it. */
export async function writeManifest(remote: Remote, manifest: Manifest): Promise<void> {
  const key = checkpointKey(manifest.worktree, manifest.id);
  const body = serializeDocument(manifest);
  try {
    await remote.put(key, body, { ifNoneMatch: true });
  } catch (error) {
    if (error instanceof SessmigError && error.code === 'precondition-failed') {
      throw new SessmigError('checkpoint-exists', `checkpoint ${manifest.id} already exists`, { hint: 're-run the command' });
    }
    throw error;
  }
  const back = await remote.get(key, MAX_MANIFEST_BYTES);
  if (!back || !back.body.equals(body)) {
    throw new SessmigError('manifest-unverified', `checkpoint ${key} did not read back as written`, {
      hint: 'the store may be eventually consistent or failing; re-run the push (nothing was made current)',
    });
  }
}

export async function listCheckpointIds(remote: Remote, worktree: string): Promise<string[]> {
  const prefix = checkpointsPrefix(worktree);
  const ids: string[] = [];
  for await (const item of remote.list(prefix)) {
    const name = item.key.slice(prefix.length);
    if (name.endsWith('.json') && !name.includes('/')) ids.push(name.slice(0, -'.json'.length));
  }
  return ids.sort();
}
