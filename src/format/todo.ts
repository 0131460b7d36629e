import { z } from 'zod';

/**
 * A session's todo list. `opencode export` leaves it out (it lives in the `todo` table), so sessmig
 * carries it in the manifest and writes it back through `opencode db` — opencode's own binary and
 * schema — after checking that the destination's table has the columns it knows.
 */
export const Todo = z.looseObject({
  content: z.string().max(65_536),
  status: z.string().max(64),
  priority: z.string().max(64),
  position: z.number().int().nonnegative().max(100_000),
  timeCreated: z.number().int().nonnegative(),
  timeUpdated: z.number().int().nonnegative(),
});
export type Todo = z.infer<typeof Todo>;
