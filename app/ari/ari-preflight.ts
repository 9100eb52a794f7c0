/**
 * One plain HTTP request to ARI before the connection is handed to ari-client
 * (by `serve` and by `check`): it tells an unreachable server, refused
 * credentials and a missing ARI apart by their HTTP status, within a time limit.
 *
 * Why not just let ari-client fail: when its swagger document
 * (`/ari/api-docs/resources.json`) answers anything but 200, ari-client 2.2.0
 * rejects the connect promise *and* throws the status text from inside an
 * HTTP callback, an uncaught exception that kills the process (seen here with
 * a wrong password: `401 : undefined http://.../resources.json`). The request
 * below is the one ari-client makes first, so a failing status stops here.
 */
import { requestText, type HttpAnswer } from '../net/http-request.js';

export type AriPreflight = { ok: true } | { ok: false; kind: 'unreachable' | 'unauthorized' | 'not-ari'; reason: string; hint?: string };

export async function preflightAri(options: { url: URL; username: string; password: string; timeoutMs: number }): Promise<AriPreflight> {
  // ari-client builds its URLs from the origin alone; so do we.
  const target = new URL('/ari/api-docs/resources.json', options.url.origin);
  let response: HttpAnswer;
  try {
    response = await requestText(target, {
      headers: { Authorization: `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}` },
      timeoutMs: options.timeoutMs,
    });
  } catch (error) {
    return { ok: false, kind: 'unreachable', reason: `cannot reach ARI at ${options.url.origin}: ${(error as Error).message}` };
  }
  if (response.status >= 200 && response.status < 300) return { ok: true };
  if (response.status === 401) {
    return {
      ok: false,
      kind: 'unauthorized',
      reason: `ARI at ${options.url.origin} refused the credentials of ARI_USERNAME (${options.username})`,
      hint: 'check ARI_USERNAME and ARI_PASSWORD against ari.conf',
    };
  }
  return {
    ok: false,
    kind: 'not-ari',
    reason: `ARI at ${options.url.origin} answered HTTP ${response.status} for ${target.pathname}`,
    hint: 'is ARI enabled (http.conf enabled=yes, ari.conf enabled=yes) and res_ari loaded (load => res_ari.so)?',
  };
}
