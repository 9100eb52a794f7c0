/**
 * A relay between the service and the test's transcription server that plays
 * the network and the server misbehaving: it cuts connections (an outage),
 * refuses new ones, stops reading (a server that fell behind), or black-holes
 * open connections (a NAT that forgot them). From the service to the server
 * it forwards whole websocket frames only, after the HTTP handshake, so a cut
 * never leaves half a frame at the server: what the server got, it got whole,
 * and what it did not get, the service must still have.
 *
 * A cut happens right after the relay has forwarded a frame (or after 100 ms
 * on an idle connection): between two 20 ms frames, with nothing of the
 * service's on the wire. A frame written at the very instant a connection
 * dies is lost whatever the service does (websocket has no acknowledgement);
 * the cut avoids that instant, so the test sees exactly what the service kept.
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface WebsocketRelay {
  /** ws://127.0.0.1:PORT, for STREAM_URL. */
  url: string;
  /** Connections accepted and relayed so far. */
  connections: number;
  /** Relayed connections open now. */
  readonly open: number;
  /** Ends every open connection: the server side gets a FIN after the last whole frame, the service side a reset. */
  cut(): void;
  /** While true, new connections are reset as soon as they are accepted. */
  refuse(refusing: boolean): void;
  /** While true, nothing the service sends is read (existing and new connections): a server that stopped reading. */
  stopReading(stopped: boolean): void;
  /** Open connections forward nothing any more, either way, and are never closed: a black hole. */
  blackhole(): void;
  close(): Promise<void>;
}

/** Splits the bytes a websocket client sends into its handshake and then whole frames. */
export class ClientFrames {
  #carry: Buffer = Buffer.alloc(0);
  #handshakeDone = false;

  /** The complete units in what has arrived so far (the handshake request, then each whole frame). */
  push(chunk: Buffer): Buffer[] {
    this.#carry = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk]);
    const units: Buffer[] = [];
    for (;;) {
      const size = this.#handshakeDone ? frameSize(this.#carry) : handshakeSize(this.#carry);
      if (size === undefined || size > this.#carry.length) return units;
      units.push(this.#carry.subarray(0, size));
      this.#carry = this.#carry.subarray(size);
      this.#handshakeDone = true;
    }
  }
}

function handshakeSize(bytes: Buffer): number | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  return end < 0 ? undefined : end + 4;
}

/** The size of the frame at the start of `bytes` (header, mask and payload), once its header is complete. */
function frameSize(bytes: Buffer): number | undefined {
  if (bytes.length < 2) return undefined;
  const masked = (bytes[1]! & 0x80) !== 0;
  const short = bytes[1]! & 0x7f;
  let header = 2;
  let length = short;
  if (short === 126) {
    if (bytes.length < 4) return undefined;
    length = bytes.readUInt16BE(2);
    header = 4;
  } else if (short === 127) {
    if (bytes.length < 10) return undefined;
    length = Number(bytes.readBigUInt64BE(2));
    header = 10;
  }
  return header + (masked ? 4 : 0) + length;
}

export async function startWebsocketRelay(target: { host: string; port: number }): Promise<WebsocketRelay> {
  const live = new Set<Socket>();
  interface Pair {
    client: Socket;
    upstream: Socket;
    cut: boolean;
    cutPending: boolean;
  }
  const pairs = new Set<Pair>();
  const cutNow = (pair: Pair) => {
    if (pair.cut) return;
    pair.cut = true;
    pair.client.removeAllListeners('data');
    pair.upstream.unpipe(pair.client);
    pair.upstream.end();
    pair.client.resetAndDestroy();
  };
  let refusing = false;
  let reading = true;
  const server = createServer((client) => {
    if (refusing) {
      client.resetAndDestroy();
      return;
    }
    relay.connections++;
    const upstream = connect(target.port, target.host);
    const pair: Pair = { client, upstream, cut: false, cutPending: false };
    pairs.add(pair);
    for (const socket of [client, upstream]) {
      live.add(socket);
      socket.on('close', () => live.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.once('close', () => {
      pairs.delete(pair);
      // After a cut the server side ends on its own, once it has read every whole frame.
      if (!pair.cut) upstream.destroy();
    });
    upstream.once('close', () => client.destroy());
    const frames = new ClientFrames();
    client.on('data', (chunk: Buffer) => {
      const units = frames.push(chunk);
      for (const unit of units) upstream.write(unit);
      if (pair.cutPending && units.length > 0) cutNow(pair);
    });
    upstream.pipe(client);
    if (!reading) client.pause();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const relay: WebsocketRelay = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: 0,
    get open() {
      return pairs.size;
    },
    cut() {
      for (const pair of pairs) {
        pair.cutPending = true;
        setTimeout(() => cutNow(pair), 100).unref();
      }
    },
    refuse(next) {
      refusing = next;
    },
    stopReading(stopped) {
      reading = !stopped;
      for (const { client } of pairs) {
        if (stopped) client.pause();
        else client.resume();
      }
    },
    blackhole() {
      for (const { client, upstream } of pairs) {
        client.removeAllListeners('data');
        client.pause();
        upstream.unpipe(client);
        upstream.pause();
      }
    },
    async close() {
      for (const socket of live) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return relay;
}
