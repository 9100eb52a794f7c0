/**
 * The one place that decides what may be put into an Asterisk dial string or a
 * SIP header. Everything dialled (numbers from the caller, mapped numbers,
 * destination domains) passes through here first: a value that could inject
 * into a dial string (`&` adds a second destination, `/` and `,` split
 * arguments, `@` retargets the URI) or into a SIP message (CR/LF, spaces,
 * control characters) is refused with a reason instead of being "cleaned".
 */

export type Verdict = { ok: true } | { ok: false; reason: string };

const MAX_NUMBER_LENGTH = 64;
const MAX_HOST_LENGTH = 253;

// The user part of a SIP URI as we dial it: digits, letters (some carriers and
// the seed proxy's examples use UUIDs), and the few marks phone numbers use.
const NUMBER_PATTERN = /^[A-Za-z0-9+*._~-]+$/;
// Labels may hold `_` too: DNS allows it (SRV names), and the seed's sample config has SIPTRUNK_IP.
const HOSTNAME_PATTERN =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$/;
const IPV6_PATTERN = /^\[[0-9A-Fa-f:.]+\]$/;

/** A dialled number or mapped destination number (the user part of the URI). */
export function checkNumber(value: string): Verdict {
  if (value.length === 0) return { ok: false, reason: 'empty' };
  if (value.length > MAX_NUMBER_LENGTH) return { ok: false, reason: `longer than ${MAX_NUMBER_LENGTH} characters` };
  if (!NUMBER_PATTERN.test(value)) return { ok: false, reason: 'contains characters not allowed in a dialled number' };
  return { ok: true };
}

/** A SIP domain as `host` or `host:port` (host: name, IPv4, or [IPv6]). */
export function checkDomain(value: string): Verdict {
  if (value.length === 0) return { ok: false, reason: 'empty' };
  if (value.length > MAX_HOST_LENGTH + 6) return { ok: false, reason: 'too long' };
  const match = /^(\[[^\]]*\]|[^:]+)(?::(\d{1,5}))?$/.exec(value);
  if (!match) return { ok: false, reason: 'not host or host:port' };
  const host = match[1] ?? '';
  const port = match[2];
  if (!HOSTNAME_PATTERN.test(host) && !IPV6_PATTERN.test(host)) return { ok: false, reason: 'not a valid host name or address' };
  if (port !== undefined) {
    const portNumber = Number(port);
    if (portNumber < 1 || portNumber > 65535) return { ok: false, reason: 'port out of range' };
  }
  return { ok: true };
}

/** A PJSIP endpoint name as configured in pjsip.conf. */
export function checkEndpointName(value: string): Verdict {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) return { ok: false, reason: 'not a valid endpoint name' };
  return { ok: true };
}

/** A caller ID number passed on to leg B; empty is allowed (anonymous). */
export function checkCallerId(value: string): Verdict {
  if (value.length === 0) return { ok: true };
  return checkNumber(value);
}

/** A SIP header name we put on leg B (a conservative subset of RFC 3261 tokens). */
export function checkHeaderName(value: string): Verdict {
  if (!/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(value)) return { ok: false, reason: 'not a header name (letters, digits, _ . -)' };
  return { ok: true };
}

const MAX_HEADER_VALUE_LENGTH = 256;

/** A SIP header value copied from leg A or made by us: printable, one line, bounded. */
export function checkHeaderValue(value: string): Verdict {
  if (value.length > MAX_HEADER_VALUE_LENGTH) return { ok: false, reason: `longer than ${MAX_HEADER_VALUE_LENGTH} characters` };
  // Anything outside printable ASCII and space/tab could end the header (CR, LF) or confuse parsers.
  if (/[^\x20-\x7e\t]/.test(value)) return { ok: false, reason: 'contains control or non-ASCII characters' };
  return { ok: true };
}
