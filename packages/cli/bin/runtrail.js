#!/usr/bin/env node
// The `runtrail` command. This file is committed, not built: npm links it
// into node_modules/.bin at install time, before the TypeScript is compiled
// (a bin pointing into dist/ would not exist yet and would not be linked).
// It is written for any Node version so that an old one gets one clear line
// instead of a syntax error from the real entry point.
import { readFileSync } from 'node:fs';

var pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
var wanted = /(\d+)\.(\d+)/.exec(pkg.engines.node);
var have = process.versions.node.split('.').map(Number);
if (have[0] < Number(wanted[1]) || (have[0] === Number(wanted[1]) && have[1] < Number(wanted[2]))) {
  process.stderr.write('runtrail: Node.js ' + process.versions.node + ' is not supported; runtrail needs Node.js ' + pkg.engines.node + '\n');
  process.exit(1);
}

var entry = new URL('../dist/main.js', import.meta.url);
import(entry.href).catch(function (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).indexOf(entry.pathname) !== -1) {
    process.stderr.write('runtrail: the CLI is not built (' + entry.pathname + ' is missing); run `npm run build` in the runtrail checkout\n');
    process.exit(1);
  }
  throw err;
});
