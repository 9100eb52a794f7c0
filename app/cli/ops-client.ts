/**
 * The control commands' side of the operations endpoint (`calls`, `pause`,
 * `resume`, `stop`, `send-text`): where the running service listens (OPS_LISTEN
 * of the same configuration, or --ops URL), its token, and one request each.
 * A wildcard listen address is reached on loopback.
 */
import { AppError } from '../errors.js';
import { requestText, type HttpAnswer } from '../net/http-request.js';

export interface OpsTarget {
  baseUrl: URL;
  token?: string | undefined;
}

export function opsTarget(listen: { host: string; port: number } | undefined, token: string | undefined, override?: string): OpsTarget {
  if (override !== undefined) {
    let url: URL;
    try {
      url = new URL(override);
    } catch {
      throw new AppError('USAGE_INVALID', `--ops "${override}" is not a URL`);
    }
    if (url.protocol !== 'http:') throw new AppError('USAGE_INVALID', `--ops must be an http:// URL, not ${url.protocol}`);
    return { baseUrl: url, token };
  }
  if (listen === undefined) throw new AppError('USAGE_INVALID', 'the operations endpoint is off (OPS_LISTEN is empty): give --ops URL');
  const host = listen.host === '0.0.0.0' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return { baseUrl: new URL(`http://${host.includes(':') ? `[${host}]` : host}:${listen.port}`), token };
}

export interface OpsAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** One request to the endpoint; an unreachable service is an OPS_UNREACHABLE error. */
export async function opsRequest(target: OpsTarget, method: 'GET' | 'POST', path: string, body?: unknown): Promise<OpsAnswer> {
  let response: HttpAnswer;
  try {
    response = await requestText(new URL(path, target.baseUrl), {
      method,
      headers: {
        ...(target.token !== undefined && { Authorization: `Bearer ${target.token}` }),
        ...(body !== undefined && { 'Content-Type': 'application/json' }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      timeoutMs: 5000,
    });
  } catch (error) {
    throw new AppError(
      'OPS_UNREACHABLE',
      `the service's operations endpoint at ${target.baseUrl.origin} did not answer: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const text = response.text;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text.slice(0, 200) };
  }
  return { status: response.status, body: parsed };
}
