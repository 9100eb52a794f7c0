/**
 * A plain TCP relay in front of a server (Asterisk's HTTP/ARI port), for tests
 * that take the network away from the service and give it back: cut() drops
 * every relayed connection, and while refusing, new connections are closed as
 * soon as they are accepted, the way an unreachable Asterisk looks.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpRelay {
  /** http://127.0.0.1:PORT: the relay's address, for ARI_URL. */
  url: URL;
  /** Connections accepted and relayed so far. */
  connections: number;
  /** Relayed connections open now whose first bytes from the client match (e.g. `GET /ari/events`). */
  openConnections(firstBytes: RegExp): number;
  /** Closes new connections at once while true. */
  refuse(refusing: boolean): void;
  /** Resets every connection relayed now. */
  cut(): void;
  close(): Promise<void>;
}

/**
 * Ties the two sockets of one relayed connection: both are tracked in `live` while
 * open, and when either fails or closes the other goes too. Piping is the caller's.
 */
export function tieSockets(a: Socket, b: Socket, live: Set<Socket>): void {
  for (const socket of [a, b]) {
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    socket.on('error', () => {
      a.destroy();
      b.destroy();
    });
  }
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  const firstChunks = new Map<Socket, string>();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    relay.connections++;
    const upstream = connect(target.port, target.host);
    tieSockets(client, upstream, sockets);
    client.once('data', (chunk: Buffer) => firstChunks.set(client, chunk.subarray(0, 200).toString('latin1')));
    client.once('close', () => firstChunks.delete(client));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const relay: TcpRelay = {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    connections: 0,
    openConnections(firstBytes) {
      return [...firstChunks].filter(([socket, chunk]) => !socket.destroyed && firstBytes.test(chunk)).length;
    },
    refuse(next) {
      refusing = next;
    },
    cut() {
      for (const socket of sockets) socket.resetAndDestroy();
    },
    async close() {
      relay.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}
