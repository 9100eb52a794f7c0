/**
 * requestText (app/net/http-request.ts), the service's one way of making an
 * HTTP request: every answer resolves whatever its status, and every way of
 * getting none (refused, silent, aborted, too large) rejects within its limit.
 * And the reason it exists: making requests never loads Node's fetch (undici
 * and its WebAssembly parser, which stay resident: 4.5 MiB of the idle service).
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpTimeoutError, requestText } from '../../app/net/http-request.js';
import { closedTcpPort } from '../support/ports.js';

const servers: Server[] = [];
const sockets: Socket[] = [];

async function serve(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<URL> {
  const server = createServer(handler);
  server.on('connection', (socket) => sockets.push(socket));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return new URL(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
}

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

describe('requestText', () => {
  it('resolves with any status, its headers and the body; a POST sends its method, headers and body', async () => {
    const seen: { method?: string; type?: string; length?: string; body: string }[] = [];
    const url = await serve((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        seen.push({
          method: request.method,
          type: request.headers['content-type'],
          length: request.headers['content-length'],
          body: Buffer.concat(chunks).toString(),
        });
        response.writeHead(503, { 'Retry-After': '7', 'Content-Type': 'application/json' }).end('{"message":"busy ünïcode"}');
      });
    });
    const body = JSON.stringify({ sessions: [{ asyncMode: 'REAL-TIME' }], note: 'é' });
    const answer = await requestText(new URL('/asr/transcribe/async', url), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
      timeoutMs: 2000,
    });
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('7');
    expect(answer.text).toBe('{"message":"busy ünïcode"}');
    expect(seen).toEqual([{ method: 'POST', type: 'application/json', length: String(Buffer.byteLength(body)), body }]);
  });

  it('rejects with the socket error when nothing listens', async () => {
    const port = await closedTcpPort();
    await expect(requestText(new URL(`http://127.0.0.1:${port}/`), { timeoutMs: 2000 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('rejects with HttpTimeoutError when the server accepts but never answers, and closes the connection', async () => {
    let closed: Promise<unknown> | undefined;
    const url = await serve((request) => {
      closed = once(request.socket, 'close');
    });
    const error = await requestText(url, { timeoutMs: 150 }).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(HttpTimeoutError);
    expect((error as Error).message).toBe('no answer within 150 ms');
    await closed;
  });

  it('rejects when the signal aborts (the call ended), and closes the connection', async () => {
    const abort = new AbortController();
    let closed: Promise<unknown> | undefined;
    const url = await serve((request) => {
      closed = once(request.socket, 'close');
      abort.abort();
    });
    await expect(requestText(url, { timeoutMs: 5000, signal: abort.signal })).rejects.toThrow(/abort/i);
    await closed;
  });

  it('rejects an answer larger than maxBytes instead of holding it', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(200);
      response.write(Buffer.alloc(40_000, 'a'));
      response.end(Buffer.alloc(40_000, 'b'));
    });
    await expect(requestText(url, { timeoutMs: 2000, maxBytes: 64 * 1024 })).rejects.toThrow(/larger than 65536 bytes/);
    expect((await requestText(url, { timeoutMs: 2000 })).text).toHaveLength(80_000);
  });
});

it('never loads fetch (undici and its WebAssembly parser), as a request through fetch does', async () => {
  const url = await serve((_request, response) => response.end('ok'));
  const module = fileURLToPath(new URL('../../dist/app/net/http-request.js', import.meta.url));
  const undiciLoaded = async (request: string) => {
    const script = `
      const { requestText } = await import(${JSON.stringify(module)});
      const url = new URL(${JSON.stringify(url.href)});
      const text = ${request};
      if (text !== 'ok') throw new Error('answer: ' + text);
      console.log(process.moduleLoadList.some((name) => name.includes('undici')));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    return stdout.trim();
  };
  expect(await undiciLoaded('(await requestText(url, { timeoutMs: 2000 })).text')).toBe('false');
  // The check can tell: the same request through fetch loads it.
  expect(await undiciLoaded('await (await fetch(url)).text()')).toBe('true');
});
