import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeAudio, encodeUuid, KIND_SLIN16 } from '../../app/media/audiosocket-codec.js';
import { AudioSocketServer } from '../../app/media/audiosocket-server.js';
import { AudioSocketTapTransport } from '../../app/media/audiosocket-tap-transport.js';

const servers: AudioSocketServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function listen(): Promise<AudioSocketServer> {
  const server = await AudioSocketServer.listen('127.0.0.1', 0);
  servers.push(server);
  return server;
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));
const UUID = '0f0e0d0c-0b0a-4908-8706-050403020100';

describe('AudioSocketServer', () => {
  it('routes a connection to the leg that registered its UUID, even when bytes arrive one at a time', async () => {
    const server = await listen();
    const frames: Buffer[] = [];
    let connected = 0;
    const arrived = new Promise<void>((resolve) => {
      server.register(UUID, {
        onConnection: () => {
          connected++;
        },
        onAudio: (frame) => {
          frames.push(frame);
          if (frames.length === 2) resolve();
        },
      });
    });
    const socket = await dial(server.port);
    const bytes = Buffer.concat([
      encodeUuid(UUID),
      encodeAudio(KIND_SLIN16, Buffer.alloc(640, 1)),
      encodeAudio(KIND_SLIN16, Buffer.alloc(640, 2)),
    ]);
    for (const byte of bytes) socket.write(Buffer.of(byte));
    await arrived;
    expect(connected).toBe(1);
    expect(frames.map((f) => [f.length, f[0]])).toEqual([
      [640, 1],
      [640, 2],
    ]);
    socket.destroy();
  });

  it('closes a connection with an unknown UUID, and counts it', async () => {
    const server = await listen();
    server.register(UUID, {
      onConnection: () => {
        throw new Error('wrong leg');
      },
      onAudio: () => {},
    });
    const socket = await dial(server.port);
    socket.write(encodeUuid('11111111-2222-4333-8444-555555555555'));
    await closed(socket);
    expect(server.stats.unknownUuid).toBe(1);
  });

  it('closes only the connection that sends garbage; another keeps its audio', async () => {
    const server = await listen();
    const frames: Buffer[] = [];
    let second!: () => void;
    const secondFrame = new Promise<void>((resolve) => {
      second = resolve;
    });
    server.register(UUID, {
      onConnection: () => {},
      onAudio: (frame) => {
        frames.push(frame);
        if (frames.length === 2) second();
      },
    });
    const good = await dial(server.port);
    good.write(Buffer.concat([encodeUuid(UUID), encodeAudio(KIND_SLIN16, Buffer.alloc(640, 7))]));
    const bad = await dial(server.port);
    bad.write(Buffer.from([0x12, 0xff, 0xff])); // an audio message of 65535 bytes cannot be
    await closed(bad);
    expect(server.stats.invalidStreams + server.stats.unknownUuid).toBe(1);
    good.write(encodeAudio(KIND_SLIN16, Buffer.alloc(640, 8)));
    await secondFrame;
    expect(frames.map((f) => f[0])).toEqual([7, 8]);
    good.destroy();
  });
});

describe('AudioSocketTapTransport', () => {
  it('sends Asterisk 20 ms of silence (kind 0x10) every 100 ms, so its reader never waits on us holding the channel lock', async () => {
    const server = await listen();
    const transport = new AudioSocketTapTransport(server, '127.0.0.1', 'slin16');
    const client = await dial(server.port);
    client.write(encodeUuid(transport.uuid));
    const received: Buffer[] = [];
    const started = Date.now();
    await new Promise<void>((resolve) =>
      client.on('data', (chunk: Buffer) => {
        received.push(chunk);
        if (Buffer.concat(received).length >= 2 * 323) resolve();
      }),
    );
    const bytes = Buffer.concat(received);
    expect(bytes.subarray(0, 3)).toEqual(Buffer.from([0x10, 0x01, 0x40]));
    expect(bytes.subarray(3, 323).every((b) => b === 0)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    transport.close();
    await closed(client);
  });
});
