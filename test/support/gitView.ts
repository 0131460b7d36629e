/**
 * What git says about a checkout: everything the code leg promises to carry (docs/FORMAT-code.md)
 * — HEAD, the branch (null when detached), the staged and unstaged diffs and the porcelain status.
 * End-to-end tests compare it between source and destination with the bytes of the files they wrote.
 */
import { execa } from 'execa';

export const git = async (cwd: string, args: string[]): Promise<string> => String((await execa('git', args, { cwd })).stdout);

export async function gitState(cwd: string): Promise<{ head: string; branch: string | null; cached: string; diff: string; status: string }> {
  return {
    head: await git(cwd, ['rev-parse', 'HEAD']),
    branch: await git(cwd, ['symbolic-ref', '--quiet', '--short', 'HEAD']).catch(() => null),
    cached: await git(cwd, ['diff', '--cached']),
    diff: await git(cwd, ['diff']),
    status: await git(cwd, ['status', '--porcelain']),
  };
}
