/** Parent/child ordering of opencode sessions (subagent children have a parentID). */
export interface TreeNode {
  id: string;
  parentID: string | null;
}

/** Parents before children; siblings by id, so the order is deterministic. */
export function orderParentsFirst<T extends TreeNode>(nodes: readonly T[]): T[] {
  const byId = new Map(nodes.map((node) => [node.id, node]));
  const children = new Map<string | null, T[]>();
  for (const node of nodes) {
    const parent = node.parentID !== null && byId.has(node.parentID) ? node.parentID : null;
    const list = children.get(parent) ?? [];
    list.push(node);
    children.set(parent, list);
  }
  const out: T[] = [];
  const seen = new Set<string>();
  const visit = (parent: string | null) => {
    const list = (children.get(parent) ?? []).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const node of list) {
      if (seen.has(node.id)) continue;
      seen.add(node.id);
      out.push(node);
      visit(node.id);
    }
  };
  visit(null);
  // A parent cycle (corrupt data) leaves nodes unvisited: append them rather than drop them.
  for (const node of nodes) if (!seen.has(node.id)) out.push(node);
  return out;
}

/** `roots` and every descendant of them among `nodes`. */
export function withDescendants<T extends TreeNode>(nodes: readonly T[], roots: Iterable<string>): Set<string> {
  const result = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const node of nodes) {
      if (node.parentID !== null && result.has(node.parentID) && !result.has(node.id)) {
        result.add(node.id);
        grew = true;
      }
    }
  }
  return result;
}
