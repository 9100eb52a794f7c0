import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeAudio, encodeMessage, encodeUuid, KIND_SLIN16 } from '../../app/media/audiosocket-codec.js';
import { AudioSocketListener } from '../../app/media/audiosocket-listener.js';
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
  it('tells with each frame how many it dropped just before it (TCP loses none): nothing for the first', async () => {
    const server = await listen();
    const transport = new AudioSocketTapTransport(server, '127.0.0.1', 'slin16');
    const seen: [number, number | undefined][] = [];
    const third = new Promise<void>((resolve) =>
      transport.onAudio((frame, lostBefore) => {
        seen.push([frame[0]!, lostBefore]);
        if (seen.length === 3) resolve();
      }),
    );
    const client = await dial(server.port);
    client.write(encodeUuid(transport.uuid));
    client.write(encodeAudio(KIND_SLIN16, Buffer.alloc(640, 1)));
    client.write(encodeMessage(KIND_SLIN16, Buffer.alloc(639, 9))); // odd length: not L16, dropped
    client.write(encodeAudio(KIND_SLIN16, Buffer.alloc(640, 2)));
    client.write(encodeAudio(KIND_SLIN16, Buffer.alloc(640, 3)));
    await third;
    expect(seen).toEqual([
      [1, undefined],
      [2, 1],
      [3, 0],
    ]);
    transport.close();
    await closed(client);
  });

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

describe('AudioSocketServer limits (anyone who reaches the port can connect)', () => {
  it('closes a connection that sends no UUID within 2 s', async () => {
    const server = await listen();
    const socket = await dial(server.port);
    const started = Date.now();
    await closed(socket);
    const elapsedMs = Date.now() - started;
    expect(elapsedMs).toBeGreaterThanOrEqual(1900);
    expect(elapsedMs).toBeLessThan(3000);
    expect(server.stats.uuidTimeouts).toBe(1);
    expect(server.pendingConnections).toBe(0);
  });

  it('keeps a connection that named its leg past the UUID time limit', async () => {
    const server = await AudioSocketServer.listen('127.0.0.1', 0, { uuidTimeoutMs: 100 });
    servers.push(server);
    server.register(UUID, { onConnection: () => {}, onAudio: () => {} });
    const socket = await dial(server.port);
    socket.write(encodeUuid(UUID));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(socket.destroyed).toBe(false);
    expect(server.stats.uuidTimeouts).toBe(0);
    socket.destroy();
  });

  it('1,000 idle connections do not keep a new leg from being tapped; waiting connections stay capped', async () => {
    const server = await listen();
    // Each idle peer: connected, then closed by the server (evicted, or at the UUID time limit).
    const gone = Array.from(
      { length: 1000 },
      () =>
        new Promise<void>((resolve) => {
          const socket = connect(server.port, '127.0.0.1');
          socket.on('error', () => {});
          socket.once('close', () => resolve());
        }),
    );
    await new Promise<void>((resolve) => {
      const waitForAll = () => (server.stats.connections >= 1000 ? resolve() : setTimeout(waitForAll, 10));
      waitForAll();
    });
    const frames: Buffer[] = [];
    const arrived = new Promise<void>((resolve) => {
      server.register(UUID, {
        onConnection: () => {},
        onAudio: (frame) => {
          frames.push(frame);
          resolve();
        },
      });
    });
    const leg = await dial(server.port);
    leg.write(Buffer.concat([encodeUuid(UUID), encodeAudio(KIND_SLIN16, Buffer.alloc(640, 7))]));
    await arrived;
    expect(frames[0]?.[0]).toBe(7);
    expect(server.pendingConnections).toBeLessThanOrEqual(256);
    expect(server.stats.pendingEvicted).toBeGreaterThanOrEqual(1000 - 256);
    await Promise.all(gone);
    expect(leg.destroyed).toBe(false);
    leg.destroy();
  });
});

describe('AudioSocketListener', () => {
  it('listens only once AudioSocket is asked for, and closes', async () => {
    const listener = new AudioSocketListener('127.0.0.1', 0);
    expect(listener.port).toBeUndefined();
    const server = await listener.server();
    expect(await listener.server()).toBe(server);
    expect(listener.port).toBe(server.port);
    const socket = await dial(server.port);
    await listener.close();
    await closed(socket);
    expect(listener.port).toBeUndefined();
  });
});
