/**
 * The permissions of what sessmig writes into a local-folder remote (docs/FORMAT.md, Remotes).
 * Sessions hold everything the agent saw, so everything is private to the user — files 0600,
 * folders 0700 — whatever the umask. One exception, chosen by the user: a remote root that is
 * group-writable but not writable by everyone (`chmod 2770`, `2775`) was shared with its group on purpose, and its
 * group keeps the rights the root gives it on what sessmig writes there. Other users get nothing,
 * whatever the root's mode: a root made by `mkdir` (0755 under umask 022) says nothing about intent.
 */
export interface FolderModes {
  /** The group granted rights (the root's), or undefined: everything private. */
  gid: number | undefined;
  /** Mode of a file / folder owned by that group. */
  sharedFile: number;
  sharedDir: number;
}

export const PRIVATE_FILE = 0o600;
export const PRIVATE_DIR = 0o700;

/** The policy a remote root's mode and group imply; undefined (no root yet) is private. */
export function folderModes(root: { mode: number; gid: number } | undefined): FolderModes {
  // Group-writable says "shared with my group"; writable by everyone (chmod 777) says nothing of the kind.
  if (!root || (root.mode & 0o020) === 0 || (root.mode & 0o002) !== 0) return { gid: undefined, sharedFile: PRIVATE_FILE, sharedDir: PRIVATE_DIR };
  const group = root.mode & 0o070;
  return {
    gid: root.gid,
    sharedFile: PRIVATE_FILE | (group & 0o060),
    // Keep set-group-id on folders where the root has it: new objects then stay in the root's group.
    sharedDir: PRIVATE_DIR | group | (root.mode & 0o2000),
  };
}

/**
 * The mode an object should have. Group rights go only to objects in the root's group: an object
 * that landed in another group (the user's primary one, when the root is not set-group-id) stays
 * private rather than open to a group nobody chose.
 */
export function wantedMode(policy: FolderModes, kind: 'file' | 'dir', gid: number): number {
  const shared = policy.gid !== undefined && gid === policy.gid;
  if (kind === 'file') return shared ? policy.sharedFile : PRIVATE_FILE;
  return shared ? policy.sharedDir : PRIVATE_DIR;
}

/** Who, beyond what the policy grants, may get into an object with this mode: 'others', 'group' or nothing. */
export function excessAccess(policy: FolderModes, kind: 'file' | 'dir', mode: number, gid: number): 'others' | 'group' | undefined {
  const allowed = wantedMode(policy, kind, gid);
  const extra = mode & 0o077 & ~allowed;
  if (extra & 0o007) return 'others';
  if (extra & 0o070) return 'group';
  return undefined;
}
