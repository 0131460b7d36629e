import { execa } from 'execa';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Real git in throwaway folders, isolated from the user's and the system's git config. */
export async function makeSandbox(): Promise<{ dir: string; env: NodeJS.ProcessEnv; temp: (name: string) => Promise<string>; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sessmig-code-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    XDG_CONFIG_HOME: path.join(dir, '.config'),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.com',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.com',
    // Snapshots run git status: it must not rewrite the index the tests compare byte for byte.
    GIT_OPTIONAL_LOCKS: '0',
  };
  for (const name of Object.keys(env)) if (name.startsWith('GIT_DIR') || name === 'GIT_INDEX_FILE' || name === 'GIT_WORK_TREE') delete env[name];
  let n = 0;
  /** A fresh folder under the sandbox, one per call. */
  const temp = async (name: string) => {
    const folder = path.join(dir, 'tmp', `${name}-${n++}`);
    await mkdir(folder, { recursive: true });
    return folder;
  };
  return { dir, env, temp, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function gitIn(cwd: string, env: NodeJS.ProcessEnv) {
  return async (...args: string[]): Promise<string> => {
    const result = await execa('git', args, { cwd, env, extendEnv: false, stripFinalNewline: false });
    return String(result.stdout);
  };
}

export interface FileEntry {
  mode: string;
  /** File bytes (base64) or symlink target. */
  content: string;
}

/** Every file under root except .git: mode (type + exec bit) and bytes / link target. */
export async function readFiles(root: string, skip: (rel: string) => boolean = () => false): Promise<Record<string, FileEntry>> {
  const out: Record<string, FileEntry> = {};
  async function walk(rel: string): Promise<void> {
    for (const entry of await readdir(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (child === '.git' || skip(child)) continue;
      const full = path.join(root, child);
      const stat = await lstat(full);
      if (stat.isSymbolicLink()) out[child] = { mode: 'link', content: await readlink(full) };
      else if (stat.isDirectory()) await walk(child);
      else out[child] = { mode: stat.mode & 0o111 ? 'exec' : 'file', content: (await readFile(full)).toString('base64') };
    }
  }
  await walk('');
  return out;
}

/** What the issue compares: HEAD, branch, `git diff --cached`, `git diff`, `git status --porcelain` and the files. */
export async function codeSnapshot(root: string, env: NodeJS.ProcessEnv, skip?: (rel: string) => boolean) {
  const git = gitIn(root, env);
  return {
    head: await git('rev-parse', 'HEAD'),
    branch: await git('symbolic-ref', '-q', '--short', 'HEAD').catch(() => '(detached)'),
    cached: await git('diff', '--cached', '--binary'),
    diff: await git('diff', '--binary'),
    status: await git('status', '--porcelain', '--untracked-files=all'),
    files: await readFiles(root, skip),
  };
}

/** Everything under .git that a user's state lives in: refs, HEAD, the index bytes. */
export async function gitState(root: string, env: NodeJS.ProcessEnv) {
  const git = gitIn(root, env);
  return {
    refs: await git('for-each-ref', '--format=%(refname) %(objectname)'),
    head: await readFile(path.join(root, '.git', 'HEAD'), 'utf8'),
    index: (await readFile(path.join(root, '.git', 'index')).catch(() => Buffer.alloc(0))).toString('base64'),
    stash: await git('stash', 'list'),
  };
}
