/**
 * The ini examples in docs/ are configurations users copy: each must load
 * (with the checks `serve` makes) without errors or warnings.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { loadConfig } from '../../app/config/load-config.js';

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const examples = readdirSync(DOCS)
  .filter((name) => name.endsWith('.md'))
  .flatMap((name) =>
    [...readFileSync(join(DOCS, name), 'utf8').matchAll(/```ini\n([\s\S]*?)```/g)].map((match, index) => ({
      name: `${name} #${index + 1}`,
      text: match[1] ?? '',
    })),
  );

it('docs/ has ini examples', () => {
  expect(examples.length).toBeGreaterThanOrEqual(2);
});

it.each(examples)('$name loads as serve would load it', ({ text }) => {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-docs-'));
  writeFileSync(join(cwd, 'config.ini'), text);
  const loaded = loadConfig({ cwd, env: {}, requireRoute: true });
  expect(loaded.warnings).toEqual([]);
});

it('.env.example loads as a .env without problems or warnings', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-envexample-'));
  writeFileSync(join(cwd, '.env'), readFileSync(fileURLToPath(new URL('../../.env.example', import.meta.url)), 'utf8'));
  const loaded = loadConfig({ cwd, env: {}, requireRoute: true, required: ['ARI_PASSWORD'] });
  expect(loaded.warnings).toEqual([]);
  expect(loaded.config.ARI_PASSWORD).toBe('change-me-ari-secret');
});
