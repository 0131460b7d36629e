// Module hooks that let `node` run the bench's TypeScript (bench/*.ts and the test support it
// imports, test/support/*.ts) in place, with no build step and no extra dependency: each .ts file is
// transpiled by the project's own `typescript` devDependency (types are erased, not checked; check
// them with `npx tsc -p bench/tsconfig.json`). Running in place keeps import.meta.url true, which
// test/support relies on to find the repo root and s3rver-child.mjs.
// Registered by bench/register.mjs (`node --import ./bench/register.mjs bench/run.ts`).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const COMPILER_OPTIONS = {
  module: ts.ModuleKind.ESNext,
  target: ts.ScriptTarget.ES2022,
  isolatedModules: true,
  inlineSourceMap: true,
  inlineSources: true,
};

/** A relative `./x.js` import from a .ts file names `./x.ts` when no x.js exists (NodeNext style). */
export async function resolve(specifier, context, nextResolve) {
  const parent = context.parentURL;
  if (parent && parent.startsWith('file:') && parent.endsWith('.ts') && /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(specifier, parent);
    if (!existsSync(fileURLToPath(url))) {
      const tsUrl = new URL(`${url.href.slice(0, -3)}.ts`);
      if (existsSync(fileURLToPath(tsUrl))) return { url: tsUrl.href, shortCircuit: true };
    }
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const fileName = fileURLToPath(url);
    const source = await readFile(fileName, 'utf8');
    const out = ts.transpileModule(source, { fileName, compilerOptions: COMPILER_OPTIONS, reportDiagnostics: false });
    return { format: 'module', source: out.outputText, shortCircuit: true };
  }
  return nextLoad(url, context);
}
