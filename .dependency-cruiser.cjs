/**
 * The layer order every import in src/ follows (README, "Architecture"): a module imports only from
 * its own layer or the layers below it, and nothing imports in a cycle. `.ci/run` checks it.
 *
 *   cli > core > blob, crypto, code > opencode, remote, host > format > util
 */
const LAYERS = [
  ['cli'],
  ['core'],
  ['blob', 'crypto', 'code'],
  ['opencode', 'remote', 'host'],
  ['format'],
  ['util'],
];
const rank = (name) => LAYERS.findIndex((group) => group.includes(name));
const forbidden = [
  {
    name: 'no-circular',
    comment: 'a cycle makes a layer impossible to read or test on its own',
    severity: 'error',
    from: { path: '^src/' },
    to: { circular: true },
  },
];
for (const group of LAYERS) {
  for (const layer of group) {
    const above = LAYERS.filter((_, index) => index < rank(layer)).flat();
    if (above.length === 0) continue;
    forbidden.push({
      name: `${layer}-imports-upward`,
      comment: `${layer}/ sits below ${above.join(', ')}: it may not import from them`,
      severity: 'error',
      from: { path: `^src/${layer}/` },
      to: { path: `^src/(${above.join('|')})/` },
    });
  }
}
module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
