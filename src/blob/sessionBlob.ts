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
}

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
  const facts: BlobFacts = { messages: 0, lastAssistantCompleted: undefined };
  let currentMessage = -1;
  let currentRole: string | undefined;
  let currentCompleted = false;
  const settleMessage = () => {
    if (currentMessage >= 0 && currentRole === 'assistant') facts.lastAssistantCompleted = currentCompleted;
  };
  const hooks: ScanHooks = {
    wants(path) {
      if (path[0] === 'info') {
        return (path.length === 2 && INFO_FIELDS.has(path[1] as string)) || pathIs(path, 'info', 'time', 'updated');
      }
      if (path[0] !== 'messages') return false;
      if (path[2] === 'parts') return path.length === 6 && path[4] === 'state' && path[5] === 'status';
      return path[2] === 'info' && (pathIs(path.slice(3), 'role') || pathIs(path.slice(3), 'time', 'completed'));
    },
    onValueStart(path) {
      if (path.length === 2 && path[0] === 'messages') {
        settleMessage();
        facts.messages++;
        currentMessage = path[1] as number;
        currentRole = undefined;
        currentCompleted = false;
      }
    },
    onScalar(path, value) {
      if (path[0] === 'messages' && path[2] === 'parts') {
        if (value === 'pending' || value === 'running') facts.toolRunning = true;
        return;
      }
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

export function isBusy(facts: BlobFacts): boolean {
  return facts.lastAssistantCompleted === false || facts.toolRunning === true;
}
