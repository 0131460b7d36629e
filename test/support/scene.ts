/**
 * The usual cast of an end-to-end test: hosts, each with a checkout of the same repository (same
 * root commit, so the same opencode project id), and the fake LLM to make real sessions with.
 */
import path from 'node:path';
import { startFakeLlm, type FakeLlm } from './fakeLlm.js';
import { createHost, createRepo, type Host } from './host.js';

export interface HostWithRepo {
  host: Host;
  /** The repository checkout on this host (its worktree root). */
  repo: string;
}

/** A host with a checkout at `<workDir>/<repoPath>`; with `llm`, opencode on it can make sessions. */
export async function hostWithRepo(name: string, options: { llm?: FakeLlm; repoPath?: string; runsAttached?: boolean } = {}): Promise<HostWithRepo> {
  const host = await createHost(name, { ...(options.llm ? { llm: options.llm } : {}), ...(options.runsAttached === false ? { runsAttached: false } : {}) });
  const repo = path.join(host.workDir, options.repoPath ?? 'app');
  await createRepo(repo);
  return { host, repo };
}

export interface Scene {
  llm: FakeLlm;
  hosts: HostWithRepo[];
  dispose(): Promise<void>;
}

/** Starts the fake LLM and the named hosts (the first can make sessions; the others only receive). */
/** `runsAttached: false`: every `opencode run` is its own process (host.ts, RunServer), e.g. where a run must load a plugin itself. */
export async function startScene(names: string[], options: { llmOnAll?: boolean; runsAttached?: boolean } = {}): Promise<Scene> {
  const llm = await startFakeLlm();
  const hosts: HostWithRepo[] = [];
  for (const [index, name] of names.entries()) {
    hosts.push(await hostWithRepo(name, { ...(index === 0 || options.llmOnAll ? { llm } : {}), ...(options.runsAttached === false ? { runsAttached: false } : {}) }));
  }
  return {
    llm,
    hosts,
    async dispose() {
      for (const { host } of hosts) await host.cleanup();
      await llm.close();
    },
  };
}
