import type { Host, Pointer } from '../format/schema.js';
import { SessmigError } from '../util/errors.js';

/** Who may write a worktree's pointer (docs/FORMAT.md, "Ownership"). */
export function describeOwner(owner: Host | null): string {
  if (!owner) return 'nobody (released by `push --migrate`, in transit)';
  // An encrypted worktree's pointer names hosts by id only.
  return owner.hostname ? `${owner.hostname} (host ${owner.hostId})` : `host ${owner.hostId}`;
}

export function ownsWorktree(pointer: Pointer | undefined, host: Host): boolean {
  return !pointer || (pointer.owner !== null && pointer.owner.hostId === host.hostId);
}

/** A plain push by a host that does not own the worktree is refused. */
export function assertMayPush(pointer: Pointer | undefined, host: Host, worktree: string): void {
  if (ownsWorktree(pointer, host)) return;
  const owner = pointer!.owner;
  throw new SessmigError('not-owner', `worktree ${worktree} is owned by ${describeOwner(owner)}, not by this host; push refused`, {
    hint: owner
      ? `on ${hostLabel(owner)} run \`sessmig push --migrate\` to hand the sessions over, then here \`sessmig pull --migrate\`; if that host is gone, \`sessmig pull --migrate --force\` takes ownership`
      : 'take ownership first with `sessmig pull --migrate` (it pulls the current sessions, then makes this host the owner)',
    data: { owner },
  });
}

/** `pull --migrate` claims a released worktree, or (with --force) one owned by another host. */
export function assertMayClaim(pointer: Pointer, host: Host, worktree: string, force: boolean): void {
  if (pointer.owner === null || pointer.owner.hostId === host.hostId || force) return;
  throw new SessmigError('owned-elsewhere', `worktree ${worktree} is owned by ${describeOwner(pointer.owner)}; it has not been released`, {
    hint: `on ${hostLabel(pointer.owner)} run \`sessmig push --migrate\` first; if that host is gone for good, add --force to take ownership from it`,
    data: { owner: pointer.owner },
  });
}

/** A host for a hint: its name, or its id where the pointer keeps none (encrypted worktrees). */
export function hostLabel(host: Host): string {
  return host.hostname || `host ${host.hostId}`;
}
