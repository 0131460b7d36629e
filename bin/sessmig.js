#!/usr/bin/env node
// The AWS SDK warns on every run under Node 20 about a future Node requirement; sessmig's own
// engines field says what it needs, so the warning is noise on a CLI's stderr.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = await import('../dist/cli/main.js');

process.exitCode = await main(process.argv);
