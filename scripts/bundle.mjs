// The shipped commands: dist/app/ (tsc's output, one ES module per source
// file) bundled into one CommonJS file per command (dist/transcription-proxy.cjs,
// and dist/healthcheck.cjs for the image), with the packages in node_modules
// left to require() at run time.
//
// Why: Node's ES module loader and its records for some 100 modules cost the
// idle service about 5 MiB of its own memory that one CommonJS file does not
// (docs/benchmarks.md, "Idle memory"). What runs is the same code: the bundle
// is made from dist/app/ as tsc wrote it, and every test that starts the
// command starts the bundle.
//   node scripts/bundle.mjs   (npm run build runs it after tsc)
import { chmodSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Each shipped command: the module tsc wrote, and the file it is shipped as. */
const COMMANDS = [
  { input: 'dist/app/cli/main.js', output: 'dist/transcription-proxy.cjs' },
  // The image's HEALTHCHECK, run every 10 s.
  { input: 'dist/app/cli/healthcheck.js', output: 'dist/healthcheck.cjs' },
];

/** Only our own modules (relative or absolute paths) go into the bundle; packages and node: builtins stay outside. */
const isPackage = (id) => !id.startsWith('.') && !id.startsWith('/');

for (const command of COMMANDS) {
  const input = join(ROOT, command.input);
  const output = join(ROOT, command.output);
  await build({
    input,
    platform: 'node',
    external: isPackage,
    logLevel: 'warn',
    output: { format: 'cjs', file: output, sourcemap: false },
  });
  // The first line (`#!/usr/bin/env -S node FLAGS`) carries node's flags for
  // the service; the bundle must start with it too.
  const shebang = readFileSync(input, 'utf8').split('\n', 1)[0];
  if (readFileSync(output, 'utf8').split('\n', 1)[0] !== shebang) throw new Error(`${output}: first line is not ${shebang}`);
  chmodSync(output, 0o755);
}
