/**
 * Opens one websocket connection to STREAM_URL exactly as a call's stream
 * would (same User-Agent, same Bearer token) and closes it again without
 * sending a single message, so a transcription server sees no stream, only a
 * connection that opened and closed. Always settles within `timeoutMs`.
 */
import WebSocket from 'ws';
import { USER_AGENT } from '../transcription/websocket-stream.js';
import type { CheckResult } from './report.js';

export interface StreamProbeOptions {
  url: URL;
  token?: string | undefined;
  timeoutMs: number;
}

export function probeStream(options: StreamProbeOptions): Promise<CheckResult> {
  const { url, token, timeoutMs } = options;
  const target = url.href;
  const auth = token ? ' (with Authorization: Bearer STREAM_TOKEN)' : '';
  return new Promise((resolve) => {
    let opened = false;
    let settled = false;
    const finish = (result: CheckResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
    if (token) headers.Authorization = `Bearer ${token}`;
    const socket = new WebSocket(url, { headers, perMessageDeflate: false, handshakeTimeout: timeoutMs });

    const timer = setTimeout(() => {
      socket.terminate();
      finish(opened
        ? { name: 'stream', status: 'ok', summary: `${target} accepted a websocket connection${auth}; it did not answer the close within ${timeoutMs} ms, so it was dropped` }
        : { name: 'stream', status: 'fail', summary: `no websocket connection to ${target} within ${timeoutMs} ms` });
    }, timeoutMs);

    socket.on('open', () => {
      opened = true;
      socket.close(1000, 'transcription-proxy check');
    });
    socket.on('error', (error) => {
      const hint = /\b(401|403)\b/.test(error.message) ? '; check STREAM_TOKEN' : '';
      finish({ name: 'stream', status: 'fail', summary: `cannot open a websocket to ${target}: ${error.message}${hint}` });
    });
    socket.on('close', () => {
      finish(opened
        ? { name: 'stream', status: 'ok', summary: `${target} accepted a websocket connection${auth}; closed again, nothing sent` }
        : { name: 'stream', status: 'fail', summary: `${target} closed the connection before the websocket opened` });
    });
  });
}
