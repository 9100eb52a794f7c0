/**
 * A transcription websocket server as strict as one written for
 * mod_audio_stream's mono stream: the first frame must be TEXT (the metadata),
 * then BINARY audio only, each a whole number of 16-bit samples; a final TEXT
 * frame (the stop message) is allowed only as the last frame before close.
 * It records every stream and every violation, so tests can assert on both.
 */
import type { AddressInfo } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import { WebSocketServer } from 'ws';

export interface ReceivedStream {
  headers: IncomingHttpHeaders;
  metadata: Record<string, unknown> | undefined;
  frames: Buffer[];
  frameArrivalMs: number[];
  stop: Record<string, unknown> | undefined;
  closeCode: number | undefined;
  violations: string[];
  closed: Promise<void>;
}

export interface StrictStreamServer {
  url: string;
  streams: ReceivedStream[];
  /** Resolves once `count` streams have connected and closed. */
  waitForClosedStreams(count: number, timeoutMs?: number): Promise<ReceivedStream[]>;
  close(): Promise<void>;
}

export async function startStrictStreamServer(): Promise<StrictStreamServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  const streams: ReceivedStream[] = [];
  const waiters: (() => void)[] = [];

  server.on('connection', (socket, request) => {
    let resolveClosed!: () => void;
    const stream: ReceivedStream = {
      headers: request.headers,
      metadata: undefined,
      frames: [],
      frameArrivalMs: [],
      stop: undefined,
      closeCode: undefined,
      violations: [],
      closed: new Promise((resolve) => { resolveClosed = resolve; }),
    };
    streams.push(stream);
    socket.on('message', (data, isBinary) => {
      const buffer = data as Buffer;
      if (stream.stop !== undefined) stream.violations.push('frame after the stop message');
      if (!isBinary) {
        let parsed: Record<string, unknown> | undefined;
        try {
          parsed = JSON.parse(buffer.toString('utf8')) as Record<string, unknown>;
        } catch {
          stream.violations.push('text frame that is not JSON');
        }
        if (stream.metadata === undefined) {
          if (stream.frames.length > 0) stream.violations.push('metadata after audio');
          stream.metadata = parsed;
        } else {
          stream.stop = parsed;
        }
        return;
      }
      if (stream.metadata === undefined) stream.violations.push('audio before metadata');
      if (buffer.length % 2 !== 0) stream.violations.push(`odd-sized audio frame of ${buffer.length} bytes`);
      stream.frames.push(Buffer.from(buffer));
      stream.frameArrivalMs.push(performance.now());
    });
    socket.on('close', (code) => {
      stream.closeCode = code;
      resolveClosed();
      for (const waiter of waiters.splice(0)) waiter();
    });
  });

  async function waitForClosedStreams(count: number, timeoutMs = 30_000): Promise<ReceivedStream[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const closed = streams.filter((s) => s.closeCode !== undefined);
      if (closed.length >= count) return closed;
      if (Date.now() > deadline) throw new Error(`only ${closed.length} of ${count} streams closed within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    streams,
    waitForClosedStreams,
    close: () => new Promise((resolve) => {
      for (const client of server.clients) client.terminate();
      server.close(() => resolve());
    }),
  };
}
