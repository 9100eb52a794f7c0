/**
 * One HTTP(S) request with a time limit, its answer read as text: what the
 * service asks of ARI before connecting, of Voicegain's REST API per call, and
 * what the control commands and the health check ask of the operations
 * endpoint.
 *
 * Why not `fetch`: Node's fetch is undici, which parses HTTP with llhttp built
 * as WebAssembly. Its first use compiles that module and loads undici's
 * sources, and they stay: 18 MiB of resident memory in a bare node against 2
 * for node:http, whose parser is native; about 4.5 MiB of the idle service's
 * (docs/benchmarks.md, "Idle memory"), taken at the first ARI connect, or
 * mid-service at a first Voicegain call.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface HttpRequestOptions {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Ends the request early (the caller's call ended); the promise rejects with an AbortError. */
  signal?: AbortSignal;
  /** Answers longer than this are cut off with an error (default 1 MiB): nothing a server sends can fill the memory. */
  maxBytes?: number;
}

/** The error for an answer that did not come within `timeoutMs`. */
export class HttpTimeoutError extends Error {
  override readonly name = 'HttpTimeoutError';
}

const DEFAULT_MAX_BYTES = 1024 * 1024;

/**
 * Resolves with the answer's status, headers and body (UTF-8), whatever the
 * status; rejects when there is no answer: the host cannot be reached
 * (the socket's error, e.g. `connect ECONNREFUSED 127.0.0.1:8088`), no
 * complete answer within `timeoutMs` (HttpTimeoutError), `signal` aborted, or
 * an answer beyond `maxBytes`.
 */
export function requestText(url: URL, options: HttpRequestOptions): Promise<HttpAnswer> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const headers = {
      ...options.headers,
      ...(options.body !== undefined && { 'Content-Length': String(Buffer.byteLength(options.body)) }),
    };
    const request = send(url, { method: options.method ?? 'GET', headers, ...(options.signal && { signal: options.signal }) });
    const timer = setTimeout(() => request.destroy(new HttpTimeoutError(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      reject(error);
    };
    request.on('error', fail);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      let length = 0;
      response.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > maxBytes) {
          request.destroy(new Error(`the answer from ${url.origin} is larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', fail);
      response.on('end', () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    request.end(options.body);
  });
}
