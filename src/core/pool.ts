/**
 * Runs `fn` over `items` with at most `jobs` at once. Results keep the input order; the first
 * failure stops new work from starting and is rethrown once the running ones have settled, so
 * error reporting does not depend on timing.
 */
export async function mapPool<T, R>(items: readonly T[], jobs: number, fn: (item: T, index: number) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure = undefined as { index: number; error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      signal?.throwIfAborted();
      const index = next++;
      try {
        results[index] = await fn(items[index]!, index);
      } catch (error) {
        const current = failure as { index: number; error: unknown } | undefined;
        if (current === undefined || index < current.index) failure = { index, error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  if (failure) throw (failure as { error: unknown }).error;
  return results;
}
