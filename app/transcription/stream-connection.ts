/**
 * How the service opens a websocket to a transcription server: the handshake
 * headers (User-Agent always; STREAM_TOKEN as a Bearer token; STREAM_EXTRA_HEADERS,
 * whose Authorization wins), the subprotocol, TLS material, deflate and the
 * heartbeat. The names follow FreeSWITCH's mod_audio_stream where it has one
 * (STREAM_EXTRA_HEADERS, STREAM_HEART_BEAT, STREAM_TLS_*); see
 * docs/stream-options.md. TLS files are read once, when the service starts.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { Config } from '../config/keys.js';

export const USER_AGENT = 'asterisk-transcription-proxy/0.1';

export interface StreamConnection {
  token?: string | undefined;
  extraHeaders?: Readonly<Record<string, string>>;
  subprotocols?: readonly string[];
  /** PEM contents; absent: Node's trusted CAs, no client certificate. */
  ca?: Buffer | undefined;
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  skipHostnameCheck?: boolean;
  /** Seconds between pings; 0 or absent: none. */
  heartbeatSeconds?: number;
  deflate?: boolean;
}

/** The STREAM_* settings for connections to STREAM_URL. */
export function streamConnectionFromConfig(config: Config): StreamConnection {
  const read = (path: string | undefined) => (path === undefined ? undefined : readFileSync(path));
  return {
    token: config.STREAM_TOKEN,
    extraHeaders: config.STREAM_EXTRA_HEADERS,
    subprotocols: config.STREAM_SUBPROTOCOL,
    ca: read(config.STREAM_TLS_CA_FILE === 'SYSTEM' ? undefined : config.STREAM_TLS_CA_FILE),
    cert: read(config.STREAM_TLS_CERT_FILE),
    key: read(config.STREAM_TLS_KEY_FILE),
    skipHostnameCheck: config.STREAM_TLS_DISABLE_HOSTNAME_VALIDATION,
    heartbeatSeconds: config.STREAM_HEART_BEAT,
    deflate: config.STREAM_MESSAGE_DEFLATE,
  };
}

/** The handshake headers: User-Agent, then the token, then the extra headers (an Authorization there replaces the token's). */
export function handshakeHeaders(connection: StreamConnection): Record<string, string> {
  const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
  if (connection.token) headers.Authorization = `Bearer ${connection.token}`;
  for (const [name, value] of Object.entries(connection.extraHeaders ?? {})) {
    for (const existing of Object.keys(headers)) {
      if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
    }
    headers[name] = value;
  }
  return headers;
}

/** A new client websocket with every option of `connection`. */
export function openWebsocket(url: URL, connection: StreamConnection, handshakeTimeoutMs = 5000): WebSocket {
  return new WebSocket(url, connection.subprotocols?.length ? [...connection.subprotocols] : undefined, {
    headers: handshakeHeaders(connection),
    perMessageDeflate: connection.deflate === true,
    handshakeTimeout: handshakeTimeoutMs,
    ...(connection.ca && { ca: connection.ca }),
    ...(connection.cert && { cert: connection.cert }),
    ...(connection.key && { key: connection.key }),
    // The chain is still verified; only the name in the certificate is not compared.
    ...(connection.skipHostnameCheck && { checkServerIdentity: () => undefined }),
  });
}
