/**
 * The operations endpoint on a real socket: the probes, the token (constant-time
 * compare, probes exempt), and a port another instance holds.
 */
import type * as Crypto from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { OpsServer, tokenMatches, type Readiness } from '../../app/ops/ops-server.js';

// Every comparison of a token must go through crypto's constant-time compare, with inputs of
// one length whatever the presented token's length (a plain === would tell a prefix by its timing).
const compared = vi.hoisted(() => [] as [number, number][]);
vi.mock('node:crypto', async (importOriginal) => {
  const crypto = await importOriginal<typeof Crypto>();
  return {
    ...crypto,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      compared.push([a.byteLength, b.byteLength]);
      return crypto.timingSafeEqual(a, b);
    },
  };
});

const logger = pino({ level: 'silent' });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function ops(options: { token?: string; readiness?: () => Readiness; port?: number } = {}) {
  const server = await OpsServer.listen({
    host: '127.0.0.1',
    port: options.port ?? 0,
    token: options.token,
    readiness: options.readiness ?? (() => ({ ready: true })),
    logger,
  });
  cleanups.push(() => server.close());
  return server;
}

const get = async (port: number, path: string, headers: Record<string, string> = {}) => {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

describe('ops endpoint', () => {
  it('answers /health while alive and /ready with 503 and the reason when not ready', async () => {
    let readiness: Readiness = { ready: false, reason: 'draining' };
    const server = await ops({ readiness: () => readiness });
    expect(await get(server.port!, '/health')).toEqual({ status: 200, body: { status: 'ok' } });
    expect(await get(server.port!, '/ready')).toEqual({ status: 503, body: { status: 'not ready', reason: 'draining' } });
    readiness = { ready: true };
    expect(await get(server.port!, '/ready')).toEqual({ status: 200, body: { status: 'ready' } });
    expect((await get(server.port!, '/nothing')).status).toBe(404);
  });

  it('with a token: refuses other requests without it or with a wrong one, leaves the probes open', async () => {
    const server = await ops({ token: 's3cret' });
    server.route('GET', '/calls', (_request, response) => {
      response.writeHead(200, { 'Content-Type': 'application/json' });
      response.end('[]');
    });
    expect((await get(server.port!, '/calls')).status).toBe(401);
    expect((await get(server.port!, '/calls', { Authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await get(server.port!, '/calls', { Authorization: 'Basic s3cret' })).status).toBe(401);
    expect((await get(server.port!, '/calls', { Authorization: 'Bearer s3cret' })).status).toBe(200);
    expect((await get(server.port!, '/ready')).status).toBe(200);
    expect((await get(server.port!, '/health')).status).toBe(200);
  });

  it('compares tokens whole: no prefix, no empty token', () => {
    expect(tokenMatches('Bearer abc', 'abc')).toBe(true);
    expect(tokenMatches('Bearer ab', 'abc')).toBe(false);
    expect(tokenMatches('Bearer abcd', 'abc')).toBe(false);
    expect(tokenMatches(undefined, 'abc')).toBe(false);
    expect(tokenMatches('Bearer ', '')).toBe(false);
  });

  it('compares in constant time: every token, of any length, through timingSafeEqual on equal-length digests', () => {
    compared.length = 0;
    const presented = ['Bearer s3cret', 'Bearer s', 'Bearer s3cret-and-more', 'Bearer x'.repeat(50), undefined, 'Basic s3cret'];
    for (const header of presented) tokenMatches(header, 's3cret');
    expect(compared).toHaveLength(presented.length);
    expect(new Set(compared.flat())).toEqual(new Set([32]));
  });

  it('does not fail when another process holds the port; it listens once the port is free', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    const server = await ops({ port });
    expect(server.port).toBeUndefined();
    await new Promise<void>((resolve) => holder.close(() => resolve()));
    await expect.poll(() => server.port, { timeout: 5000 }).toBe(port);
    expect((await get(port, '/health')).status).toBe(200);
  });
});
