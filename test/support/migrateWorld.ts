/**
 * Two hosts (a laptop and a box, both able to make sessions) with checkouts of one repository at
 * different paths, and a remote: a local folder or a loopback S3 (s3rver). Shared by the
 * --migrate test files.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sessmig, type SessmigRun } from '../e2e/harness.js';
import type { FakeLlm } from './fakeLlm.js';
import { createHost, createRepo, type Host } from './host.js';
import { startS3rver, type S3Target } from './s3.js';

export interface World {
  laptop: Host;
  box: Host;
  repoL: string;
  repoB: string;
  url: string;
  env: Record<string, string>;
  s3?: S3Target;
  dir?: string;
}

export async function makeWorld(llm: FakeLlm, kind: 'file' | 's3'): Promise<World> {
  const laptop = await createHost('laptop', { llm });
  const box = await createHost('box', { llm });
  const repoL = path.join(laptop.workDir, 'app');
  const repoB = path.join(box.workDir, 'checkout', 'app');
  await createRepo(repoL);
  await createRepo(repoB);
  if (kind === 's3') {
    const s3 = await startS3rver();
    return { laptop, box, repoL, repoB, url: s3.remoteUrl('m/'), env: s3.env, s3 };
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sessmig-remote-'));
  return { laptop, box, repoL, repoB, url: pathToFileURL(dir).href, env: {}, dir };
}

export async function disposeWorld(w: World | undefined): Promise<void> {
  if (!w) return;
  await w.laptop.cleanup();
  await w.box.cleanup();
  await w.s3?.dispose();
  if (w.dir) await rm(w.dir, { recursive: true, force: true });
}

export function on(w: World, host: Host, repo: string, args: string[], env: Record<string, string> = {}): Promise<SessmigRun> {
  return sessmig(host, [...args, '--remote', w.url, '--json'], { cwd: repo, env: { ...w.env, ...env } });
}

