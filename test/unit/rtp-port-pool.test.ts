import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { RtpPortPool, type BoundSocket } from '../../app/media/rtp-port-pool.js';

const HOST = '127.0.0.1';

const openSockets: Socket[] = [];

afterEach(async () => {
  await Promise.all(openSockets.splice(0).map(closeQuietly));
});

function closeQuietly(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

function bind(port: number): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, HOST, () => resolve(socket));
  });
}

/**
 * The first port of `count` consecutive UDP ports on 127.0.0.1 that were all
 * free a moment ago: the first comes from the kernel (port 0), the rest are
 * checked by binding them. Tried a few times, since a neighbour may be taken.
 */
async function freeRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = await bind(0);
    if (probe === undefined) continue;
    const start = probe.address().port;
    const held: Socket[] = [probe];
    let ok = start + count - 1 <= 65535;
    for (let port = start + 1; ok && port < start + count; port++) {
      const socket = await bind(port);
      if (socket === undefined) ok = false;
      else held.push(socket);
    }
    await Promise.all(held.map(closeQuietly));
    if (ok) return start;
  }
  throw new Error(`no ${count} consecutive free UDP ports found`);
}

async function acquire(pool: RtpPortPool): Promise<BoundSocket> {
  const bound = await pool.acquire();
  openSockets.push(bound.socket);
  return bound;
}

async function acquireCode(pool: RtpPortPool): Promise<unknown> {
  try {
    const bound = await acquire(pool);
    return `acquired port ${bound.port}`;
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
}

/** Closes the socket and gives its port back to the pool. */
async function giveBack(pool: RtpPortPool, bound: BoundSocket): Promise<void> {
  await closeQuietly(bound.socket);
  pool.release(bound.port);
}

describe('RtpPortPool', () => {
  it('hands out distinct ports within its range, each with a socket bound to it', async () => {
    const start = await freeRange(4);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 3 });
    const acquired = [await acquire(pool), await acquire(pool), await acquire(pool)];
    const ports = acquired.map((bound) => bound.port);
    expect(new Set(ports).size).toBe(3);
    for (const bound of acquired) {
      expect(bound.port).toBeGreaterThanOrEqual(start);
      expect(bound.port).toBeLessThanOrEqual(start + 3);
      expect(bound.socket.address()).toMatchObject({ address: HOST, port: bound.port });
    }
    expect(pool.inUseCount).toBe(3);
  });

  it('goes round-robin over the range instead of reusing the lowest free port', async () => {
    const start = await freeRange(3);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 2, quarantineMs: 0 });
    const first = await acquire(pool);
    expect(first.port).toBe(start);
    await giveBack(pool, first);
    const second = await acquire(pool);
    expect(second.port).toBe(start + 1);
    const third = await acquire(pool);
    expect(third.port).toBe(start + 2);
    // wraps around to the start, which is free again
    const fourth = await acquire(pool);
    expect(fourth.port).toBe(start);
    expect(pool.inUseCount).toBe(3);
  });

  it('keeps a released port out of use during its quarantine and hands it out after it', async () => {
    const quarantineMs = 150;
    const start = await freeRange(2);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 1, quarantineMs });
    const a = await acquire(pool);
    const b = await acquire(pool);
    expect([a.port, b.port]).toEqual([start, start + 1]);

    await closeQuietly(a.socket);
    const releasedAt = Date.now();
    pool.release(a.port);
    expect(pool.inUseCount).toBe(1);
    // the only port not in use is resting: nothing to hand out
    expect(await acquireCode(pool)).toBe('MEDIA_PORTS_EXHAUSTED');

    // no event marks the end of a quarantine: poll, bounded
    let again: BoundSocket | undefined;
    const deadline = releasedAt + quarantineMs + 2000;
    while (again === undefined && Date.now() < deadline) {
      try {
        again = await acquire(pool);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    expect(again?.port).toBe(a.port);
    expect(Date.now() - releasedAt).toBeGreaterThanOrEqual(quarantineMs);
    expect(pool.inUseCount).toBe(2);
  });

  it('skips a port that another socket holds', async () => {
    const start = await freeRange(3);
    const squatter = await bind(start + 1);
    expect(squatter).toBeDefined();
    openSockets.push(squatter!);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 2 });
    expect((await acquire(pool)).port).toBe(start);
    expect((await acquire(pool)).port).toBe(start + 2);
    expect(await acquireCode(pool)).toBe('MEDIA_PORTS_EXHAUSTED');
    expect(pool.inUseCount).toBe(2);
  });

  it('throws MEDIA_PORTS_EXHAUSTED, marked retryable, when every port is in use', async () => {
    const start = await freeRange(2);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 1 });
    await acquire(pool);
    await acquire(pool);
    const error = await pool.acquire().then(
      () => undefined,
      (e: unknown) => e as { code?: unknown; retryable?: unknown },
    );
    expect(error?.code).toBe('MEDIA_PORTS_EXHAUSTED');
    expect(error?.retryable).toBe(true);
    expect(pool.inUseCount).toBe(2);
  });

  it('ignores a release of a port that is not in use', async () => {
    const start = await freeRange(2);
    const pool = new RtpPortPool({ bindHost: HOST, portStart: start, portEnd: start + 1, quarantineMs: 60_000 });
    const a = await acquire(pool);
    await giveBack(pool, a);
    pool.release(a.port); // twice
    pool.release(start + 1); // never acquired: must not be quarantined
    expect(pool.inUseCount).toBe(0);
    expect((await acquire(pool)).port).toBe(start + 1);
  });
});
