import { describe, expect, it } from 'vitest';
import { makeReporter } from '../../src/cli/reporter.js';
import { Timing } from '../../src/util/timing.js';

describe('progress and timing output', () => {
  it('draws progress only on a terminal, and clears it before other lines', () => {
    const out: string[] = [];
    const tty = makeReporter((line) => out.push(`${line}\n`), { tty: true, raw: (text) => out.push(text) });
    tty.progress('pushed', 1, 2, 1024 * 1024);
    tty.warn('careful');
    tty.progress('pushed', 2, 2, 2 * 1024 * 1024);
    const text = out.join('');
    expect(text).toContain('pushed 1/2 sessions, 1.0 MiB');
    expect(text).toMatch(/\r\x1b\[Kwarning: careful/);
    expect(text.endsWith('\r\x1b[K')).toBe(true);

    const plain: string[] = [];
    const pipe = makeReporter((line) => plain.push(line), { tty: false, raw: (text) => plain.push(text) });
    pipe.progress('pushed', 1, 2, 10);
    pipe.info('hello');
    expect(plain).toEqual(['hello']);
  });

  it('sorts phases largest first with percentages of the wall clock', async () => {
    const timing = new Timing();
    timing.add('upload', 30);
    timing.add('export', 120);
    timing.add('export', 10);
    await timing.time('pointer', async () => new Promise((resolve) => setTimeout(resolve, 20)));
    const json = timing.toJSON();
    expect(json.phases.map((p) => p.phase)).toEqual(['export', 'upload', 'pointer']);
    expect(json.phases[0]).toMatchObject({ ms: 130, count: 2 });
    expect(timing.format()).toMatch(/export .*%.*\(2×\)[\s\S]*total .* s  wall clock/);
  });
});
