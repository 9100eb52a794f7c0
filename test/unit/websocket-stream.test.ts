import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ourStreamProtocol, startMessage, type StreamIdentity, type StreamItem } from '../../app/transcription/stream-messages.js';
import type { StreamConnection } from '../../app/transcription/stream-connection.js';
import { USER_AGENT, WebsocketStream, backoffMs, type WebsocketStreamOptions } from '../../app/transcription/websocket-stream.js';

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
    protocol: ourStreamProtocol(() => start),
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

  it('reconnects after the server drops it: the new connection says it is resumed and where, then the backlog, then live audio', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    stream.send(audio(1));
    const firstConnection = await server.connection(0);
    await firstConnection.framesArrived(2);

    firstConnection.socket.terminate();
    await expect.poll(() => stream.state).toBe('waiting');
    stream.send(audio(2)); // while disconnected: buffered
    stream.send(audio(3));

    const secondConnection = await server.connection(1);
    const frames = await secondConnection.framesArrived(3);
    expect(json(frames[0])).toEqual({ ...start, resumed: true, positionMs: 20, droppedMs: 0 });
    // the resume fields come right after the identity, before the format
    expect(Object.keys(json(frames[0]) as object).indexOf('resumed')).toBe(Object.keys(start).indexOf('node') + 1);
    expect(frames.slice(1).map((f) => f.data[0])).toEqual([2, 3]);

    stream.send(audio(4));
    const more = await secondConnection.framesArrived(4);
    expect(more[3]?.data.equals(audio(4))).toBe(true);
    expect(stream.stats).toMatchObject({ connections: 2, reconnects: 1, framesSent: 4, framesDropped: 0 });

    await stream.finish('hangup');
    expect(await secondConnection.closed).toBe(1000);
    expect(json(secondConnection.frames.at(-1))).toMatchObject({ event: 'stop', reason: 'hangup' });
  });

  it('keeps trying for as long as the call lasts, and connects within about a second once the server is back', async () => {
    const server = await startServer();
    const port = server.port;
    await server.close();
    const { logger, lines } = capturingLogger();
    const stream = makeStream({ url: new URL(`ws://127.0.0.1:${port}/stream`), logger });
    stream.open();
    stream.send(audio(1));
    await new Promise((resolve) => setTimeout(resolve, 1500)); // several refused attempts
    expect(stream.state).not.toBe('ended');
    expect(
      lines.filter((l) => l.level === 40),
      'one warning for the outage, not one per attempt',
    ).toHaveLength(1);
    const back = new WebSocketServer({ host: '127.0.0.1', port });
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const client of back.clients) client.terminate();
          back.close(() => resolve());
        }),
    );
    const backAt = Date.now();
    const received = new Promise<Buffer[]>((resolve) => {
      back.on('connection', (socket) => {
        const frames: Buffer[] = [];
        socket.on('message', (data) => {
          frames.push(data as Buffer);
          if (frames.length === 2) resolve(frames);
        });
      });
    });
    const frames = await received;
    expect(Date.now() - backAt).toBeLessThan(1500);
    // The stream's first connection: the metadata as always, the buffered audio after it.
    expect(JSON.parse(frames[0]!.toString())).toEqual(start);
    expect(frames[1]![0]).toBe(1);
  });

  it('backoff: exponential from 100 ms, capped at 1 s, with jitter', () => {
    expect(backoffMs(0, 100, 1000, () => 1)).toBe(100);
    expect(backoffMs(3, 100, 1000, () => 1)).toBe(800);
    expect(backoffMs(30, 100, 1000, () => 1)).toBe(1000);
    expect(backoffMs(30, 100, 1000, () => 0)).toBe(500);
  });

  it('does not reconnect when the server closes the stream normally (1000), as mod_audio_stream users expect', async () => {
    const server = await startServer();
    const { logger, line } = capturingLogger();
    const stream = makeStream({ url: server.url, logger });
    stream.open();
    const connection = await server.connection(0);
    await connection.framesArrived(1);
    connection.socket.close(1000, 'done');
    await line((l) => l.code === 1000);
    stream.send(audio(1));
    expect(stream.state).toBe('ended');
    expect(stream.isOpen).toBe(false);
    expect(server.connections).toHaveLength(1);
  });

  it.each([1001, 1011, 4000])('treats a close with %i as an outage and reconnects', async (code) => {
    const server = await startServer();
    const stream = makeStream({ url: server.url });
    stream.open();
    const connection = await server.connection(0);
    await connection.framesArrived(1);
    connection.socket.close(code, 'bye');
    const again = await server.connection(1);
    expect(json((await again.framesArrived(1))[0])).toMatchObject({ resumed: true });
  });

  it('drops the oldest audio beyond bufferMs, counts it, and the next connection says how much', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, bufferMs: 40 });
    for (let byte = 1; byte <= 5; byte++) stream.send(audio(byte));
    expect(stream.stats.framesDropped).toBe(3);
    expect(stream.bufferedMs).toBe(40);

    stream.open();
    const connection = await server.connection(0);
    const frames = await connection.framesArrived(3);
    expect(json(frames[0])).toEqual(start);
    expect(frames.slice(1).map((f) => f.data[0])).toEqual([4, 5]);
    expect(stream.stats).toMatchObject({ framesSent: 2, framesDropped: 3 });

    connection.socket.terminate();
    await expect.poll(() => stream.state).toBe('waiting');
    for (let byte = 6; byte <= 9; byte++) stream.send(audio(byte));
    const again = await server.connection(1);
    const resumed = await again.framesArrived(3);
    // frames 6 and 7 (positions 100, 120) were dropped; 8 sits at 140
    expect(json(resumed[0])).toMatchObject({ resumed: true, positionMs: 140, droppedMs: 40 });
    expect(resumed.slice(1).map((f) => f.data[0])).toEqual([8, 9]);
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

  it("a stream that continues another instance's starts resumed at its position on its very first connection", async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, resumedAtMs: 7013 });
    stream.open();
    stream.send(audio(1));
    const frames = await (await server.connection(0)).framesArrived(2);
    expect(json(frames[0])).toMatchObject({ resumed: true, positionMs: 7020, droppedMs: 0 });
  });

  it('a settings value the websocket client refuses ends the stream with a log line, never throws', async () => {
    const server = await startServer();
    const { logger, line } = capturingLogger();
    const stream = makeStream({ url: server.url, logger, connection: { token: 'abc€' } });
    expect(() => stream.open()).not.toThrow();
    await line((l) => l.level === 50);
    expect(stream.state).toBe('ended');
    stream.send(audio(1));
    expect(server.connections).toHaveLength(0);
  });
});

describe('WebsocketStream: several frames per message (STREAM_BUFFER_SIZE)', () => {
  /** The first byte of each 640-byte frame a binary message carries. */
  const framesIn = (frame: Frame) => {
    expect(frame.binary).toBe(true);
    return Array.from({ length: frame.data.length / 640 }, (_, i) => frame.data[i * 640]);
  };

  it('sends framesPerMessage frames per binary message; an event first sends the frames before it; finish() the rest', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, framesPerMessage: 5 });
    stream.open();
    const connection = await server.connection(0);
    await connection.framesArrived(1); // the start metadata
    for (let i = 1; i <= 12; i++) stream.send(audio(i));
    stream.send({ event: 'dtmf', label: 'CALLER1', digit: '5', durationMs: 100 });
    stream.send(audio(13));
    const frames = await connection.framesArrived(5);
    expect(framesIn(frames[1]!)).toEqual([1, 2, 3, 4, 5]);
    expect(framesIn(frames[2]!)).toEqual([6, 7, 8, 9, 10]);
    expect(framesIn(frames[3]!)).toEqual([11, 12]);
    expect(json(frames[4])).toMatchObject({ event: 'dtmf', digit: '5' });
    // Frame 13 waits for four more; the end of the stream sends it before the stop message.
    expect(stream.bufferedMs).toBeGreaterThanOrEqual(20);
    await stream.finish('hangup');
    await connection.closed;
    expect(framesIn(connection.frames.at(-2)!)).toEqual([13]);
    expect(json(connection.frames.at(-1))).toMatchObject({ event: 'stop' });
    expect(stream.stats).toMatchObject({ framesSent: 13, framesDropped: 0 });
  });

  it('frames gathered for a message when the connection drops go out first on the next, at their positions', async () => {
    const server = await startServer();
    const stream = makeStream({ url: server.url, framesPerMessage: 4 });
    stream.open();
    const first = await server.connection(0);
    await first.framesArrived(1);
    for (let i = 1; i <= 6; i++) stream.send(audio(i));
    await first.framesArrived(2);
    expect(framesIn(first.frames[1]!)).toEqual([1, 2, 3, 4]);
    first.socket.terminate();
    await expect.poll(() => stream.state).toBe('waiting');
    stream.send(audio(7));
    stream.send(audio(8));

    const second = await server.connection(1);
    const frames = await second.framesArrived(2);
    // Frames 5 and 6 were gathered, not sent: the resumed stream starts at frame 5 (80 ms).
    expect(json(frames[0])).toMatchObject({ resumed: true, positionMs: 80, droppedMs: 0 });
    expect(framesIn(frames[1]!)).toEqual([5, 6, 7, 8]);
    expect(stream.stats).toMatchObject({ framesSent: 8, framesDropped: 0 });
  });
});

describe('WebsocketStream: stalls and refusals', () => {
  it('a server that stops reading is noticed by its unanswered pings; what it did not acknowledge is sent again', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    await new Promise((resolve) => server.once('listening', resolve));
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const c of server.clients) c.terminate();
          server.close(() => resolve());
        }),
    );
    const received: { connection: number; frames: Buffer[] }[] = [];
    let answering = true;
    server.on('connection', (socket) => {
      const record = { connection: received.length, frames: [] as Buffer[] };
      received.push(record);
      socket.on('message', (data) => record.frames.push(data as Buffer));
      socket.on('ping', (payload) => {
        if (answering) socket.pong(payload);
      });
    });
    const url = new URL(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    const { logger, line } = capturingLogger();
    const stream = makeStream({ url, logger, heartbeatMs: 50, pongTimeoutMs: 200 });
    stream.open();
    for (let byte = 1; byte <= 3; byte++) stream.send(audio(byte));
    await expect.poll(() => received[0]?.frames.length).toBe(4);
    // the pings are answered, so frames 1-3 are acknowledged
    await new Promise((resolve) => setTimeout(resolve, 120));
    answering = false; // the server "stops reading": frames still arrive here, pongs do not
    for (let byte = 4; byte <= 5; byte++) stream.send(audio(byte));
    await line((l) => String(l.msg).includes('did not answer the ping'));
    answering = true;
    await expect.poll(() => received[1]?.frames.length ?? 0, { timeout: 3000 }).toBe(3);
    const resumed = received[1]!;
    expect(JSON.parse(resumed.frames[0]!.toString())).toMatchObject({ resumed: true, positionMs: 60, droppedMs: 0 });
    expect(resumed.frames.slice(1).map((f) => f[0])).toEqual([4, 5]);
    expect(stream.stats).toMatchObject({ stalls: 1, itemsResent: 2, framesSent: 5 });
  });

  it('a 401 at the handshake is logged once and retried no more often than authRetryMs', async () => {
    let attempts = 0;
    const server = createServer((_request, response) => {
      attempts++;
      response.writeHead(401).end();
    });
    server.on('upgrade', (_request, socket) => {
      attempts++;
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
    const { logger, lines, line } = capturingLogger();
    const stream = makeStream({ url: new URL(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`), logger, authRetryMs: 400 });
    stream.open();
    await line((l) => l.status === 401);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(3);
    expect(lines.filter((l) => l.status === 401)).toHaveLength(1);
    expect(stream.state).not.toBe('ended');
  });

  it('memory stays within bufferMs however long the server is away', async () => {
    const server = await startServer();
    const port = server.port;
    await server.close();
    const stream = makeStream({ url: new URL(`ws://127.0.0.1:${port}/stream`), bufferMs: 1000 });
    stream.open();
    for (let i = 0; i < 5000; i++) stream.send(audio(i & 0xff));
    expect(stream.bufferedMs).toBe(1000);
    expect(stream.stats.framesDropped).toBe(5000 - 50);
  });
});
