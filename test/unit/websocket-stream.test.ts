import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ourStreamProtocol, startMessage, type StreamIdentity, type StreamItem } from '../../app/transcription/stream-messages.js';
import type { StreamConnection } from '../../app/transcription/stream-connection.js';
import { USER_AGENT, WebsocketStream, type WebsocketStreamOptions } from '../../app/transcription/websocket-stream.js';

const identity: StreamIdentity = {
  label: 'CALLER1',
  leg: 'A',
  callId: 'call-42',
  channelId: '1700000000.1',
  linkedId: '1700000000.1',
  sipCallId: 'abc@127.0.0.1',
  direction: 'inbound',
  caller: '1001',
  callee: '1002',
  node: 'test-node',
};
const start = startMessage(identity, 16000);
const silent = pino({ level: 'silent' });

interface Frame {
  binary: boolean;
  data: Buffer;
}

interface Connection {
  socket: WebSocket;
  headers: IncomingHttpHeaders;
  frames: Frame[];
  /** Resolves once `count` frames have arrived. */
  framesArrived(count: number): Promise<Frame[]>;
  /** Resolves with the close code once the connection has closed. */
  closed: Promise<number>;
}

interface RecordingServer {
  url: URL;
  port: number;
  connections: Connection[];
  /** Resolves with the `index`-th connection (0-based) once it exists. */
  connection(index: number): Promise<Connection>;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(): Promise<RecordingServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const connections: Connection[] = [];
  const connectionWaiters: (() => void)[] = [];

  server.on('connection', (socket, request) => {
    const frames: Frame[] = [];
    const frameWaiters: (() => void)[] = [];
    let resolveClosed!: (code: number) => void;
    const connection: Connection = {
      socket,
      headers: request.headers,
      frames,
      framesArrived: (count) =>
        new Promise((resolve) => {
          const check = (): void => {
            if (frames.length >= count) resolve(frames.slice(0, count));
            else frameWaiters.push(check);
          };
          check();
        }),
      closed: new Promise((resolve) => (resolveClosed = resolve)),
    };
    socket.on('message', (data, isBinary) => {
      frames.push({ binary: isBinary, data: Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]) });
      for (const waiter of frameWaiters.splice(0)) waiter();
    });
    socket.on('close', (code) => resolveClosed(code));
    connections.push(connection);
    for (const waiter of connectionWaiters.splice(0)) waiter();
  });

  const port = (server.address() as AddressInfo).port;
  const running: RecordingServer = {
    url: new URL(`ws://127.0.0.1:${port}/stream`),
    port,
    connections,
    connection: (index) =>
      new Promise((resolve) => {
        const check = (): void => {
          const found = connections[index];
          if (found) resolve(found);
          else connectionWaiters.push(check);
        };
        check();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
  cleanups.push(() => running.close());
  return running;
}

type MakeOptions = Partial<Omit<WebsocketStreamOptions<StreamItem>, 'connection'>> & {
  url: URL;
  token?: string;
  connection?: StreamConnection;
};

function makeStream({ token, connection, ...options }: MakeOptions): WebsocketStream<StreamItem> {
  const stream = new WebsocketStream<StreamItem>({
    protocol: ourStreamProtocol(start),
    connection: connection ?? { token },
    logger: silent,
    ...options,
  });
  cleanups.push(() => stream.finish('test cleanup'));
  return stream;
}

function audio(byte: number, length = 640): Buffer {
  return Buffer.alloc(length, byte);
}

function json(frame: Frame | undefined): unknown {
  expect(frame?.binary).toBe(false);
  return JSON.parse(frame!.data.toString('utf8'));
}

/** A pino logger whose lines (parsed) are collected, and can be awaited. */
function capturingLogger(): {
  logger: Logger;
  lines: Record<string, unknown>[];
  line(match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
} {
  const lines: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  const logger: Logger = pino(
    { level: 'warn' },
    {
      write(text: string) {
        lines.push(JSON.parse(text) as Record<string, unknown>);
        for (const waiter of waiters.splice(0)) waiter();
      },
    },
  );
  const line = (match: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> =>
    new Promise((resolve) => {
      const check = (): void => {
        const found = lines.find(match);
        if (found) resolve(found);
        else waiters.push(check);
      };
      check();
    });
  return { logger, lines, line };
}

describe('WebsocketStream', () => {
  it('opens every connection with a TEXT frame holding the start metadata', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    const connection = await server.connection(0);
    const [first] = await connection.framesArrived(1);
    expect(json(first)).toEqual(start);
    expect(json(first)).toMatchObject({
      event: 'start',
      version: 1,
      label: 'CALLER1',
      callId: 'call-42',
      encoding: 'L16',
      endianness: 'little',
      channels: 1,
      sampleRate: 16000,
      frameMs: 20,
    });
  });

  it('delivers audio queued before the connection opened after the metadata, in order', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.send(audio(1));
    stream.open();
    stream.send(audio(2));
    stream.send(audio(3));
    const connection = await server.connection(0);
    const frames = await connection.framesArrived(4);
    expect(json(frames[0])).toEqual(start);
    expect(frames.slice(1).map((f) => f.binary)).toEqual([true, true, true]);
    expect(frames.slice(1).map((f) => f.data.equals(audio(f.data[0]!)) && f.data[0])).toEqual([1, 2, 3]);

    stream.send(audio(4)); // now connected: sent straight away
    const all = await connection.framesArrived(5);
    expect(all[4]?.data.equals(audio(4))).toBe(true);
    expect(stream.stats).toMatchObject({ framesSent: 4, framesDropped: 0, connections: 1 });
  });

  it('sends the token as a Bearer Authorization header, and a User-Agent', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, token: 's3cret-token' });
    stream.open();
    const connection = await server.connection(0);
    expect(connection.headers.authorization).toBe('Bearer s3cret-token');
    expect(connection.headers['user-agent']).toBe(USER_AGENT);
    expect(USER_AGENT).toMatch(/^asterisk-transcription-proxy\//);
  });

  it('sends no Authorization header without a token', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    const connection = await server.connection(0);
    expect(connection.headers).not.toHaveProperty('authorization');
    expect(connection.headers['user-agent']).toBe(USER_AGENT);
  });

  it('finish() sends the stop message as the last frame and closes with 1000; twice is safe', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    stream.send(audio(7));
    const connection = await server.connection(0);
    await connection.framesArrived(2);

    const first = stream.finish('hangup');
    const second = stream.finish('other reason');
    await Promise.all([first, second]);
    expect(await connection.closed).toBe(1000);
    expect(connection.frames).toHaveLength(3);
    expect(json(connection.frames[2])).toEqual({ event: 'stop', callId: 'call-42', label: 'CALLER1', reason: 'hangup' });
    expect(stream.isOpen).toBe(false);

    await stream.finish('again'); // after it finished, too
    stream.send(audio(8)); // ignored once finished
    expect(connection.frames).toHaveLength(3);
    expect(server.connections).toHaveLength(1);
  });

  it('reconnects after the server drops it, and starts the new connection with the metadata again', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, maxReconnectAttempts: 2 });
    stream.open();
    stream.send(audio(1));
    const firstConnection = await server.connection(0);
    await firstConnection.framesArrived(2);

    firstConnection.socket.terminate();
    // no event tells the test the client saw the drop; poll, bounded
    const deadline = Date.now() + 2000;
    while (stream.isOpen && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(stream.isOpen).toBe(false);
    stream.send(audio(2)); // while disconnected: buffered

    const secondConnection = await server.connection(1);
    const frames = await secondConnection.framesArrived(2);
    expect(json(frames[0])).toEqual(start);
    expect(frames[1]?.binary).toBe(true);
    expect(frames[1]?.data.equals(audio(2))).toBe(true);

    stream.send(audio(3));
    const more = await secondConnection.framesArrived(3);
    expect(more[2]?.data.equals(audio(3))).toBe(true);
    expect(stream.stats.connections).toBe(2);

    await stream.finish('hangup');
    expect(await secondConnection.closed).toBe(1000);
    expect(json(secondConnection.frames.at(-1))).toMatchObject({ event: 'stop', reason: 'hangup' });
  });

  it('gives up after its reconnect attempts when nothing listens, without throwing, and finish() resolves', async () => {
    const server = await startServer();
    const url = server.url;
    await server.close();
    const { logger, lines, line } = capturingLogger();
    const stream = makeStream({ url, logger, maxReconnectAttempts: 2 });
    stream.open();
    stream.send(audio(1));
    stream.send(audio(2));

    const gaveUp = await line((l) => l.level === 50);
    expect(gaveUp.attempts).toBe(2);
    // the first try and two retries each failed
    expect(lines.filter((l) => l.level === 40 && 'err' in l)).toHaveLength(3);
    expect(stream.stats.connections).toBe(0);
    expect(stream.isOpen).toBe(false);

    await stream.finish('hangup');
    expect(stream.stats.framesDropped).toBe(2);
    expect(stream.stats.framesSent).toBe(0);
  });

  it('does not reconnect when the server closes the stream normally (1000)', async () => {
    const server = await startServer();
    const { logger, line } = capturingLogger();
    const stream = makeStream({ url: server.url, logger });
    stream.open();
    const connection = await server.connection(0);
    await connection.framesArrived(1);
    connection.socket.close(1000, 'done');
    await line((l) => l.code === 1000);
    stream.send(audio(1));
    expect(stream.isOpen).toBe(false);
    expect(server.connections).toHaveLength(1);
  });

  it('keeps a bounded number of attempts for a server that accepts and drops at once', async () => {
    const server = await startServer();
    server.connections.length = 0;
    const { logger, line } = capturingLogger();
    const stream = makeStream({ url: server.url, logger, maxReconnectAttempts: 2 });
    // Every connection is dropped as soon as it opens (a server in a crash loop).
    const dropAll = setInterval(() => {
      for (const connection of server.connections) connection.socket.terminate();
    }, 1);
    cleanups.push(async () => clearInterval(dropAll));
    stream.open();
    const gaveUp = await line((l) => l.level === 50);
    expect(gaveUp.attempts).toBe(2);
    expect(stream.stats.connections).toBe(3);
  });

  it('drops the oldest frames when its buffer overflows, and counts them', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, maxBufferedFrames: 2 });
    for (let byte = 1; byte <= 5; byte++) stream.send(audio(byte));
    expect(stream.stats.framesDropped).toBe(3);

    stream.open();
    const connection = await server.connection(0);
    const frames = await connection.framesArrived(3);
    expect(json(frames[0])).toEqual(start);
    expect(frames.slice(1).map((f) => f.data[0])).toEqual([4, 5]);
    expect(stream.stats).toMatchObject({ framesSent: 2, framesDropped: 3 });

    await stream.finish('hangup');
    expect(await connection.closed).toBe(1000);
    expect(connection.frames).toHaveLength(4);
  });

  it('finish() while still connecting resolves without sending anything and does not reconnect', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    stream.send(audio(1));
    await stream.finish('hangup');
    expect(stream.isOpen).toBe(false);
    expect(stream.stats).toMatchObject({ framesSent: 0, framesDropped: 1, connections: 0 });
    for (const connection of server.connections) expect(connection.frames).toHaveLength(0);
  });
});
