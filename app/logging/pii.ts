/**
 * What a log line may show of personal data and secrets, decided in one place
 * for every logger of the process (logger.ts applies it to every line):
 *
 * - phone numbers (under `numbers`, and under the keys that name a party:
 *   caller, callee, dialled, number, exten, requestUri) are masked, keeping
 *   their last few characters so an operator can still tell calls apart;
 * - DTMF digits, text from the other side and the call's own data (digit,
 *   digits, serverText, transcript, text, meta) are left out;
 * - secrets in URLs (query parameters such as api_key= or token=, user:password@)
 *   are redacted in every string, message texts included.
 *
 * LOG_PII=true shows numbers, digits and texts in clear (debugging); URL secrets
 * are redacted whatever it says. The first line of defence stays the code's:
 * numbers go under `numbers`, never into a message or reason text.
 */
import { pino } from 'pino';

/** Keys whose string values are phone numbers or SIP URIs carrying one. */
export const NUMBER_KEYS: ReadonlySet<string> = new Set(['caller', 'callee', 'dialled', 'number', 'exten', 'requestUri']);
/** The key under which a log line gathers a call's numbers: every string below it is masked. */
export const NUMBERS_KEY = 'numbers';
/** Keys whose values are what a party typed or said, or what the transcription server sent back. */
export const HIDDEN_KEYS: ReadonlySet<string> = new Set(['digit', 'digits', 'serverText', 'transcript', 'text', 'meta']);

export const HIDDEN = '[hidden]';
const REDACTED = '[redacted]';

/** How many trailing characters of a number of this length stay visible. */
function visibleTail(length: number): number {
  if (length <= 2) return 0;
  if (length <= 4) return 2;
  if (length <= 7) return 3;
  return 4;
}

/** `4567` → `**67`, `3349301234567` → `*********4567`; the length stays, the rest is starred. */
export function maskNumber(value: string): string {
  const keep = visibleTail(value.length);
  return '*'.repeat(value.length - keep) + value.slice(value.length - keep);
}

/** A number, or a SIP URI whose user part is one: `sip:4567@pbx:5060` → `sip:**67@pbx:5060`. */
export function maskNumberish(value: string): string {
  const uri = /^(<?sips?:)([^@;>]*)(@.*)$/i.exec(value);
  if (uri) return `${uri[1]}${maskNumber(uri[2] ?? '')}${uri[3]}`;
  return maskNumber(value);
}

// Query parameters that carry credentials (ARI's api_key=user:password, tokens, signatures).
const SECRET_PARAMETER =
  /([?&;](?:api[_-]?key|access[_-]?token|token|jwt|auth|authorization|key|secret|password|passwd|pwd|sig|signature)=)[^&#\s"'<>]*/gi;
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s@"'<>]+@/gi;

/** Redacts credentials carried in URLs anywhere in `text`. */
export function redactUrlSecrets(text: string): string {
  if (!text.includes('=') && !text.includes('@')) return text;
  return text.replace(SECRET_PARAMETER, `$1${REDACTED}`).replace(URL_USERINFO, `$1${REDACTED}@`);
}

export interface PiiPolicy {
  /** LOG_PII: numbers, digits and texts in clear. */
  showPii: boolean;
}

const MAX_DEPTH = 8;

/** A log line's fields as they may be written: a copy, never the caller's objects changed. */
export function sanitizeFields(fields: Record<string, unknown>, policy: PiiPolicy): Record<string, unknown> {
  return sanitizeObject(fields, policy, false, 0);
}

function sanitizeObject(object: object, policy: PiiPolicy, inNumbers: boolean, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object)) out[key] = sanitizeValue(key, value, policy, inNumbers, depth + 1);
  return out;
}

function sanitizeValue(key: string, value: unknown, policy: PiiPolicy, inNumbers: boolean, depth: number): unknown {
  if (!policy.showPii && HIDDEN_KEYS.has(key) && value !== undefined && value !== null) return HIDDEN;
  const numbers = inNumbers || (!policy.showPii && (key === NUMBERS_KEY || NUMBER_KEYS.has(key)));
  if (typeof value === 'string') return redactUrlSecrets(numbers && value !== '' ? maskNumberish(value) : value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[too deep]';
  if (value instanceof Error) return sanitizeObject(pino.stdSerializers.err(value), policy, numbers, depth);
  if (Array.isArray(value)) return value.map((item: unknown) => sanitizeValue(key, item, policy, numbers, depth + 1));
  if (value instanceof URL) return redactUrlSecrets(value.href);
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (value instanceof Map) return sanitizeObject(Object.fromEntries(value), policy, numbers, depth);
  if (value instanceof RegExp) return value.source;
  return sanitizeObject(value, policy, numbers, depth);
}

/** LOG_PII from the environment, for commands that read no configuration (`receive`). */
export function piiFromEnvironment(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['yes', 'true', '1', 'on'].includes((env.LOG_PII ?? '').trim().toLowerCase());
}
