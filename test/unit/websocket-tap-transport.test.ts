/**
 * The WebSocket tap against a stand-in for Asterisk's /media/ID endpoint:
 * audio before MEDIA_START, odd-length frames and unknown or malformed TEXT
 * messages are counted and dropped; good frames around them still arrive.
 */
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import type { AriChannel } from '../../app/ari/ari-port.js';
import { WebsocketTapTransport } from '../../app/media/websocket-tap-transport.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A fake Asterisk HTTP server accepting /media/ID; resolves with the path and the server's socket. */
async function fakeAsterisk(): Promise<{ ariUrl: URL; connected: Promise<{ path: string; socket: WebSocket }> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  cleanups.push(() => server.close());
  const connected = new Promise<{ path: string; socket: WebSocket }>((resolve) => {
    server.once('connection', (socket, request) => resolve({ path: request.url ?? '', socket }));
  });
  return { ariUrl: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`), connected };
}

const channel = (connectionId: string) =>
  ({ id: 'media-1', channelvars: { MEDIA_WEBSOCKET_CONNECTION_ID: connectionId } }) as unknown as AriChannel;
const frame = (fill: number, bytes = 640) => Buffer.alloc(bytes, fill);

describe('WebsocketTapTransport', () => {
  it('asks for a receive-only server-mode websocket channel in the leg format', () => {
    const transport = new WebsocketTapTransport(new URL('https://pbx.example:8089'), 'slin16');
    expect(transport.request).toMatchObject({
      transport: 'websocket',
      connectionType: 'server',
      direction: 'in',
      format: 'slin16',
      encapsulation: 'none',
    });
  });

  it('connects to /media/ID, and counts and drops what is not audio after MEDIA_START', async () => {
    const asterisk = await fakeAsterisk();
    const transport = new WebsocketTapTransport(asterisk.ariUrl, 'slin16');
    cleanups.push(() => transport.close());
    const received: Buffer[] = [];
    const lostBefore: (number | undefined)[] = [];
    const lastFrame = new Promise<void>((resolve) =>
      transport.onAudio((audio, lost) => {
        received.push(audio);
        lostBefore.push(lost);
        if (audio[0] === 3) resolve();
      }),
    );
    await transport.attach(channel('abc-123'));
    const { path, socket } = await asterisk.connected;
    expect(path).toBe('/media/abc-123');
    expect(transport.holdsSocket).toBe(true);

    socket.send(frame(9), { binary: true }); // before MEDIA_START
    socket.send('MEDIA_START connection_id:abc-123 channel:WebSocket/x format:slin16 optimal_frame_size:640 ptime:20');
    socket.send(frame(1), { binary: true });
    socket.send(Buffer.from([1, 2, 3]), { binary: true }); // odd length: not L16
    socket.send('MEDIA_XOFF');
    socket.send(Buffer.from([0xff, 0xfe, 0x00]), { binary: false }); // not even UTF-8 text
    socket.send(frame(2), { binary: true });
    socket.send(frame(3), { binary: true });
    await lastFrame;

    expect(received.map((audio) => audio[0])).toEqual([1, 2, 3]);
    // The frame dropped as odd is counted before the next; nothing is known before the first.
    expect(lostBefore).toEqual([undefined, 1, 0]);
    expect(transport.stats()).toEqual({ frames: 3, bytes: 3 * 640, controlMessages: 3, droppedOddFrames: 1, droppedBeforeStart: 1 });
  });

  it('refuses a connection id that could change the URL, without connecting', async () => {
    const transport = new WebsocketTapTransport(new URL('http://127.0.0.1:1'), 'slin');
    await expect(transport.attach(channel('../ari/events?x=1'))).rejects.toThrow(/no websocket connection id/);
    await expect(transport.attach({ id: 'media-1' } as unknown as AriChannel)).rejects.toThrow(/no websocket connection id/);
    expect(transport.holdsSocket).toBe(false);
  });

  it('lets go of the socket when Asterisk closes it', async () => {
    const asterisk = await fakeAsterisk();
    const transport = new WebsocketTapTransport(asterisk.ariUrl, 'slin');
    cleanups.push(() => transport.close());
    await transport.attach(channel('c1'));
    const { socket } = await asterisk.connected;
    socket.terminate();
    await expect.poll(() => transport.holdsSocket).toBe(false);
  });

  it('closes with the closing handshake (1000), and delivers nothing more once closed', async () => {
    const asterisk = await fakeAsterisk();
    const transport = new WebsocketTapTransport(asterisk.ariUrl, 'slin');
    const terminate = vi.spyOn(WebSocket.prototype, 'terminate');
    cleanups.push(() => terminate.mockRestore());
    const received: Buffer[] = [];
    transport.onAudio((audio) => received.push(audio));
    await transport.attach(channel('c2'));
    const { socket } = await asterisk.connected;
    socket.send('MEDIA_START connection_id:c2 format:slin');
    const closed = once(socket, 'close');
    transport.close();
    expect(transport.holdsSocket).toBe(false);
    socket.send(frame(1), { binary: true }); // Asterisk was mid-frame
    const [code] = await closed;
    expect(code).toBe(1000);
    expect(received).toEqual([]);
    expect(terminate).not.toHaveBeenCalled();
  });

  it('drops the connection when Asterisk does not answer the CLOSE in time', async () => {
    const asterisk = await fakeAsterisk();
    const transport = new WebsocketTapTransport(asterisk.ariUrl, 'slin', 100);
    const terminate = vi.spyOn(WebSocket.prototype, 'terminate');
    cleanups.push(() => terminate.mockRestore());
    await transport.attach(channel('c3'));
    const { socket } = await asterisk.connected;
    // An Asterisk that reads nothing more: our CLOSE is never answered.
    (socket as unknown as { _socket: Socket })._socket.pause();
    transport.close();
    await expect.poll(() => terminate.mock.calls.length, { timeout: 2000 }).toBe(1);
  });
});
