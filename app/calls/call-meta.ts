/**
 * The call's own data that the stream metadata carries as `meta`, for joining
 * the transcript to a CRM record: the values of PASS_HEADERS on leg A's INVITE,
 * and what the dialplan put in the hash TRANSCRIPTION_META before Stasis():
 *
 *   same => n,Set(HASH(TRANSCRIPTION_META,customer)=${CALLERID(num)})
 *   same => n,Set(HASH(TRANSCRIPTION_META,campaign)=spring)
 *
 * ARI cannot list a channel's variables, but a hash's keys it can read
 * (HASHKEYS), so a hash is what lets the dialplan name its own keys. Every key
 * and value is checked here like anything else that crosses a boundary; what
 * fails is left out and reported (the key, never the value), and the call goes
 * on. Pure: the reads are the caller's.
 */

export const META_HASH = 'TRANSCRIPTION_META';
export const MAX_META_KEYS = 32;
export const MAX_META_VALUE_CHARS = 256;
export const MAX_META_TOTAL_CHARS = 2048;

const KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
// Printable text on one line: no control characters, no line or paragraph separators.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** The keys HASHKEYS(TRANSCRIPTION_META) lists that may be read (a key is spliced into a function call: it must be a plain name). */
export function metaKeys(hashKeys: string | undefined): { keys: string[]; refused: string[] } {
  const listed = (hashKeys ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== '');
  const keys = listed.filter((key) => KEY.test(key)).slice(0, MAX_META_KEYS);
  return { keys, refused: listed.filter((key) => !keys.includes(key)) };
}

export interface MetaCheck {
  meta: Record<string, string>;
  /** Keys left out, each with why (the value is never quoted: it may be personal data). */
  refused: { key: string; why: string }[];
}

/** The entries that may go into the metadata, in order, within the size bounds. */
export function checkMeta(entries: readonly (readonly [string, string | undefined])[]): MetaCheck {
  const meta: Record<string, string> = {};
  const refused: MetaCheck['refused'] = [];
  let total = 0;
  for (const [key, value] of entries) {
    if (value === undefined || value === '') continue;
    if (!KEY.test(key)) refused.push({ key: key.slice(0, 64), why: 'not a plain name' });
    else if (key in meta) refused.push({ key, why: 'given twice' });
    else if (Object.keys(meta).length >= MAX_META_KEYS) refused.push({ key, why: `more than ${MAX_META_KEYS} keys` });
    else if (value.length > MAX_META_VALUE_CHARS) refused.push({ key, why: `longer than ${MAX_META_VALUE_CHARS} characters` });
    else if (UNPRINTABLE.test(value)) refused.push({ key, why: 'contains control characters' });
    else if (total + key.length + value.length > MAX_META_TOTAL_CHARS)
      refused.push({ key, why: `the metadata would pass ${MAX_META_TOTAL_CHARS} characters` });
    else {
      meta[key] = value;
      total += key.length + value.length;
    }
  }
  return { meta, refused };
}
