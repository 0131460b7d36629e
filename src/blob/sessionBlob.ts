import type { LastUsed } from '../opencode/offerings.js';
import { pathIs, type JsonPath, type ScanHooks } from '../util/jsonScan.js';

/**
 * What sessmig reads from, and changes in, an opencode export blob `{info, messages:[{info, parts}]}`.
 * Only these paths are ever decoded; every other byte passes through untouched.
 */
export interface BlobFacts {
  id?: string;
  parentID?: string | null;
  title?: string;
  directory?: string;
  version?: string;
  timeUpdated?: number;
  messages: number;
  /** Role and completion of the last assistant message seen. */
  lastAssistantCompleted: boolean | undefined;
  /** A tool part whose `state.status` is still `pending` or `running` (opencode 1.x tool states). */
  toolRunning?: boolean;
  /** The model and agent the session last used (see LastUsed). */
  lastUsed: LastUsed;
}

/**
 * The model and agent a session last used: those of its last user message that names them
 * (`model.providerID`/`model.modelID`, `agent`: what the user chose, and what opencode resumes
 * with), else of its last assistant message (`providerID`/`modelID`, `agent` or `mode` before
 * opencode had `agent`), else the session info's own `model`/`agent` (opencode 1.18). What a host
 * must offer to resume the session as it was.
 */
export type { LastUsed };

const INFO_FIELDS = new Set(['id', 'parentID', 'title', 'directory', 'version', 'projectID']);

/**
 * Fields that a host binds a session to (they change on import, not with content): nulled in the
 * content hash so equal sessions on two hosts hash alike.
 */
function isHostBound(path: JsonPath): boolean {
  return (
    pathIs(path, 'info', 'directory') ||
    pathIs(path, 'info', 'projectID') ||
    pathIs(path, 'info', 'path') ||
    pathIs(path, 'info', 'time', 'updated')
  );
}

export interface ReadHooks {
  hooks: ScanHooks;
  facts: BlobFacts;
}

/** Hooks that collect BlobFacts; with `rebaseTo`, also rewrite info.directory and clear info.projectID. */
export function blobHooks(rebaseTo?: string): ReadHooks {
  const facts: BlobFacts = { messages: 0, lastAssistantCompleted: undefined, lastUsed: {} };
  const lastUsed = new LastUsedTracker(facts);
  let currentMessage = -1;
  let currentRole: string | undefined;
  let currentCompleted = false;
  const settleMessage = () => {
    if (currentMessage >= 0 && currentRole === 'assistant') facts.lastAssistantCompleted = currentCompleted;
  };
  const hooks: ScanHooks = {
    wants(path) {
      if (path[0] === 'info') {
        return (path.length === 2 && INFO_FIELDS.has(path[1] as string)) || pathIs(path, 'info', 'time', 'updated') || namesModelOrAgent(path.slice(1), true);
      }
      if (path[0] !== 'messages') return false;
      if (path[2] === 'parts') return path.length === 6 && path[4] === 'state' && path[5] === 'status';
      return path[2] === 'info' && (pathIs(path.slice(3), 'role') || pathIs(path.slice(3), 'time', 'completed') || namesModelOrAgent(path.slice(3), false));
    },
    onValueStart(path) {
      if (path.length === 2 && path[0] === 'messages') {
        settleMessage();
        facts.messages++;
        currentMessage = path[1] as number;
        lastUsed.message();
        currentRole = undefined;
        currentCompleted = false;
      }
    },
    onScalar(path, value) {
      if (path[0] === 'messages' && path[2] === 'parts') {
        if (value === 'pending' || value === 'running') facts.toolRunning = true;
        return;
      }
      if (lastUsed.offer(path, value)) return;
      if (path[0] === 'messages') {
        if (path[3] === 'role') currentRole = typeof value === 'string' ? value : undefined;
        else currentCompleted = typeof value === 'number';
        // The last message may end the document: settle eagerly, re-settled by the next message.
        settleMessage();
        return;
      }
      const field = path.length === 3 ? 'timeUpdated' : (path[1] as string);
      switch (field) {
        case 'id':
        case 'title':
        case 'directory':
        case 'version':
          if (typeof value === 'string') facts[field] = value;
          break;
        case 'parentID':
          facts.parentID = typeof value === 'string' ? value : null;
          break;
        case 'timeUpdated':
          if (typeof value === 'number') facts.timeUpdated = value;
          break;
      }
    },
    volatile: isHostBound,
    ...(rebaseTo === undefined
      ? {}
      : {
          replace(path: JsonPath) {
            if (pathIs(path, 'info', 'directory')) return JSON.stringify(rebaseTo);
            if (pathIs(path, 'info', 'projectID')) return '""';
            return undefined;
          },
        }),
  };
  return { hooks, facts };
}

/** Follows what each message names (see LastUsed) and keeps facts.lastUsed up to date as the scan goes. */
class LastUsedTracker {
  private info: Record<string, string> = {};
  private current: Record<string, string> | undefined;
  private readonly last: Record<'user' | 'other', { model?: LastUsed['model']; agent?: string }> = { user: {}, other: {} };

  constructor(private readonly facts: BlobFacts) {}

  /** A message starts: what it names overrides what earlier ones named. */
  message(): void {
    this.current = {};
  }

  /** Takes a scalar that names a model, an agent or a message's role; false for any other path (role is not consumed). */
  offer(path: JsonPath, value: unknown): boolean {
    const sessionInfo = path[0] === 'info';
    const inside = sessionInfo ? path.slice(1) : path[0] === 'messages' && path[2] === 'info' ? path.slice(3) : undefined;
    if (!inside) return false;
    const role = !sessionInfo && pathIs(inside, 'role');
    if (!role && !namesModelOrAgent(inside, sessionInfo)) return false;
    if (typeof value === 'string') {
      const key = inside.join('.');
      if (sessionInfo) this.info[key] = value;
      else if (this.current) this.current[key] = value;
      this.settle();
    }
    return !role;
  }

  private settle(): void {
    const named = this.current ?? {};
    const last = this.last[named.role === 'user' ? 'user' : 'other'];
    const providerID = named['model.providerID'] ?? named.providerID;
    const modelID = named['model.modelID'] ?? named.modelID;
    if (providerID !== undefined && modelID !== undefined) last.model = { providerID, modelID };
    const agent = named.agent ?? named.mode;
    if (agent !== undefined) last.agent = agent;
    // What the user last chose (a user message) is what opencode resumes with; an assistant's
    // (a compaction runs as agent "compaction") only where no user message names one.
    const infoModel = this.info['model.providerID'] !== undefined && this.info['model.id'] !== undefined ? { providerID: this.info['model.providerID'], modelID: this.info['model.id'] } : undefined;
    const model = this.last.user.model ?? this.last.other.model ?? infoModel;
    const lastAgent = this.last.user.agent ?? this.last.other.agent ?? this.info.agent;
    this.facts.lastUsed = { ...(model ? { model } : {}), ...(lastAgent !== undefined ? { agent: lastAgent } : {}) };
  }
}

/**
 * A path (inside a message's info, or the session's info) that names a model or an agent: `agent`,
 * `mode`, `providerID`, `modelID`, `model.providerID`, `model.modelID`; on the session info,
 * `model.id` and `model.providerID` (1.18).
 */
function namesModelOrAgent(inside: JsonPath, sessionInfo: boolean): boolean {
  if (sessionInfo) return pathIs(inside, 'agent') || pathIs(inside, 'model', 'id') || pathIs(inside, 'model', 'providerID');
  return (
    pathIs(inside, 'agent') ||
    pathIs(inside, 'mode') ||
    pathIs(inside, 'providerID') ||
    pathIs(inside, 'modelID') ||
    pathIs(inside, 'model', 'providerID') ||
    pathIs(inside, 'model', 'modelID')
  );
}

export function isBusy(facts: BlobFacts): boolean {
  return facts.lastAssistantCompleted === false || facts.toolRunning === true;
}
