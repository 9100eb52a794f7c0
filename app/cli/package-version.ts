/**
 * The version in the project's package.json, for `transcription-proxy
 * --version`. The file is found by walking up from this module, which sits at
 * app/cli/ in the source tree and at dist/app/cli/ once built (and in the npm
 * package and the image).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'asterisk-transcription-proxy';

export function packageVersion(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let directory = from; ; directory = dirname(directory)) {
    const file = join(directory, 'package.json');
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === PACKAGE_NAME && typeof manifest.version === 'string') return manifest.version;
    }
    if (dirname(directory) === directory) return 'unknown';
  }
}
