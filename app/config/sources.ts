/**
 * Reads the text sources of configuration (an ini file, a .env file, the
 * environment, command-line `--set KEY=VALUE` flags) into plain key/value
 * maps, remembering where each value came from so errors can name it.
 *
 * One rule for comments everywhere: a line whose first non-blank character is
 * `;` or `#` is a comment; elsewhere those characters are part of the value
 * (SIP URI parameters, passwords). The `ini` package would cut a value at the
 * first `;` or `#`, so we escape them before handing a line to it.
 */
import { readFileSync } from 'node:fs';
import ini from 'ini';
import type { ConfigProblem } from '../errors.js';

export interface SourcedValue {
  value: string;
  /** The file (with line), "environment" or "command line". */
  source: string;
}

export interface ConfigSource {
  name: string;
  values: Map<string, SourcedValue>;
  /** `[section]` blocks of an ini file, in file order, each with its keys. */
  sections: Map<string, { source: string; values: Map<string, string> }>;
  warnings: string[];
  problems: ConfigProblem[];
}

const COMMENT_LINE = /^\s*[;#]/;

function isQuoted(value: string): boolean {
  return (
    (value.length > 1 && value.startsWith('"') && value.endsWith('"')) || (value.length > 1 && value.startsWith("'") && value.endsWith("'"))
  );
}

/** Escapes `\`, `;` and `#` in a key=value line so `ini` keeps them literally. */
function protectValue(line: string): string {
  const equals = line.indexOf('=');
  if (equals < 0) return line;
  const value = line.slice(equals + 1).trim();
  if (isQuoted(value)) return line;
  return line.slice(0, equals + 1) + value.replace(/[\\;#]/g, (c) => `\\${c}`);
}

/** Top-level `KEY=VALUE` pairs of an ini file, and its `[section]` blocks (routing rules). */
export function readIniFile(path: string): ConfigSource {
  const text = readFileSync(path, 'utf8');
  const source: ConfigSource = { name: path, values: new Map(), sections: new Map(), warnings: [], problems: [] };
  const lines = text.split(/\r?\n/);
  const protectedLines: string[] = [];
  const lineOfKey = new Map<string, number>();
  const lineOfSection = new Map<string, number>();
  let inSection = false;
  lines.forEach((line, index) => {
    if (COMMENT_LINE.test(line) || line.trim() === '') {
      protectedLines.push('');
      return;
    }
    const section = /^\s*\[(.*)\]\s*$/.exec(line);
    if (section) {
      inSection = true;
      const name = (section[1] ?? '').trim();
      if (lineOfSection.has(name))
        source.problems.push({ key: `[${name}]`, source: `${path}:${index + 1}`, message: 'section given twice' });
      lineOfSection.set(name, index + 1);
      protectedLines.push(line);
      return;
    }
    protectedLines.push(protectValue(line));
    const name = line.split('=')[0]?.trim() ?? '';
    if (!inSection && name !== '') {
      const earlier = lineOfKey.get(name);
      if (earlier !== undefined) {
        source.warnings.push(`${name} is set twice in ${path} (lines ${earlier} and ${index + 1}); the later value is used`);
      }
      lineOfKey.set(name, index + 1);
    }
  });
  const decoded = ini.decode(protectedLines.join('\n'), { bracketedArray: false });
  for (const [name, raw] of Object.entries(decoded)) {
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      const values = new Map(Object.entries(raw as Record<string, unknown>).map(([key, value]) => [key, String(value)]));
      source.sections.set(name, { source: `${path}:${lineOfSection.get(name) ?? '?'}`, values });
      continue;
    }
    const value = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    source.values.set(name, { value: String(value), source: `${path}:${lineOfKey.get(name) ?? '?'}` });
  }
  return source;
}

/** A `.env` file: `KEY=VALUE` lines, optional `export `, optional surrounding quotes. */
export function readDotEnvFile(path: string): ConfigSource {
  const source: ConfigSource = { name: path, values: new Map(), sections: new Map(), warnings: [], problems: [] };
  readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .forEach((line, index) => {
      if (COMMENT_LINE.test(line) || line.trim() === '') return;
      const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line);
      if (!match) {
        source.warnings.push(`${path}:${index + 1} is not KEY=VALUE; ignored`);
        return;
      }
      let value = (match[2] ?? '').trim();
      if (isQuoted(value)) value = value.slice(1, -1);
      source.values.set(match[1] ?? '', { value, source: `${path}:${index + 1}` });
    });
  return source;
}

/** The environment variables named like known keys (others are not ours). */
export function readEnvironment(env: NodeJS.ProcessEnv, knownKeys: readonly string[]): ConfigSource {
  const source: ConfigSource = { name: 'environment', values: new Map(), sections: new Map(), warnings: [], problems: [] };
  for (const name of knownKeys) {
    const value = env[name];
    if (value !== undefined) source.values.set(name, { value: value.trim(), source: 'environment' });
  }
  return source;
}

/** `--set KEY=VALUE` flags, in order. */
export function readFlags(pairs: readonly string[]): ConfigSource {
  const source: ConfigSource = { name: 'command line', values: new Map(), sections: new Map(), warnings: [], problems: [] };
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals <= 0) {
      source.problems.push({ key: pair, source: 'command line', message: '--set takes KEY=VALUE' });
      continue;
    }
    source.values.set(pair.slice(0, equals).trim(), { value: pair.slice(equals + 1).trim(), source: 'command line' });
  }
  return source;
}
