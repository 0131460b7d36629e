/**
 * Per-phase timing for --timing. Phases that run in parallel (exports, uploads) add up their busy
 * time, so a phase can exceed the wall clock; percentages are of the wall clock, and the table
 * says so. Printed on failure too, so a slow failing run can be diagnosed.
 */
export class Timing {
  private readonly started = performance.now();
  private readonly phases = new Map<string, { ms: number; count: number }>();
  private readonly notes: string[] = [];

  add(phase: string, ms: number): void {
    const entry = this.phases.get(phase) ?? { ms: 0, count: 0 };
    entry.ms += ms;
    entry.count++;
    this.phases.set(phase, entry);
  }

  async time<T>(phase: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(phase, performance.now() - t0);
    }
  }

  /** A free-form line under the table (e.g. which export path was taken). */
  note(text: string): void {
    this.notes.push(text);
  }

  toJSON(): { wallMs: number; phases: { phase: string; ms: number; count: number; percent: number }[]; notes: string[] } {
    const wallMs = performance.now() - this.started;
    const phases = [...this.phases.entries()]
      .map(([phase, { ms, count }]) => ({ phase, ms: Math.round(ms), count, percent: wallMs > 0 ? Math.round((ms / wallMs) * 1000) / 10 : 0 }))
      .sort((a, b) => b.ms - a.ms);
    return { wallMs: Math.round(wallMs), phases, notes: [...this.notes] };
  }

  format(): string {
    const { wallMs, phases, notes } = this.toJSON();
    const lines = ['timing (busy time per phase; parallel work can exceed the wall clock):'];
    for (const p of phases) {
      lines.push(`  ${p.phase.padEnd(12)} ${(p.ms / 1000).toFixed(2).padStart(8)} s  ${p.percent.toFixed(1).padStart(5)} %  (${p.count}×)`);
    }
    lines.push(`  ${'total'.padEnd(12)} ${(wallMs / 1000).toFixed(2).padStart(8)} s  wall clock`);
    for (const note of notes) lines.push(`  ${note}`);
    return `${lines.join('\n')}\n`;
  }
}
