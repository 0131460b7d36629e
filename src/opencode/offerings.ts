import { SessmigError } from '../util/errors.js';
import type { OpencodeServer } from './server.js';

/** The model and agent a session last used (its last message that names them): what a destination must offer to resume it. */
export type LastUsed = {
  model?: { providerID: string; modelID: string };
  agent?: string;
};

/**
 * What a host's opencode offers to resume a session with: its models (`provider/model`) and its
 * agents. A session records the model and agent it last used as plain strings; opencode on a host
 * that lacks them fails to resume it without saying why (opencode #42781).
 *
 * Read from a running `opencode serve` (measured on 1.3.2, 1.14.41 and 1.18.33, same shapes):
 *  - GET /config/providers → `{providers: [{id, models: {<id>: {…}}}], default: {<providerID>: <modelID>}}`:
 *    the providers this opencode can use (configured, or with credentials), each with its models.
 *  - GET /agent → `[{name, mode, …}]`: built-in and configured agents.
 * Both depend on the directory (a project's opencode.json adds providers and agents): every request
 * carries the directory the sessions live in.
 */
export interface Offerings {
  /** `provider/model` for every model offered. */
  models: Set<string>;
  agents: Set<string>;
  /** A model this opencode would use by default (`provider/model`), to suggest; undefined if none. */
  suggestedModel: string | undefined;
}

export async function readOfferings(server: OpencodeServer, directory: string): Promise<Offerings> {
  const [providers, agents] = await Promise.all([
    server.request('GET', '/config/providers', { directory }),
    server.request('GET', '/agent', { directory }),
  ]);
  const offerings: Offerings = { models: new Set(), agents: new Set(), suggestedModel: undefined };
  const parsedProviders = parse(providers, '/config/providers') as { providers?: unknown; default?: unknown };
  if (!Array.isArray(parsedProviders.providers)) throw unexpected('/config/providers', 'no providers list');
  for (const provider of parsedProviders.providers as { id?: unknown; models?: unknown }[]) {
    if (typeof provider?.id !== 'string' || !provider.models || typeof provider.models !== 'object') continue;
    for (const modelID of Object.keys(provider.models)) offerings.models.add(`${provider.id}/${modelID}`);
  }
  const defaults = parsedProviders.default;
  if (defaults && typeof defaults === 'object') {
    for (const [providerID, modelID] of Object.entries(defaults)) {
      if (typeof modelID === 'string' && offerings.models.has(`${providerID}/${modelID}`)) {
        offerings.suggestedModel = `${providerID}/${modelID}`;
        break;
      }
    }
  }
  const parsedAgents = parse(agents, '/agent');
  if (!Array.isArray(parsedAgents)) throw unexpected('/agent', 'not a list');
  for (const agent of parsedAgents as { name?: unknown }[]) if (typeof agent?.name === 'string') offerings.agents.add(agent.name);
  return offerings;
}

/** What of `lastUsed` this host does not offer (empty: nothing is missing, or nothing is known). */
export interface Missing {
  model?: string;
  agent?: string;
}

export function missingHere(lastUsed: LastUsed | undefined, offerings: Offerings): Missing {
  const missing: Missing = {};
  const model = lastUsed?.model ? `${lastUsed.model.providerID}/${lastUsed.model.modelID}` : undefined;
  if (model !== undefined && !offerings.models.has(model)) missing.model = model;
  if (lastUsed?.agent !== undefined && !offerings.agents.has(lastUsed.agent)) missing.agent = lastUsed.agent;
  return missing;
}

/** One line for a session whose model or agent this host lacks: what is missing and how to resume it. */
export function describeMissing(session: { id: string; title: string }, missing: Missing, offerings: Offerings): string {
  const lacks = [
    ...(missing.model !== undefined ? [`the model ${missing.model}`] : []),
    ...(missing.agent !== undefined ? [`the agent "${missing.agent}"`] : []),
  ].join(' and ');
  const flags = [
    ...(missing.model !== undefined ? [`--model ${offerings.suggestedModel ?? 'PROVIDER/MODEL'}`] : []),
    ...(missing.agent !== undefined ? [`--agent ${offerings.agents.has('build') ? 'build' : 'AGENT'}`] : []),
  ].join(' ');
  return (
    `session ${session.id} ("${session.title}") last used ${lacks}, which this host's opencode does not offer: ` +
    `resuming it as it is fails; configure ${missing.model !== undefined && missing.agent !== undefined ? 'them' : 'it'} here, ` +
    `or resume with one this host has: opencode run --session ${session.id} ${flags} "…"`
  );
}

function parse(answer: { status: number; body: string }, route: string): unknown {
  if (answer.status !== 200) throw unexpected(route, `status ${answer.status}`);
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    throw unexpected(route, 'not JSON');
  }
}

function unexpected(route: string, why: string): SessmigError {
  return new SessmigError('opencode-failed', `opencode serve answered GET ${route} unexpectedly (${why})`, {
    hint: 'this opencode version may not list its models and agents as sessmig expects; the check of models and agents was skipped',
  });
}
