/**
 * What may go into the websocket handshake to the transcription server, as
 * HTTP allows it (RFC 9110: a field name is a token; a field value is visible
 * ASCII, spaces and tabs, no leading or trailing whitespace; RFC 6750: a
 * Bearer token is visible ASCII without spaces; RFC 6455: subprotocols are
 * tokens, each once). Checked when the configuration is read, so a value that
 * Node's HTTP client would refuse (`STREAM_TOKEN=abc€`) stops `serve` at start
 * with the key named, instead of throwing at the first answered call.
 * Non-ASCII (obs-text) is refused although HTTP tolerates it: servers disagree
 * on how to read it. Pure checks; each returns what is wrong, or undefined.
 */

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const VISIBLE = /^[\x21-\x7e]+$/;
const FIELD_VALUE = /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/;

/** Shows a refused value without the refused characters' bytes reaching a terminal raw. */
function shown(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

export function httpHeaderNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > 64 || !TOKEN.test(name))
    return `${shown(name)} is not a header name (letters, digits and !#$%&'*+.^_\`|~-, at most 64)`;
  return undefined;
}

export function httpHeaderValueProblem(name: string, value: string): string | undefined {
  if (value.length > 4096) return `the value of ${name} is longer than 4096 characters`;
  if (value !== '' && !FIELD_VALUE.test(value)) {
    return `the value of ${name} must be printable ASCII on one line, without leading or trailing spaces (${shown(value)} is not)`;
  }
  return undefined;
}

/** A Bearer token (RFC 6750 allows less; visible ASCII is what servers take in practice, JWTs included). */
export function bearerTokenProblem(token: string): string | undefined {
  if (!VISIBLE.test(token) || token.length > 8192) return 'a Bearer token must be printable ASCII without spaces (at most 8192 characters)';
  return undefined;
}

export function subprotocolsProblem(names: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const name of names) {
    if (!TOKEN.test(name) || name.length > 64)
      return `${shown(name)} is not a subprotocol name (a token: letters, digits and !#$%&'*+.^_\`|~-)`;
    if (seen.has(name)) return `${shown(name)} is named twice`;
    seen.add(name);
  }
  return undefined;
}
