/**
 * The opencode builds installed side by side as devDependencies (package.json): `opencode-ai` itself
 * and older builds as npm aliases (`"opencode-1-14": "npm:opencode-ai@1.14.41"`, …). For each, the
 * path of a binary that runs here, or why it does not.
 *
 *   const v = installedOpencode('1.14.41');
 *   describe.skipIf(!v.bin)(`… on ${v.version}`, …)   // v.skip says why
 *
 * Where the bin lives differs by version: from ~1.17 the package's bin is `bin/opencode.exe`, the
 * platform binary that postinstall copied in; older builds ship `bin/opencode`, a node launcher that
 * finds `opencode-<platform>-<arch>[-baseline]` in node_modules and spawns it. The launcher is
 * bypassed here (one node process less per call, and a kill reaches opencode itself).
 *
 * A binary counts only if `--version` prints the expected version: the registry reachable here
 * serves no `opencode-linux-x64@1.17.20`, and 1.17.20's postinstall then silently copies in the
 * first `opencode-linux-x64` it can resolve, the top-level 1.18.33. 1.17.19 (`opencode-1-17-19`),
 * the first build with the strict event replay, does run here: the 1.17 line is covered through it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './host.js';

export interface InstalledOpencode {
  /** The version the package pins. */
  version: string;
  /** The npm package folder name (opencode-ai, opencode-1-14, …). */
  packageName: string;
  /** A binary that prints `version` here; undefined when none does (then `skip` says why). */
  bin: string | undefined;
  skip?: string;
}

/** Package folder per version, as package.json's devDependencies pin them. */
export const OPENCODE_PACKAGES: Readonly<Record<string, string>> = {
  '1.18.33': 'opencode-ai',
  '1.17.20': 'opencode-1-17',
  // the first build with the strict /sync/replay (issue 11); its linux-x64 binary is on the registry
  '1.17.19': 'opencode-1-17-19',
  '1.14.41': 'opencode-1-14',
  '1.3.2': 'opencode-1-3',
};

function hasAvx2(): boolean {
  try {
    return /(^|\s)avx2(\s|$)/i.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function candidates(dir: string): string[] {
  const out: string[] = [];
  let bin: unknown;
  try {
    bin = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { bin?: Record<string, string> }).bin?.opencode;
  } catch {
    return out;
  }
  if (typeof bin === 'string' && bin.endsWith('.exe')) out.push(path.join(dir, bin));
  if (os.platform() === 'linux' || os.platform() === 'darwin') {
    const base = `opencode-${os.platform()}-${os.arch()}`;
    const names = hasAvx2() ? [base, `${base}-baseline`] : [`${base}-baseline`, base];
    for (const name of names) out.push(path.join(dir, 'node_modules', name, 'bin', 'opencode'));
  }
  if (typeof bin === 'string' && !bin.endsWith('.exe')) out.push(path.join(dir, bin));
  return out;
}

function probe(version: string, packageName: string): InstalledOpencode {
  const dir = path.join(REPO_ROOT, 'node_modules', packageName);
  if (!existsSync(dir)) return { version, packageName, bin: undefined, skip: `opencode ${version} is not installed (node_modules/${packageName}): run npm ci` };
  const tried: string[] = [];
  for (const file of candidates(dir)) {
    if (!existsSync(file)) continue;
    let printed: string;
    try {
      printed = execFileSync(file, ['--version'], {
        encoding: 'utf8',
        timeout: 30_000,
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_MODELS_FETCH: '1' },
      }).trim();
    } catch (error) {
      tried.push(`${path.relative(REPO_ROOT, file)} does not run (${(error as Error).message.split('\n')[0]})`);
      continue;
    }
    if (printed === version) return { version, packageName, bin: realpathSync(file) };
    tried.push(`${path.relative(REPO_ROOT, file)} prints ${JSON.stringify(printed.slice(0, 40))}`);
  }
  const why = tried.length > 0 ? tried.join('; ') : 'no binary found';
  return {
    version,
    packageName,
    bin: undefined,
    skip: `opencode ${version} does not run here: ${why} (its platform package opencode-${os.platform()}-${os.arch()}@${version} is probably missing from the registry)`,
  };
}

const cache = new Map<string, InstalledOpencode>();

/** One installed opencode build, probed once per process. */
export function installedOpencode(version: string): InstalledOpencode {
  const packageName = OPENCODE_PACKAGES[version];
  if (!packageName) return { version, packageName: '?', bin: undefined, skip: `opencode ${version} is not among the pinned builds (${Object.keys(OPENCODE_PACKAGES).join(', ')})` };
  let found = cache.get(version);
  if (!found) {
    found = probe(version, packageName);
    cache.set(version, found);
  }
  return found;
}

/** Every pinned build, newest first; those that do not run here carry `skip`. */
export function installedOpencodes(): InstalledOpencode[] {
  return Object.keys(OPENCODE_PACKAGES).map(installedOpencode);
}
