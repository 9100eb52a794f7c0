import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { hex } from '../support/bytes.js';
import { RtpPortPool } from '../../app/media/rtp-port-pool.js';
import { RtpTapReceiver } from '../../app/media/rtp-tap-receiver.js';

const HOST = '127.0.0.1';

/** One RTP packet: V=2, PT 11 (L16), the given sequence number and SSRC. */
function rtp(sequenceNumber: number, ssrc: number, payloadHex: string): Buffer {
  const header = hex('80 0b 0000 00000000 00000000');
  header.writeUInt16BE(sequenceNumber, 2);
  header.writeUInt32BE(sequenceNumber * 160, 4);
  header.writeUInt32BE(ssrc, 8);
  return Buffer.concat([header, hex(payloadHex)]);
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function udpSocket(): Promise<Socket & { port: number }> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, HOST, () => {
      cleanups.push(() => new Promise<void>((done) => socket.close(() => done())));
      resolve(Object.assign(socket, { port: socket.address().port }));
    });
  });
}

function send(socket: Socket, packet: Buffer, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(packet, port, HOST, (error) => (error ? reject(error) : resolve()));
  });
}

interface Harness {
  pool: RtpPortPool;
  receiver: RtpTapReceiver;
  /** The next little-endian frame handed to onAudio. */
  nextFrame(): Promise<Buffer>;
  frames: Buffer[];
  /** What the receiver said was lost before each frame. */
  lostBefore: (number | undefined)[];
}

/** A receiver on a one-port pool whose port the kernel just chose as free. */
async function openReceiver(): Promise<Harness> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const probe = await udpSocket();
    const port = probe.port;
    await new Promise<void>((done) => probe.close(() => done()));
    cleanups.pop();
    const pool = new RtpPortPool({ bindHost: HOST, portStart: port, portEnd: port, quarantineMs: 0 });
    let receiver: RtpTapReceiver;
    try {
      receiver = await RtpTapReceiver.open(pool);
    } catch {
      continue; // taken in between; try another
    }
    cleanups.push(() => receiver.close());
    const frames: Buffer[] = [];
    const lostBefore: (number | undefined)[] = [];
    const waiting: ((frame: Buffer) => void)[] = [];
    let delivered = 0;
    receiver.onAudio((frame, lost) => {
      frames.push(frame);
      lostBefore.push(lost);
      waiting.shift()?.(frame);
    });
    const nextFrame = (): Promise<Buffer> => {
      const index = delivered++;
      const ready = frames[index];
      if (ready !== undefined) return Promise.resolve(ready);
      return new Promise((resolve) => waiting.push(resolve));
    };
    return { pool, receiver, nextFrame, frames, lostBefore };
  }
  throw new Error('no free UDP port for the receiver');
}

/** Bounded poll, for counters that no event announces. */
async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('RtpTapReceiver', () => {
  it('drops and counts packets that arrive before the source is known', async () => {
    const { receiver, nextFrame, frames } = await openReceiver();
    const asterisk = await udpSocket();
    await send(asterisk, rtp(1, 0x1234, '0001'), receiver.port);
    await until(() => receiver.stats.droppedBeforeSource === 1);

    receiver.expectSource(HOST, asterisk.port);
    await send(asterisk, rtp(2, 0x1234, '0002'), receiver.port);
    expect((await nextFrame()).toString('hex')).toBe('0200');
    expect(frames).toHaveLength(1);
    expect(receiver.stats).toMatchObject({ packets: 1, bytes: 2, droppedBeforeSource: 1 });
  });

  it('hands on big-endian RTP payload from the expected source as little-endian frames', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    await send(asterisk, rtp(100, 0xcafe, '0102 fffe 8000'), receiver.port);
    const frame = await nextFrame();
    expect(frame.toString('hex')).toBe('0201feff0080');
    expect([frame.readInt16LE(0), frame.readInt16LE(2), frame.readInt16LE(4)]).toEqual([0x0102, -2, -32768]);
    expect(receiver.stats).toEqual({
      packets: 1,
      bytes: 6,
      lostPackets: 0,
      droppedBeforeSource: 0,
      droppedWrongSource: 0,
      droppedWrongSsrc: 0,
      droppedMalformed: 0,
    });
  });

  it('drops packets from another port than the expected one', async () => {
    const { receiver, nextFrame, frames } = await openReceiver();
    const asterisk = await udpSocket();
    const stranger = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    await send(stranger, rtp(1, 0x1234, 'dead'), receiver.port);
    await send(asterisk, rtp(1, 0x1234, '0102'), receiver.port);
    expect((await nextFrame()).toString('hex')).toBe('0201');
    expect(frames.map((f) => f.toString('hex'))).toEqual(['0201']);
    expect(receiver.stats.droppedWrongSource).toBe(1);
    expect(receiver.stats.packets).toBe(1);
  });

  it('locks onto the first SSRC and drops packets of any other', async () => {
    const { receiver, nextFrame, frames } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    await send(asterisk, rtp(1, 0x1111, '0001'), receiver.port);
    expect((await nextFrame()).toString('hex')).toBe('0100');
    await send(asterisk, rtp(2, 0x2222, '0002'), receiver.port);
    await send(asterisk, rtp(2, 0x1111, '0003'), receiver.port);
    expect((await nextFrame()).toString('hex')).toBe('0300');
    expect(frames).toHaveLength(2);
    expect(receiver.stats).toMatchObject({ packets: 2, droppedWrongSsrc: 1, lostPackets: 0 });
  });

  it('counts a malformed packet and keeps receiving valid ones after it', async () => {
    const { receiver, nextFrame, frames } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    await send(asterisk, hex('00 01 02 03 04'), receiver.port); // 5 bytes, version 0
    await send(asterisk, hex('40 00 0001 00000000 00001111 0102'), receiver.port); // version 1
    await send(asterisk, rtp(1, 0x1111, '0a0b'), receiver.port);
    expect((await nextFrame()).toString('hex')).toBe('0b0a');
    expect(frames).toHaveLength(1);
    expect(receiver.stats).toMatchObject({ packets: 1, droppedMalformed: 2 });
  });

  it('counts the packets missing in a sequence gap', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    for (const sequence of [10, 11, 14]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 3; i++) await nextFrame();
    expect(receiver.stats.lostPackets).toBe(2);
    expect(receiver.stats.packets).toBe(3);
  });

  it('counts a gap across the 16-bit sequence wrap', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    // 0x0000 is missing
    for (const sequence of [0xfffe, 0xffff, 0x0001]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 3; i++) await nextFrame();
    expect(receiver.stats.lostPackets).toBe(1);
  });

  it('does not count a late (reordered) packet as a jump of almost 65536', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    for (const sequence of [20, 19]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 2; i++) await nextFrame();
    expect(receiver.stats.lostPackets).toBe(0);
    expect(receiver.stats.packets).toBe(2);
  });

  it('counts a gap once even when its packet arrives late (18, 20, 19, 21)', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    for (const sequence of [18, 20, 19, 21]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 4; i++) await nextFrame();
    expect(receiver.stats.packets).toBe(4);
    expect(receiver.stats.lostPackets).toBe(1);
  });

  it('tells with each frame how many packets were lost just before it; nothing for the first, nor for a late one', async () => {
    const { receiver, nextFrame, lostBefore } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    for (const sequence of [18, 20, 19, 21, 25, 26]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 6; i++) await nextFrame();
    expect(lostBefore).toEqual([undefined, 1, undefined, 0, 3, 0]);
  });

  it('does not count a repeated sequence number as loss', async () => {
    const { receiver, nextFrame } = await openReceiver();
    const asterisk = await udpSocket();
    receiver.expectSource(HOST, asterisk.port);
    for (const sequence of [5, 5, 6]) await send(asterisk, rtp(sequence, 7, '0000'), receiver.port);
    for (let i = 0; i < 3; i++) await nextFrame();
    expect(receiver.stats.lostPackets).toBe(0);
  });

  it('closes idempotently and gives its port back to the pool', async () => {
    const { pool, receiver } = await openReceiver();
    expect(pool.inUseCount).toBe(1);
    receiver.close();
    expect(pool.inUseCount).toBe(0);
    receiver.close();
    expect(pool.inUseCount).toBe(0);
    // the socket is really closed: its port can be bound again
    const again = await new Promise<Socket | undefined>((resolve) => {
      const socket = createSocket('udp4');
      socket.once('error', () => resolve(undefined));
      socket.bind(receiver.port, HOST, () => resolve(socket));
    });
    expect(again?.address().port).toBe(receiver.port);
    again?.close();
  });
});
