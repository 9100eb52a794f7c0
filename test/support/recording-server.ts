/**
 * What the test websocket servers (strict-stream-server.ts, twilio-stream-server.ts)
 * share: a server on 127.0.0.1 (or another local address) port 0 that records one stream per connection,
 * waiting until some of them have closed, and closing with clients still connected.
 */
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface StreamRecordingServer<T> {
  url: string;
  streams: T[];
  /** Resolves once `count` streams have connected and closed. */
  waitForClosedStreams(count: number, timeoutMs?: number): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * Listens on a free port of `host`; `record` turns each connection into a stream it keeps updating,
 * and calls `closed` when that connection ends.
 */
export async function startRecordingServer<T extends { closeCode: number | undefined }>(
  what: string,
  record: (socket: WebSocket, request: IncomingMessage, closed: () => void) => T,
  host = '127.0.0.1',
): Promise<StreamRecordingServer<T>> {
  const server = new WebSocketServer({ host, port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const streams: T[] = [];
  const waiter = closedStreamWaiter(streams, what);
  server.on('connection', (socket, request) => {
    streams.push(record(socket, request, waiter.notify));
  });
  return {
    url: `ws://${host}:${(server.address() as AddressInfo).port}`,
    streams,
    waitForClosedStreams: waiter.wait,
    close: () => closeServer(server),
  };
}

export interface ClosedStreamWaiter<T> {
  /** Call whenever a stream closes. */
  notify(): void;
  /** Resolves with the closed streams once there are at least `count`. */
  wait(count: number, timeoutMs?: number): Promise<T[]>;
}

export function closedStreamWaiter<T extends { closeCode: number | undefined }>(streams: T[], what: string): ClosedStreamWaiter<T> {
  const waiters: (() => void)[] = [];
  return {
    notify: () => {
      for (const waiter of waiters.splice(0)) waiter();
    },
    async wait(count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const closed = streams.filter((s) => s.closeCode !== undefined);
        if (closed.length >= count) return closed;
        if (Date.now() > deadline) throw new Error(`only ${closed.length} of ${count} ${what} closed within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

export function closeServer(server: WebSocketServer): Promise<void> {
  return new Promise((resolve) => {
    for (const client of server.clients) client.terminate();
    server.close(() => resolve());
  });
}
