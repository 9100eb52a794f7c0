/**
 * Opens one websocket connection to STREAM_URL exactly as a call's stream
 * would (same headers, subprotocol and TLS settings) and closes it again without
 * sending a single message, so a transcription server sees no stream, only a
 * connection that opened and closed. Always settles within `timeoutMs`.
 */
import { handshakeHeaders, openWebsocket, type StreamConnection } from '../transcription/stream-connection.js';
import type { CheckResult } from './report.js';

export interface StreamProbeOptions {
  url: URL;
  connection: StreamConnection;
  timeoutMs: number;
}

export function probeStream(options: StreamProbeOptions): Promise<CheckResult> {
  const { url, connection, timeoutMs } = options;
  const target = url.href;
  const fromToken =
    connection.token !== undefined &&
    handshakeHeaders({ token: connection.token }).Authorization === handshakeHeaders(connection).Authorization;
  const auth = fromToken ? ' (with Authorization: Bearer STREAM_TOKEN)' : '';
  return new Promise((resolve) => {
    let opened = false;
    let settled = false;
    const finish = (result: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const socket = openWebsocket(url, connection, timeoutMs);

    const timer = setTimeout(() => {
      socket.terminate();
      finish(
        opened
          ? {
              name: 'stream',
              status: 'ok',
              summary: `${target} accepted a websocket connection${auth}; it did not answer the close within ${timeoutMs} ms, so it was dropped`,
            }
          : { name: 'stream', status: 'fail', summary: `no websocket connection to ${target} within ${timeoutMs} ms` },
      );
    }, timeoutMs);

    socket.on('open', () => {
      opened = true;
      socket.close(1000, 'transcription-proxy check');
    });
    socket.on('error', (error) => {
      const hint = /\b(401|403)\b/.test(error.message) ? '; check STREAM_TOKEN and STREAM_EXTRA_HEADERS' : '';
      finish({ name: 'stream', status: 'fail', summary: `cannot open a websocket to ${target}: ${error.message}${hint}` });
    });
    socket.on('close', () => {
      finish(
        opened
          ? { name: 'stream', status: 'ok', summary: `${target} accepted a websocket connection${auth}; closed again, nothing sent` }
          : { name: 'stream', status: 'fail', summary: `${target} closed the connection before the websocket opened` },
      );
    });
  });
}
