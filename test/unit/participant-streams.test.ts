/**
 * What each provider's streams say when a transfer changes a leg's party
 * (CallStreams.participant; docs/transfers.md), over real websockets on
 * 127.0.0.1: our format sends a `participant` event on that leg's stream (or
 * the call's, in stereo) before the new party's first frame, and metadata of
 * a later connection describes the new party; Twilio, which has no message
 * for it, stops the stream and starts a new one on the same callSid with
 * `sequence` and `reason`, its media timestamps going on from the call's.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { loadConfig } from '../../app/config/load-config.js';
import { createCallStreams, type CallStreams } from '../../app/transcription/call-streams.js';
import { streamConnectionFromConfig } from '../../app/transcription/stream-connection.js';
import { participantMessage, type StreamIdentity } from '../../app/transcription/stream-messages.js';

const logger = pino({ level: 'silent' });

const identity = (leg: 'A' | 'B'): StreamIdentity => ({
  label: leg === 'A' ? 'CALLER1' : 'CALLER2',
  leg,
  callId: '5f0c2a3e-1b7d-4c9e-8a21-6d3f0e9b4c17',
  channelId: leg === 'A' ? '1700000000.1' : 'leg-b-1',
  linkedId: '1700000000.1',
  sipCallId: `${leg}@127.0.0.1`,
  direction: 'inbound',
  caller: '1001',
  callee: '4567',
  node: 'test-node',
});
const target: StreamIdentity = {
  ...identity('B'),
  channelId: 'leg-b-2',
  sipCallId: 'target@127.0.0.1',
  callee: '4568',
  sequence: 2,
};

interface Connection {
  socket: WebSocket;
  /** Text messages parsed; binary ones as the number of bytes. */
  messages: (Record<string, unknown> | number)[];
  closed: Promise<void>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startServer(): Promise<{ url: string; connections: Connection[] }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const connections: Connection[] = [];
  server.on('connection', (socket) => {
    const messages: Connection['messages'] = [];
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('message', (data, isBinary) => {
      const buffer = data as Buffer;
      messages.push(isBinary ? buffer.length : (JSON.parse(buffer.toString('utf8')) as Record<string, unknown>));
    });
    connections.push({ socket, messages, closed });
  });
  cleanups.push(
    () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}`, connections };
}

function streamsFor(url: string, env: Record<string, string>): CallStreams {
  const { config } = loadConfig({
    env: { ARI_PASSWORD: 'x', DESTINATION_DOMAIN: '127.0.0.1:5070', STREAM_URL: url, SAMPLE_RATE: '8000', ...env },
    cwd: '/nonexistent',
  });
  const streams = createCallStreams({ config, connection: streamConnectionFromConfig(config), logger }, identity('A'), identity('B'));
  cleanups.push(() => streams.finish('test over'));
  return streams;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const frame = () => Buffer.alloc(320, 1);
const texts = (connection: Connection) => connection.messages.filter((m): m is Record<string, unknown> => typeof m !== 'number');

describe('participantMessage', () => {
  it('names the leg’s new party with its sequence and the reason', () => {
    expect(participantMessage(target, 'transfer')).toEqual({
      event: 'participant',
      label: 'CALLER2',
      leg: 'B',
      channelId: 'leg-b-2',
      sipCallId: 'target@127.0.0.1',
      caller: '1001',
      callee: '4568',
      sequence: 2,
      reason: 'transfer',
    });
    expect(participantMessage(identity('A'), 'attended-transfer').sequence).toBe(1);
  });
});

describe('our format, split', () => {
  it('the participant event on that leg’s stream only, between the old party’s frames and the new one’s; a new connection’s metadata is the new party', async () => {
    const server = await startServer();
    const streams = streamsFor(server.url, {});
    streams.open();
    await until(() => server.connections.length === 2, 'two streams');
    const byLabel = (label: string) => server.connections.find((c) => (c.messages[0] as Record<string, unknown>).label === label)!;
    await until(() => server.connections.every((c) => c.messages.length === 1), 'the metadata');
    streams.audio('B', frame());
    streams.participant('B', target, 'transfer');
    streams.audio('B', frame());
    streams.audio('A', frame());
    const caller2 = byLabel('CALLER2');
    const caller1 = byLabel('CALLER1');
    await until(() => caller2.messages.length === 4 && caller1.messages.length === 2, 'the frames');
    expect(caller2.messages.slice(1)).toEqual([320, participantMessage(target, 'transfer'), 320]);
    expect(caller1.messages.slice(1)).toEqual([320]);

    // The server drops the connection: the stream reconnects describing the party it has now.
    caller2.socket.terminate();
    await until(() => server.connections.length === 3, 'the reconnection');
    const again = server.connections[2]!;
    await until(() => again.messages.length >= 1, 'the new metadata');
    expect(again.messages[0]).toMatchObject({ label: 'CALLER2', channelId: 'leg-b-2', callee: '4568', sequence: 2, resumed: true });
  });
});

describe('our format, stereo', () => {
  it('the participant event on the call’s one stream; the legs of a later start carry the sequence', async () => {
    const server = await startServer();
    const streams = streamsFor(server.url, { STREAM_MODE: 'stereo' });
    streams.open();
    await until(() => server.connections[0]?.messages.length === 1, 'the metadata');
    const connection = server.connections[0]!;
    expect(connection.messages[0]).toMatchObject({ callee: '4567', legs: [{ channelId: '1700000000.1' }, { channelId: 'leg-b-1' }] });
    streams.participant('B', target, 'transfer');
    await until(() => texts(connection).length === 2, 'the participant event');
    expect(texts(connection)[1]).toEqual(participantMessage(target, 'transfer'));
    connection.socket.terminate();
    await until(() => server.connections[1]?.messages.length === 1, 'the new metadata');
    expect(server.connections[1]!.messages[0]).toMatchObject({
      callee: '4568',
      legs: [{ channelId: '1700000000.1' }, { channelId: 'leg-b-2', sequence: 2 }],
    });
  });
});

describe('Twilio Media Streams', () => {
  it('a transfer stops the stream and starts a new one: same callSid, new streamSid, sequence and reason, timestamps going on', async () => {
    const server = await startServer();
    const streams = streamsFor(server.url, { PROVIDER: 'twilio' });
    streams.open();
    await until(() => server.connections[0] !== undefined && texts(server.connections[0]).length === 2, 'connected and start');
    const first = server.connections[0]!;
    for (let i = 0; i < 3; i++) {
      streams.audio('A', frame());
      streams.audio('B', frame());
    }
    await until(() => texts(first).filter((m) => m.event === 'media').length === 6, 'the first stream’s media');
    streams.participant('B', target, 'transfer');
    await first.closed;
    await until(() => server.connections.length === 2 && texts(server.connections[1]!).length === 2, 'the second stream');
    streams.audio('A', frame());
    streams.audio('B', frame());
    const second = server.connections[1]!;
    await until(() => texts(second).filter((m) => m.event === 'media').length === 2, 'both tracks');

    const [firstStart, secondStart] = [first, second].map(
      (c) => texts(c).find((m) => m.event === 'start')!.start as Record<string, unknown>,
    );
    expect(texts(first).at(-1)).toMatchObject({ event: 'stop' });
    expect(secondStart!.callSid).toBe(firstStart!.callSid);
    expect(secondStart!.streamSid).not.toBe(firstStart!.streamSid);
    expect(firstStart!.customParameters).not.toHaveProperty('sequence');
    expect(secondStart!.customParameters).toMatchObject({ callee: '4568', caller: '1001', sequence: '2', reason: 'transfer' });
    // Media timestamps count the call's audio, across the two streams.
    const timestamps = texts(second)
      .filter((m) => m.event === 'media')
      .map((m) => (m.media as Record<string, unknown>).timestamp);
    expect(timestamps).toEqual(['60', '60']);
  });
});
