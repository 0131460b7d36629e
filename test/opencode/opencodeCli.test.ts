/**
 * OpencodeCli is the real OpencodeAdapter: the process runner (opencode.ts) plus the adapter
 * modules' statements. A rollback after an interrupt works on its uninterruptible() copy and
 * restores todos and shares through it, so the copy must be a whole adapter, not the bare runner.
 * No opencode runs here (nothing is called that would start one).
 */
import { expect, it } from 'vitest';
import { OpencodeCli } from '../../src/opencode/opencodeCli.js';

it('the uninterruptible copy is a whole adapter that no longer listens to the abort signal', () => {
  const controller = new AbortController();
  const cli = new OpencodeCli({ bin: '/nonexistent/opencode', env: {}, timeoutMs: 1000, tempDir: '/tmp', signal: controller.signal });
  const copy = cli.uninterruptible();
  expect(copy).toBeInstanceOf(OpencodeCli);
  expect(copy).not.toBe(cli);
  expect(copy.options.signal).toBeUndefined();
  expect(cli.options.signal).toBe(controller.signal);
  expect(copy.options.bin).toBe('/nonexistent/opencode');
  for (const method of ['readTodos', 'writeTodos', 'readSessionState', 'readSessionExtras', 'writeShares', 'openImporter', 'openExporter', 'alignRows', 'serve'] as const) {
    expect(typeof copy[method]).toBe('function');
  }
});
