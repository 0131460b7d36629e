import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { storeObject } from '../blob/storedObject.js';
import { readVerified } from '../blob/verifiedRead.js';
import { SessmigError } from '../util/errors.js';
import { codeBundleKey } from '../format/codeLayout.js';
import type { CodeBundle, CodeState } from '../format/codeSchema.js';
import type { Remote } from '../remote/remote.js';
import type { CapturedCode } from './capture.js';

/**
 * The code leg's objects in a remote: one immutable object per bundle,
 * `sessmig/v1/worktrees/<worktree>/code/<sha256>.bundle` (docs/FORMAT-code.md). Everything goes
 * through the Remote interface, so a SealedRemote seals bundles like blobs.
 */

export interface StoredCode {
  /** The code part to put in the checkpoint manifest (`captured.state`). */
  state: CodeState;
  /** Bytes this call uploaded (0 when every bundle was already there). */
  uploadedBytes: number;
  uploaded: string[];
  /** Bundles of the chain already in the remote (touched, so a concurrent prune's grace period covers them). */
  reused: string[];
}

/**
 * Uploads the captured bundles the remote lacks (checked with HEAD afterwards) and touches those
 * of the chain it already has. Throws `code-bundle-missing` if a bundle of the chain is gone from
 * the remote (pruned by hand): the checkpoint would not be restorable.
 * Call it before the manifest is written: the pointer must only move once the code is in.
 */
export async function storeCodeLeg(remote: Remote, worktreeKey: string, captured: CapturedCode): Promise<StoredCode> {
  const fresh = new Map(captured.newBundles.map((bundle) => [bundle.sha256, bundle]));
  const result: StoredCode = { state: captured.state, uploadedBytes: 0, uploaded: [], reused: [] };
  for (const bundle of captured.state.bundles) {
    const key = codeBundleKey(worktreeKey, bundle.sha256);
    const file = fresh.get(bundle.sha256)?.file;
    if (file) {
      // A bundle's name covers its stored bytes: the facts are the same twice, no gzip.
      const stored = await storeObject(remote, key, file, { sha256: bundle.sha256, rawBytes: bundle.bytes, storedBytes: bundle.bytes }, { gzip: false });
      if (stored.uploaded) {
        result.uploaded.push(bundle.sha256);
        result.uploadedBytes += bundle.bytes;
      } else result.reused.push(bundle.sha256);
      continue;
    }
    const existing = await remote.head(key);
    if (!existing || existing.size !== bundle.bytes) {
      throw new SessmigError('code-bundle-missing', `code bundle ${bundle.sha256} of the previous checkpoint is missing from ${remote.display}`, {
        hint: 'push again: the next capture starts a new chain (or run `sessmig check` to see what else is missing)',
      });
    }
    await remote.touch(key);
    result.reused.push(bundle.sha256);
  }
  return result;
}

export interface FetchedCode {
  /** Verified bundle files by sha256. */
  files: Map<string, string>;
  downloadedBytes: number;
}

/**
 * Downloads `bundles` (default: every bundle of `state`; pass `bundlesNeeded(...)` to skip what
 * the destination has) into `tempDir`, each checked against the manifest's size and sha256 while
 * it streams (blob/verifiedRead.ts, the pipeline every stored object is read through). A bundle that fails is deleted and `code-bundle-damaged` (`code-bundle-missing`) thrown; nothing else is
 * verified here (applyCode runs `git bundle verify`).
 */
export async function fetchCodeLeg(remote: Remote, worktreeKey: string, state: CodeState, tempDir: string, bundles: readonly CodeBundle[] = state.bundles): Promise<FetchedCode> {
  const files = new Map<string, string>();
  let downloadedBytes = 0;
  for (const bundle of bundles) {
    const key = codeBundleKey(worktreeKey, bundle.sha256);
    const file = path.join(tempDir, `code-${bundle.sha256}.bundle`);
    try {
      const read = await readVerified(remote, key, { gzip: false, sink: createWriteStream(file, { mode: 0o600 }), what: `code bundle ${bundle.sha256}`, expectedStoredBytes: bundle.bytes });
      if (read.status === 'missing') {
        throw new SessmigError('code-bundle-missing', `code bundle ${bundle.sha256} is missing from ${remote.display}`, {
          hint: 'nothing was changed; push the code again from the source host (`sessmig check` lists what else is missing)',
        });
      }
      if (read.status === 'damaged') throw damaged(bundle, `it ${read.why}`);
      if (read.storedBytes !== bundle.bytes || read.sha256 !== bundle.sha256) throw damaged(bundle, `it has ${read.storedBytes} bytes with sha256 ${read.sha256}`);
      downloadedBytes += read.storedBytes;
    } catch (error) {
      await rm(file, { force: true });
      throw error;
    }
    files.set(bundle.sha256, file);
  }
  return { files, downloadedBytes };
}

function damaged(bundle: CodeBundle, why: string): SessmigError {
  return new SessmigError('code-bundle-damaged', `code bundle ${bundle.sha256} failed verification: ${why}`, {
    hint: 'nothing was changed; the remote copy is damaged — push the code again from the source host',
  });
}
