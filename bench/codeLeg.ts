// The code leg's figures (issue 17): capture+store and fetch+apply of a repository with tens of
// thousands of files, full and incremental (one file changed), against doing it by hand with
// `git bundle create` + `git fetch` (+ the checkout that makes the files, + for the increment the
// WIP commit a user has to make first). Not wired into bench/run.ts: it needs no opencode.
//
//   node --import ./bench/register.mjs bench/codeLeg.ts
//
// BENCH_CODE_FILES (default 40000) files of generated source-like text (seeded, so every run
// builds the same bytes: 1-3 KiB each, words from a fixed vocabulary, 400 folders), one commit,
// packed with `git gc` (as a clone is) and published to a bare "origin" the laptop tracks, then
// one unpublished commit and a working state: 20 edited tracked files, 10 staged, 10 untracked.
// Destinations: an empty folder, and a clone of origin (the hand-made baselines only carry commits;
// the WIP state would need a commit first). SESSMIG_TRACE_GIT=1 lists every git call of the code leg with its time. BENCH_CODE_SOURCE=DIR
// copies DIR's files instead (e.g. a node_modules tree); BENCH_CODE_REPO=PATH clones a real repository
// with its history instead (its default branch becomes main). Everything under os.tmpdir(), removed after.
// Remote: the local-folder remote. Times are wall clock on this (shared) machine.
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { applyCode, bundlesNeeded } from '../src/code/apply.js';
import { captureCode } from '../src/code/capture.js';
import { fetchCodeLeg, storeCodeLeg } from '../src/code/codeStore.js';
import { LocalRemote } from '../src/remote/localRemote.js';

const FILES = Number(process.env.BENCH_CODE_FILES ?? 40_000);
const env: NodeJS.ProcessEnv = {
  ...process.env,
  // No automatic gc: a detached `git gc` started by the set-up commit would run during the
  // measurements (and make the baseline's pack-objects reuse its deltas). The repository is
  // packed once, explicitly, before measuring, as a real clone is.
  GIT_CONFIG_COUNT: '1',
  GIT_CONFIG_KEY_0: 'gc.auto',
  GIT_CONFIG_VALUE_0: '0',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'bench',
  GIT_AUTHOR_EMAIL: 'bench@example.com',
  GIT_COMMITTER_NAME: 'bench',
  GIT_COMMITTER_EMAIL: 'bench@example.com',
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; seconds: number }> {
  const start = process.hrtime.bigint();
  const value = await fn();
  return { value, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

function rng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const WORDS = 'const let function return if else for while import export from class extends new this await async try catch throw value result error options path file index data key name type string number boolean array object map set list item count size bytes buffer stream remote session commit tree branch head state'.split(' ');

async function generate(root: string): Promise<void> {
  const random = rng(17);
  for (let i = 0; i < FILES; i++) {
    const dir = path.join(root, `pkg${i % 40}`, `mod${i % 400}`);
    if (i < 400) await mkdir(dir, { recursive: true });
    const lines: string[] = [];
    const target = 1024 + Math.floor(random() * 2048);
    let size = 0;
    while (size < target) {
      const n = 3 + Math.floor(random() * 8);
      const line = `${'  '.repeat(Math.floor(random() * 3))}${Array.from({ length: n }, () => WORDS[Math.floor(random() * WORDS.length)]).join(' ')};`;
      lines.push(line);
      size += line.length + 1;
    }
    await writeFile(path.join(dir, `file${i}.ts`), `${lines.join('\n')}\n`);
  }
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'sessmig-code-bench-'));
  const tmp = async (name: string) => {
    const dir = path.join(work, 'tmp', name);
    await mkdir(dir, { recursive: true });
    return dir;
  };
  try {
    const src = path.join(work, 'laptop');
    if (process.env.BENCH_CODE_REPO) {
      // A real repository with its whole history (e.g. a local clone of tldr-pages/tldr), as a user has it.
      git(work, 'clone', '-q', '--no-hardlinks', process.env.BENCH_CODE_REPO, src);
      git(src, 'checkout', '-q', '-B', 'main');
      git(src, 'remote', 'remove', 'origin');
    } else {
      await mkdir(src);
      git(src, 'init', '-q', '-b', 'main');
      if (process.env.BENCH_CODE_SOURCE) await cp(process.env.BENCH_CODE_SOURCE, path.join(src, 'tree'), { recursive: true, dereference: true });
      else await generate(src);
      git(src, 'add', '-A');
      git(src, 'commit', '-q', '-m', 'the tree');
    }
    git(src, 'gc', '-q');
    // The published history: a bare "origin" the laptop tracks, and a box that is a clone of it.
    const origin = path.join(work, 'origin.git');
    git(work, 'clone', '-q', '--bare', src, origin);
    git(src, 'remote', 'add', 'origin', origin);
    git(src, 'fetch', '-q', 'origin');
    git(src, 'branch', '-q', '--set-upstream-to=origin/main', 'main');
    const cloneBox = path.join(work, 'clone-box');
    const handClone = path.join(work, 'hand-clone');
    git(work, 'clone', '-q', origin, cloneBox);
    git(work, 'clone', '-q', origin, handClone);
    const tracked = git(src, 'ls-files').split('\n').filter(Boolean);
    // One commit that is not published, then the working state.
    await writeFile(path.join(src, tracked[50]!), 'committed, not pushed\n', { flag: 'a' });
    git(src, 'commit', '-q', '-am', 'local commit');
    for (const file of tracked.slice(0, 20)) await writeFile(path.join(src, file), 'edited on the laptop\n', { flag: 'a' });
    for (const file of tracked.slice(20, 30)) {
      await writeFile(path.join(src, file), 'staged on the laptop\n', { flag: 'a' });
      git(src, 'add', file);
    }
    for (let i = 0; i < 10; i++) await writeFile(path.join(src, `untracked-${i}.txt`), `untracked ${i}\n`);
    const rawBytes = await dirBytes(src);
    console.error(`repository: ${tracked.length} tracked files, ${(rawBytes / 1e6).toFixed(1)} MB on disk incl. .git`);

    const remote = new LocalRemote(path.join(work, 'remote'), 'file://bench');
    const box = path.join(work, 'box');
    const rows: string[][] = [];

    // Full: sessmig.
    const capture1 = await timed(async () => captureCode(src, { tempDir: await tmp('c1'), env, maxBytes: 4 * 1024 ** 3 }));
    const store1 = await timed(() => storeCodeLeg(remote, 'bench', capture1.value));
    const need1 = await bundlesNeeded(box, capture1.value.state, env);
    const fetch1 = await timed(async () => fetchCodeLeg(remote, 'bench', capture1.value.state, await tmp('f1'), need1));
    const apply1 = await timed(async () => applyCode(box, capture1.value.state, { bundleFiles: fetch1.value.files, tempDir: await tmp('a1'), backupDir: await tmp('b1'), env }));
    rows.push(['sessmig first push → empty folder', fmt(capture1.seconds), fmt(store1.seconds), mb(store1.value.uploadedBytes), fmt(fetch1.seconds), fmt(apply1.seconds), mb(fetch1.value.downloadedBytes)]);
    const needClone = await bundlesNeeded(cloneBox, capture1.value.state, env);
    const fetchClone = await timed(async () => fetchCodeLeg(remote, 'bench', capture1.value.state, await tmp('fc'), needClone));
    const applyClone = await timed(async () => applyCode(cloneBox, capture1.value.state, { bundleFiles: fetchClone.value.files, tempDir: await tmp('ac'), backupDir: await tmp('bc'), env }));
    rows.push(['sessmig same checkpoint → a clone of origin', '-', '-', '-', fmt(fetchClone.seconds), fmt(applyClone.seconds), kb(fetchClone.value.downloadedBytes)]);

    // Full: by hand (committed HEAD only: the edits would need a WIP commit first).
    const hand = path.join(work, 'hand');
    const handBundle = path.join(work, 'hand-full.bundle');
    const handCreate = await timed(() => git(src, 'bundle', 'create', '-q', handBundle, 'main'));
    const handFetch = await timed(() => {
      git(work, 'init', '-q', '-b', 'main', hand);
      git(hand, 'fetch', '-q', handBundle, 'main:refs/remotes/laptop/main');
      git(hand, 'checkout', '-q', '-b', 'work', 'refs/remotes/laptop/main');
    });
    const handBytes = (await stat(handBundle)).size;
    rows.push(['by hand: bundle main → empty folder (init+fetch+checkout)', fmt(handCreate.seconds), '-', mb(handBytes), '-', fmt(handFetch.seconds), mb(handBytes)]);
    const handCloneBundle = path.join(work, 'hand-clone.bundle');
    const handCreateC = await timed(() => git(src, 'bundle', 'create', '-q', handCloneBundle, 'main', '--not', 'origin/main'));
    const handFetchC = await timed(() => {
      git(handClone, 'fetch', '-q', handCloneBundle, 'main:refs/remotes/laptop/main');
      git(handClone, 'merge', '-q', '--ff-only', 'refs/remotes/laptop/main');
    });
    const handCloneBytes = (await stat(handCloneBundle)).size;
    rows.push(['by hand: bundle main --not origin/main → a clone (fetch+merge)', fmt(handCreateC.seconds), '-', kb(handCloneBytes), '-', fmt(handFetchC.seconds), kb(handCloneBytes)]);

    // Incremental: one tracked file changed.
    await writeFile(path.join(src, tracked[100]!), 'one more line\n', { flag: 'a' });
    const capture2 = await timed(async () => captureCode(src, { tempDir: await tmp('c2'), env, base: capture1.value.state }));
    const store2 = await timed(() => storeCodeLeg(remote, 'bench', capture2.value));
    const need2 = await bundlesNeeded(box, capture2.value.state, env);
    const fetch2 = await timed(async () => fetchCodeLeg(remote, 'bench', capture2.value.state, await tmp('f2'), need2));
    const apply2 = await timed(async () => applyCode(box, capture2.value.state, { bundleFiles: fetch2.value.files, tempDir: await tmp('a2'), backupDir: await tmp('b2'), env }));
    rows.push(['sessmig incremental (1 file) → the first box', fmt(capture2.seconds), fmt(store2.seconds), kb(store2.value.uploadedBytes), fmt(fetch2.seconds), fmt(apply2.seconds), kb(fetch2.value.downloadedBytes)]);

    // Incremental by hand: a WIP commit of the change, a bundle against the last one, fetch, checkout.
    const handInc = path.join(work, 'hand-inc.bundle');
    const before = git(src, 'rev-parse', 'main').trim();
    const handCreate2 = await timed(() => {
      git(src, 'commit', '-q', '-m', 'wip', '--', tracked[100]!);
      git(src, 'bundle', 'create', '-q', handInc, 'main', '--not', before);
    });
    const handFetch2 = await timed(() => {
      git(hand, 'fetch', '-q', handInc, 'main:refs/remotes/laptop/main');
      git(hand, 'merge', '-q', '--ff-only', 'refs/remotes/laptop/main');
    });
    const handIncBytes = (await stat(handInc)).size;
    rows.push(['by hand incremental (commit+bundle; fetch+merge)', fmt(handCreate2.seconds), '-', kb(handIncBytes), '-', fmt(handFetch2.seconds), kb(handIncBytes)]);

    const header = ['', 'capture / create s', 'store s', 'uploaded', 'fetch s', 'apply / fetch+checkout s', 'downloaded'];
    console.log(`code leg bench: ${tracked.length} files (${process.env.BENCH_CODE_REPO ?? process.env.BENCH_CODE_SOURCE ?? 'generated'}), git ${git(work, '--version').trim().replace('git version ', '')}, ${os.cpus().length} CPUs, local-folder remote`);
    console.log(`| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const fmt = (s: number) => s.toFixed(2);
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const kb = (b: number) => `${(b / 1e3).toFixed(1)} kB`;

await main();
