/**
 * Test-file helpers over the S3 targets of test/support/s3.ts (kept apart from it: the benchmark
 * imports s3.ts outside vitest).
 */
import { describe, it } from 'vitest';
import { e2eS3Kinds, type S3TargetKind } from './s3.js';

/**
 * `describe.each` over the end-to-end S3 targets (e2eS3Kinds), titled "<title> (<kind> remote)",
 * with a skipped placeholder naming why for each target left out.
 */
export function describeOnE2eS3(title: string, body: (kind: S3TargetKind) => void): void {
  const plan = e2eS3Kinds();
  for (const skipped of plan.skipped) {
    describe(`${title} (${skipped.kind} remote)`, () => {
      it.skip(`skipped: ${skipped.why}`, () => {});
    });
  }
  describe.each(plan.run)(`${title} (%s remote)`, body);
}

