/**
 * Live control of calls through the operations endpoint, and the metrics:
 *
 *   GET  /metrics                  Prometheus text format
 *   GET  /calls                    the calls in progress (ids, legs, labels, state, streams; no phone numbers)
 *   POST /calls/CALL_ID/pause      stop sending the call's audio (silence instead) until resumed
 *   POST /calls/CALL_ID/resume
 *   POST /calls/CALL_ID/stop       stop transcribing the call for good; the call goes on
 *   POST /calls/CALL_ID/text       {"text":"..."} down the call's streams, like mod_audio_stream's send_text
 *
 * Answers are JSON. 404: no such call; 400: a bad call id or text; 409: the call has no
 * stream that could carry the text; 413: a body over 8 KiB. The call id is checked before it
 * is used, and the text like every value that crosses a boundary.
 */
import type { IncomingMessage } from 'node:http';
import type { Registry } from 'prom-client';
import type { StasisApp } from '../calls/stasis-app.js';
import { sendJson, type OpsServer } from './ops-server.js';

const CALL_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MAX_BODY_BYTES = 8192;
export const MAX_TEXT_CHARS = 4096;
// Text on the wire as a JSON string: anything printable, tabs and line breaks; no other control characters.
// eslint-disable-next-line no-control-regex
const BAD_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

class BodyTooLarge extends Error {}

/** The body, up to MAX_BODY_BYTES; a longer one is read to its end (bounded by the server's request timeout) and refused. */
function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on('end', () => (size > MAX_BODY_BYTES ? reject(new BodyTooLarge()) : resolve(Buffer.concat(chunks).toString('utf8'))));
    request.on('error', reject);
  });
}

/** The text of a /text request: a JSON object with a string `text`, or plain text. */
export function parseText(body: string, contentType: string | undefined): { ok: true; text: string } | { ok: false; why: string } {
  let text = body;
  if ((contentType ?? '').toLowerCase().startsWith('application/json')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return { ok: false, why: 'the body is not JSON' };
    }
    const value = (parsed as { text?: unknown } | null)?.text;
    if (typeof value !== 'string') return { ok: false, why: 'the body has no string "text"' };
    text = value;
  }
  if (text.length === 0) return { ok: false, why: 'the text is empty' };
  if (text.length > MAX_TEXT_CHARS) return { ok: false, why: `the text is longer than ${MAX_TEXT_CHARS} characters` };
  if (BAD_TEXT.test(text)) return { ok: false, why: 'the text contains control characters' };
  return { ok: true, text };
}

export function addOperationsRoutes(ops: OpsServer, app: StasisApp, registry: Registry): void {
  ops.route('GET', '/metrics', async (_request, response) => {
    const body = await registry.metrics();
    response.writeHead(200, { 'Content-Type': registry.contentType, 'Cache-Control': 'no-store' });
    response.end(body);
  });
  ops.route('GET', '/calls', (_request, response) => {
    sendJson(response, 200, { calls: app.calls.filter((call) => !call.isClosed).map((call) => call.describe()) });
  });
  ops.route('POST', '/calls/*', async (request, response, url) => {
    const [, , callId = '', action = '', ...rest] = url.pathname.split('/');
    if (!CALL_ID.test(callId) || rest.length > 0)
      return sendJson(response, 400, { error: 'expected /calls/CALL_ID/ACTION with a call id as GET /calls lists it' });
    const call = app.findCall(callId);
    if (call === undefined) return sendJson(response, 404, { error: 'no such call in progress' });
    switch (action) {
      case 'pause':
        call.pause('api');
        return sendJson(response, 200, { callId, paused: true });
      case 'resume':
        call.resume('api');
        return sendJson(response, 200, { callId, paused: false });
      case 'stop':
        await call.stopTranscription();
        return sendJson(response, 200, { callId, transcribing: false });
      case 'text': {
        let body: string;
        try {
          body = await readBody(request);
        } catch (error) {
          if (error instanceof BodyTooLarge) return sendJson(response, 413, { error: `the body is larger than ${MAX_BODY_BYTES} bytes` });
          throw error;
        }
        const parsed = parseText(body, request.headers['content-type']);
        if (!parsed.ok) return sendJson(response, 400, { error: parsed.why });
        if (!call.sendText(parsed.text)) return sendJson(response, 409, { error: 'the call has no stream that can carry text now' });
        return sendJson(response, 200, { callId, sent: true });
      }
      default:
        return sendJson(response, 404, { error: `no action "${action.slice(0, 32)}": pause, resume, stop or text` });
    }
  });
}
