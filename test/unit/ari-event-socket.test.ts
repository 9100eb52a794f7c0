/**
 * The supervised ARI event websocket against a local websocket server that
 * plays Asterisk's part: one connection at a time whatever fails, backoff
 * with jitter, a half-open connection found by its unanswered ping, and
 * ApplicationReplaced ending it for good.
 */
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { AriEventSocket, parseAriMessage, reconnectDelayMs } from '../../app/ari/ari-event-socket.js';
import type { AriConnectionChange, AriEvent } from '../../app/ari/ari-port.js';

const logger = pino({ level: 'silent' });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fakeAsterisk(options: { autoPong?: boolean } = {}) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: options.autoPong ?? true });
  await new Promise((resolve) => server.once('listening', resolve));
  const sockets: WebSocket[] = [];
  const requests: { url: string; authorization: string | undefined }[] = [];
  server.on('connection', (socket, request) => {
    sockets.push(socket);
    requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
  });
  cleanups.push(
    () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(resolve);
      }),
  );
  const open = () => [...server.clients].filter((client) => client.readyState === client.OPEN).length;
  return { server, sockets, requests, open, url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`) };
}

function eventSocket(url: URL, overrides: Partial<ConstructorParameters<typeof AriEventSocket>[0]> = {}) {
  const socket = new AriEventSocket({
    url,
    username: 'user',
    password: 'p@ss',
    app: 'my-app',
    logger,
    initialDelayMs: 20,
    maxDelayMs: 100,
    ...overrides,
  });
  const changes: AriConnectionChange[] = [];
  const events: AriEvent[] = [];
  socket.onConnection((change) => changes.push(change));
  socket.onEvent((event) => events.push(event));
  cleanups.push(() => socket.close());
  return { socket, changes, events };
}

describe('reconnectDelayMs', () => {
  it('grows exponentially to the cap, with jitter between half and all of it', () => {
    expect(reconnectDelayMs(0, 250, 5000, () => 1)).toBe(250);
    expect(reconnectDelayMs(3, 250, 5000, () => 1)).toBe(2000);
    expect(reconnectDelayMs(50, 250, 5000, () => 1)).toBe(5000);
    expect(reconnectDelayMs(50, 250, 5000, () => 0)).toBe(2500);
  });
});

describe('parseAriMessage', () => {
  it('passes the events the service acts on, recognises ApplicationReplaced, drops the rest', () => {
    expect(parseAriMessage('{"type":"ApplicationReplaced","application":"x"}')).toEqual({ replaced: true });
    expect(parseAriMessage('{"type":"StasisStart","channel":{"id":"1.2"},"args":[]}')).toMatchObject({ event: { type: 'StasisStart' } });
    expect(parseAriMessage('{"type":"Dial","peer":{"id":"1.2"},"dialstatus":"ANSWER"}')).toMatchObject({ event: { type: 'Dial' } });
    expect(parseAriMessage('{"type":"StasisStart"}')).toBeUndefined();
    expect(parseAriMessage('{"type":"BridgeCreated","bridge":{}}')).toBeUndefined();
    expect(parseAriMessage('not json')).toBeUndefined();
    expect(parseAriMessage('null')).toBeUndefined();
  });
});

describe('AriEventSocket', () => {
  it('registers the app with the credentials in a header, never in the URL, and delivers events', async () => {
    const asterisk = await fakeAsterisk();
    const { socket, events } = eventSocket(asterisk.url);
    await socket.open();
    expect(asterisk.requests[0]!.url).toBe('/ari/events?app=my-app');
    expect(asterisk.requests[0]!.authorization).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
    asterisk.sockets[0]!.send(JSON.stringify({ type: 'StasisStart', channel: { id: '1.1' }, args: ['a=b'] }));
    await expect.poll(() => events.length).toBe(1);
  });

  it('reconnects after each loss, with one connection open at a time however often it drops', async () => {
    const asterisk = await fakeAsterisk();
    const { socket, changes } = eventSocket(asterisk.url);
    await socket.open();
    for (let drop = 1; drop <= 5; drop++) {
      asterisk.sockets.at(-1)!.terminate();
      await expect.poll(() => asterisk.sockets.length, { timeout: 5000 }).toBe(drop + 1);
      await expect.poll(() => socket.isUp).toBe(true);
    }
    expect(asterisk.open()).toBe(1);
    expect(changes.filter((c) => c.state === 'down')).toHaveLength(5);
    expect(changes.filter((c) => c.state === 'up' && c.reconnected)).toHaveLength(5);
  });

  it('keeps trying while the server refuses, and comes back when it listens again', async () => {
    const asterisk = await fakeAsterisk();
    const { socket } = eventSocket(asterisk.url);
    await socket.open();
    const port = asterisk.url.port;
    await new Promise((resolve) => {
      for (const client of asterisk.server.clients) client.terminate();
      asterisk.server.close(resolve);
    });
    await expect.poll(() => socket.isUp).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 400)); // several refused attempts
    const again = new WebSocketServer({ host: '127.0.0.1', port: Number(port) });
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const client of again.clients) client.terminate();
          again.close(resolve);
        }),
    );
    await expect.poll(() => socket.isUp, { timeout: 5000 }).toBe(true);
    expect(again.clients.size).toBe(1);
  });

  it('drops a connection whose pings go unanswered (half-open) within two intervals, and reconnects', async () => {
    const asterisk = await fakeAsterisk({ autoPong: false });
    const { socket, changes } = eventSocket(asterisk.url, { pingIntervalMs: 100 });
    await socket.open();
    const openedAt = Date.now();
    await expect.poll(() => changes.some((c) => c.state === 'down'), { timeout: 2000 }).toBe(true);
    expect(Date.now() - openedAt).toBeLessThan(400);
    await expect.poll(() => asterisk.sockets.length, { timeout: 2000 }).toBeGreaterThan(1);
  });

  it('stays connected while pings are answered', async () => {
    const asterisk = await fakeAsterisk();
    const { socket, changes } = eventSocket(asterisk.url, { pingIntervalMs: 50 });
    await socket.open();
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(changes).toEqual([{ state: 'up', reconnected: false }]);
    expect(asterisk.sockets).toHaveLength(1);
  });

  it('on ApplicationReplaced stops for good: no reconnection, no more events', async () => {
    const asterisk = await fakeAsterisk();
    const { socket, changes, events } = eventSocket(asterisk.url);
    await socket.open();
    asterisk.sockets[0]!.send(JSON.stringify({ type: 'ApplicationReplaced', application: 'my-app' }));
    await expect.poll(() => changes.at(-1)).toEqual({ state: 'replaced' });
    asterisk.sockets[0]!.send(JSON.stringify({ type: 'StasisStart', channel: { id: '1.1' }, args: [] }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(events).toEqual([]);
    expect(asterisk.sockets).toHaveLength(1);
    expect(socket.isReplaced).toBe(true);
  });

  it('close() ends it: no reconnection afterwards', async () => {
    const asterisk = await fakeAsterisk();
    const { socket } = eventSocket(asterisk.url);
    await socket.open();
    socket.close();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(asterisk.sockets).toHaveLength(1);
    expect(asterisk.open()).toBe(0);
  });
});
