/**
 * The end-to-end suite's check that the service keeps personal data and
 * secrets out of its logs. Test support registers, as it goes, every log the
 * suite's services write (service-under-test.ts: its log file; cli-process.ts:
 * a child's JSON lines on stdout and stderr) and every value that must not
 * appear in them: the numbers SIPp dials and calls from (sipp.ts), the numbers
 * of `call`, the configured secrets, the texts a stream server sends back.
 * After each e2e file (log-audit-hooks.ts, a setup file of the e2e project)
 * every line of every log is searched; a number in clear, a DTMF digit, a text
 * from the server, a password, token or JWT fails that file. Logs of a service
 * started with LOG_PII=true are exempt (that is what it is for).
 *
 * A number counts as in clear when it appears as a whole token: masked forms
 * (`**67`, `*********4567`) and longer digit runs (ports, counters) are not it.
 * UUIDs (call, channel and stream ids) and timestamps are removed first, since
 * random hex can contain any short run of digits, and so are JSON numbers (a
 * field's value that is a number, not a string: a counter such as an 8 s
 * call's 400 packets; a phone number is always logged as a string).
 */
import { readFileSync } from 'node:fs';

export interface AuditedLog {
  /** A file of JSON lines, or the lines themselves (a child's stdout). */
  file?: string;
  lines?: () => readonly string[];
  name: string;
  /** LOG_PII=true: personal data is expected in clear; secrets still are not. */
  showsPii: boolean;
}

const logs: AuditedLog[] = [];
const numbers = new Set<string>();
const secrets = new Set<string>();
const texts = new Set<string>();

export function auditLog(log: AuditedLog): void {
  logs.push(log);
}

/** Numbers (of three or more digits) a test dials, calls from or maps: `4567&PJSIP` registers 4567. */
export function auditNumbers(...values: (string | undefined)[]): void {
  for (const value of values) {
    for (const run of value?.match(/\+?\d{3,}/g) ?? []) {
      numbers.add(run);
      numbers.add(run.replace(/^\+/, ''));
    }
  }
}

/** Passwords, tokens, JWTs (at least 4 characters; shorter ones would match anything). */
export function auditSecrets(...values: (string | undefined)[]): void {
  for (const value of values) if (value !== undefined && value.length >= 4) secrets.add(value);
}

/** What a call carries (transcripts the server sends, the call's data, an operator's text): must never be logged. */
export function auditTexts(...values: string[]): void {
  for (const value of values) if (value.length >= 4) texts.add(value);
}

export interface Leak {
  log: string;
  line: number;
  what: string;
  text: string;
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const ISO_TIME = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z/g;
/** A field's value that is a JSON number: `"packets":400,`. */
const JSON_NUMBER = /":\s*-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?=\s*[,}\]])/g;
const DIGIT_KEYS = /"(digit|digits|dtmf)":\s*("(?!\[hidden\])[^"]*"|\{)/;
const TEXT_KEYS = /"(serverText|transcript|text)":\s*"(?!\[hidden\])/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** What one log line gives away; `showsPii` skips the personal data, never the secrets. */
export function leaksOf(
  line: string,
  sensitive: { numbers: Iterable<string>; secrets: Iterable<string>; texts: Iterable<string> },
  showsPii: boolean,
): string[] {
  const found: string[] = [];
  for (const secret of sensitive.secrets) if (line.includes(secret)) found.push(`secret ${secret.slice(0, 3)}…`);
  if (showsPii) return found;
  const scrubbed = line.replace(UUID, '<uuid>').replace(ISO_TIME, '<time>').replace(JSON_NUMBER, '":<number>');
  for (const number of sensitive.numbers) {
    if (new RegExp(`(?<![0-9A-Za-z*+])${escapeRegExp(number)}(?![0-9A-Za-z*])`).test(scrubbed)) found.push(`number ${number}`);
  }
  const digit = DIGIT_KEYS.exec(scrubbed);
  if (digit) found.push(`DTMF under "${digit[1]}"`);
  const text = TEXT_KEYS.exec(scrubbed);
  if (text) found.push(`text under "${text[1]}"`);
  for (const said of sensitive.texts) if (scrubbed.includes(said)) found.push(`text "${said.slice(0, 12)}…"`);
  return found;
}

/** Every leak in every registered log; clears the registry (one file's worth). */
export function auditRegisteredLogs(): Leak[] {
  const sensitive = { numbers: [...numbers], secrets: [...secrets], texts: [...texts] };
  const leaks: Leak[] = [];
  for (const log of logs) {
    let lines: readonly string[];
    try {
      lines = log.lines?.() ?? readFileSync(log.file ?? '', 'utf8').split('\n');
    } catch {
      continue; // never written: nothing logged
    }
    lines.forEach((text, index) => {
      for (const what of leaksOf(text, sensitive, log.showsPii)) leaks.push({ log: log.name, line: index + 1, what, text });
    });
  }
  logs.length = 0;
  numbers.clear();
  secrets.clear();
  texts.clear();
  return leaks;
}

export function describeLeaks(leaks: readonly Leak[]): string {
  return leaks
    .slice(0, 20)
    .map((leak) => `${leak.log}:${leak.line}: ${leak.what}\n    ${leak.text.slice(0, 400)}`)
    .join('\n');
}
