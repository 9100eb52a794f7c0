import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { hex } from '../support/bytes.js';
import WebSocket from 'ws';
import { levelDbfs, sumOfSquares, wavHeader } from '../../app/media/wav.js';
import { createLogger } from '../../app/logging/logger.js';
import { MAX_MESSAGE_BYTES, startReceiver, type RunningReceiver, type StreamSummary } from '../../app/receiver/stream-receiver.js';
import { callStartMessage, startMessage, stopMessage, type StreamIdentity } from '../../app/transcription/stream-messages.js';

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function identity(callId: string, label: string): StreamIdentity {
  return {
    label,
    leg: 'A',
    callId,
    channelId: '1700000000.7',
    linkedId: '1700000000.7',
    sipCallId: 'sip-call@127.0.0.1',
    node: 'test-node',
    direction: 'inbound',
    caller: '1001',
    callee: '1002',
  };
}

/** `count` 20 ms frames of a half-full-scale sine, little-endian 16-bit. */
function sineFrames(sampleRate: number, hz: number, count: number): Buffer[] {
  const samplesPerFrame = (sampleRate / 1000) * 20;
  const frames: Buffer[] = [];
  for (let f = 0; f < count; f++) {
    const frame = Buffer.alloc(samplesPerFrame * 2);
    for (let i = 0; i < samplesPerFrame; i++) {
      const n = f * samplesPerFrame + i;
      frame.writeInt16LE(Math.round(16384 * Math.sin((2 * Math.PI * hz * n) / sampleRate)), i * 2);
    }
    frames.push(frame);
  }
  return frames;
}

interface ParsedWav {
  riff: string;
  riffSize: number;
  wave: string;
  fmt: string;
  fmtSize: number;
  format: number;
  channels: number;
  sampleRate: number;
  byteRate: number;
  blockAlign: number;
  bitsPerSample: number;
  dataTag: string;
  dataSize: number;
  data: Buffer;
}

function parseWav(file: Buffer): ParsedWav {
  return {
    riff: file.toString('ascii', 0, 4),
    riffSize: file.readUInt32LE(4),
    wave: file.toString('ascii', 8, 12),
    fmt: file.toString('ascii', 12, 16),
    fmtSize: file.readUInt32LE(16),
    format: file.readUInt16LE(20),
    channels: file.readUInt16LE(22),
    sampleRate: file.readUInt32LE(24),
    byteRate: file.readUInt32LE(28),
    blockAlign: file.readUInt16LE(32),
    bitsPerSample: file.readUInt16LE(34),
    dataTag: file.toString('ascii', 36, 40),
    dataSize: file.readUInt32LE(40),
    data: file.subarray(44),
  };
}

async function receiverInTempDir(): Promise<{ receiver: RunningReceiver; directory: string; closedStream(): Promise<StreamSummary> }> {
  const directory = await mkdtemp(join(tmpdir(), 'stream-receiver-'));
  cleanups.push(() => rm(directory, { recursive: true, force: true }));
  const receiver = await startReceiver({ host: '127.0.0.1', port: 0, directory, logger: pino({ level: 'silent' }) });
  cleanups.push(() => receiver.close());
  const summaries: StreamSummary[] = [];
  const waiters: (() => void)[] = [];
  receiver.onStreamClosed((summary) => {
    summaries.push(summary);
    for (const waiter of waiters.splice(0)) waiter();
  });
  let taken = 0;
  const closedStream = (): Promise<StreamSummary> => {
    const index = taken++;
    return new Promise((resolve) => {
      const check = (): void => {
        const found = summaries[index];
        if (found) resolve(found);
        else waiters.push(check);
      };
      check();
    });
  };
  return { receiver, directory, closedStream };
}

async function connect(port: number): Promise<WebSocket> {
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  return client;
}

function sendAll(client: WebSocket, frames: (Buffer | string)[]): Promise<void> {
  return Promise.all(
    frames.map(
      (frame) =>
        new Promise<void>((resolve, reject) =>
          client.send(frame, { binary: typeof frame !== 'string' }, (error) => (error ? reject(error) : resolve())),
        ),
    ),
  ).then(() => undefined);
}

describe('startReceiver', () => {
  it('writes a stereo call stream (STREAM_MODE=stereo) as a two-channel WAV named after both labels', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const start = callStartMessage('stereo', identity('call-s', 'CALLER1'), { ...identity('call-s', 'CALLER2'), leg: 'B' }, 8000);
    const frames = [Buffer.alloc(640, 1), Buffer.alloc(640, 2)];
    const client = await connect(receiver.port);
    await sendAll(client, [JSON.stringify(start), ...frames]);
    client.close(1000);
    const summary = await closedStream();
    expect(summary.file.endsWith('call-s-CALLER1_CALLER2.wav')).toBe(true);
    const wav = parseWav(await readFile(summary.file));
    expect(wav).toMatchObject({ channels: 2, sampleRate: 8000, byteRate: 32000, blockAlign: 4, dataSize: 1280 });
  });

  it('writes one stream to a WAV file whose header and data match what was sent', async () => {
    const { receiver, directory, closedStream } = await receiverInTempDir();
    expect(receiver.port).toBeGreaterThan(0);
    const sampleRate = 16000;
    const frames = sineFrames(sampleRate, 1000, 25);
    const who = identity('call-1', 'CALLER1');

    const client = await connect(receiver.port);
    await sendAll(client, [
      Buffer.alloc(640, 0x55), // audio before metadata: not written
      JSON.stringify(startMessage(who, sampleRate)),
      ...frames,
      JSON.stringify(stopMessage(who, 'hangup')),
    ]);
    client.close(1000);
    const summary = await closedStream();

    const expectedBytes = 25 * 640;
    expect(summary).toMatchObject({ label: 'CALLER1', callId: 'call-1', frames: 25, bytes: expectedBytes });
    expect(dirname(summary.file)).toBe(directory);
    expect(summary.file).toBe(join(directory, 'call-1-CALLER1.wav'));

    const file = await readFile(summary.file);
    expect(file.length).toBe(44 + expectedBytes);
    const wav = parseWav(file);
    expect(wav).toMatchObject({
      riff: 'RIFF',
      riffSize: 36 + expectedBytes,
      wave: 'WAVE',
      fmt: 'fmt ',
      fmtSize: 16,
      format: 1,
      channels: 1,
      sampleRate: 16000,
      byteRate: 32000,
      blockAlign: 2,
      bitsPerSample: 16,
      dataTag: 'data',
      dataSize: expectedBytes,
    });
    expect(wav.data.equals(Buffer.concat(frames))).toBe(true);

    // a half-full-scale sine has an RMS of 0.5/sqrt(2), about -9.03 dBFS
    expect(Math.abs(summary.levelDbfs - -9.03)).toBeLessThan(0.2);
  });

  it('keeps each connection of a reconnected stream in its own file', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const meta = JSON.stringify(startMessage(identity('call-r', 'CALLER1'), 8000));
    for (const frameCount of [10, 3]) {
      const client = await connect(receiver.port);
      await sendAll(client, [meta, ...sineFrames(8000, 440, frameCount)]);
      client.close(1000);
    }
    const first = await closedStream();
    const second = await closedStream();
    expect(first.file).not.toBe(second.file);
    const sizes = [(await readFile(first.file)).length, (await readFile(second.file)).length].sort((a, b) => a - b);
    expect(sizes).toEqual([44 + 3 * 320, 44 + 10 * 320]);
  });

  it('gives connections of one stream at once a file each (the name is taken atomically)', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const meta = JSON.stringify(startMessage(identity('call-t', 'CALLER1'), 8000));
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(receiver.port)));
    // Every start message in one turn of the event loop, before any file is open.
    for (const client of clients) client.send(meta);
    await Promise.all(clients.map((client, i) => sendAll(client, sineFrames(8000, 440, i + 1))));
    for (const client of clients) client.close(1000);
    const streams = await Promise.all(clients.map(() => closedStream()));
    expect(new Set(streams.map((stream) => stream.file)).size).toBe(clients.length);
    const sizes = await Promise.all(streams.map(async (stream) => (await readFile(stream.file)).length));
    expect(sizes.sort((a, b) => a - b)).toEqual(clients.map((_, i) => 44 + (i + 1) * 320));
  });

  it('refuses a stream (1011) whose 1,000 file names are all taken, and overwrites none of them', async () => {
    const { receiver, directory } = await receiverInTempDir();
    const taken = ['call-u-CALLER1.wav', ...Array.from({ length: 999 }, (_, i) => `call-u-CALLER1-${i + 2}.wav`)];
    await Promise.all(taken.map((name) => writeFile(join(directory, name), 'kept')));
    const client = await connect(receiver.port);
    const closed = new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));
    await sendAll(client, [JSON.stringify(startMessage(identity('call-u', 'CALLER1'), 8000)), ...sineFrames(8000, 440, 3)]);
    expect(await closed).toBe(1011);
    expect((await readdir(directory)).sort()).toEqual([...taken].sort());
    expect(await readFile(join(directory, 'call-u-CALLER1-1000.wav'), 'utf8')).toBe('kept');
  });

  it('takes the sample rate from the metadata (8 kHz)', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const frames = sineFrames(8000, 500, 10);
    const who = identity('call-2', 'CALLER2');
    const client = await connect(receiver.port);
    await sendAll(client, [JSON.stringify(startMessage(who, 8000)), ...frames]);
    client.close(1000);
    const summary = await closedStream();
    expect(summary).toMatchObject({ label: 'CALLER2', frames: 10, bytes: 3200 });
    const wav = parseWav(await readFile(summary.file));
    expect(wav).toMatchObject({ sampleRate: 8000, byteRate: 16000, channels: 1, dataSize: 3200 });
    expect(wav.data.equals(Buffer.concat(frames))).toBe(true);
  });

  it('writes a file with an empty data chunk when only metadata was sent, with a level of -Infinity', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const client = await connect(receiver.port);
    await sendAll(client, [Buffer.alloc(320, 1), JSON.stringify(startMessage(identity('call-3', 'CALLER1'), 8000))]);
    client.close(1000);
    const summary = await closedStream();
    expect(summary).toMatchObject({ frames: 0, bytes: 0, levelDbfs: -Infinity });
    const file = await readFile(summary.file);
    expect(file.length).toBe(44);
    expect(parseWav(file)).toMatchObject({ riffSize: 36, dataSize: 0 });
  });

  it('keeps the file inside its directory whatever the callId and label say', async () => {
    const { receiver, directory, closedStream } = await receiverInTempDir();
    const client = await connect(receiver.port);
    await sendAll(client, [JSON.stringify(startMessage(identity('../../etc/x', 'A/B C'), 8000)), Buffer.alloc(320)]);
    client.close(1000);
    const summary = await closedStream();
    expect(dirname(summary.file)).toBe(directory);
    expect(summary.file).toBe(join(directory, '.._.._etc_x-A_B_C.wav'));
    expect(summary.callId).toBe('../../etc/x');
  });
});

describe('startReceiver, bounded (anyone who reaches its port can send)', () => {
  const closeCode = (client: WebSocket) => new Promise<number>((resolve) => client.once('close', (code) => resolve(code)));

  it('closes a connection whose message is larger than MAX_MESSAGE_BYTES (1009), and goes on', async () => {
    const { receiver, closedStream } = await receiverInTempDir();
    const client = await connect(receiver.port);
    const closed = closeCode(client);
    await sendAll(client, [JSON.stringify(startMessage(identity('call-big', 'CALLER1'), 8000)), Buffer.alloc(MAX_MESSAGE_BYTES + 1)]);
    expect(await closed).toBe(1009);
    const next = await connect(receiver.port);
    await sendAll(next, [JSON.stringify(startMessage(identity('call-ok', 'CALLER1'), 8000)), Buffer.alloc(640, 3)]);
    next.close(1000);
    const summaries = [await closedStream(), await closedStream()];
    expect(summaries.find((summary) => summary.callId === 'call-ok')?.frames).toBe(1);
  });

  it('survives a file it cannot write: that stream is closed (1011), the next one is written', async () => {
    const { receiver, directory, closedStream } = await receiverInTempDir();
    await rm(directory, { recursive: true, force: true });
    const client = await connect(receiver.port);
    const closed = closeCode(client);
    await sendAll(client, [JSON.stringify(startMessage(identity('call-nodir', 'CALLER1'), 8000)), Buffer.alloc(640, 1)]);
    expect(await closed).toBe(1011);
    await mkdir(directory);
    const next = await connect(receiver.port);
    await sendAll(next, [JSON.stringify(startMessage(identity('call-dir', 'CALLER1'), 8000)), Buffer.alloc(640, 2)]);
    next.close(1000);
    const summary = await closedStream();
    expect(summary).toMatchObject({ callId: 'call-dir', frames: 1 });
  });

  it('logs metadata with masked numbers and DTMF without its digit', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'stream-receiver-'));
    cleanups.push(() => rm(directory, { recursive: true, force: true }));
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const receiver = await startReceiver({ host: '127.0.0.1', port: 0, directory, logger: createLogger('debug', destination) });
    cleanups.push(() => receiver.close());
    // The stream's last line ("stream ended") is written before the receiver reports the stream closed.
    const ended = new Promise<void>((resolve) => receiver.onStreamClosed(() => resolve()));
    const client = await connect(receiver.port);
    await sendAll(client, [
      JSON.stringify(startMessage(identity('call-pii', 'CALLER1'), 8000)),
      JSON.stringify({ event: 'dtmf', label: 'CALLER1', digit: '7', durationMs: 100 }),
    ]);
    client.close(1000);
    await ended;
    const log = lines.join('');
    expect(log).toContain('"caller":"**01"');
    expect(log).toContain('"digit":"[hidden]"');
    expect(log).not.toMatch(/"(1001|1002|7)"/);
  });
});

describe('wavHeader', () => {
  it('is the 44-byte RIFF/WAVE header of 16-bit PCM mono', () => {
    const expected = hex(
      '52494646 a4020000 57415645' + // "RIFF", 36 + 640, "WAVE"
        ' 666d7420 10000000 0100 0100' + // "fmt ", 16, PCM, 1 channel
        ' 803e0000 007d0000 0200 1000' + // 16000 Hz, 32000 bytes/s, block 2, 16 bits
        ' 64617461 80020000', // "data", 640
    );
    expect(wavHeader(16000, 1, 640).toString('hex')).toBe(expected.toString('hex'));
  });

  it('derives byte rate and block alignment from channels', () => {
    const header = parseWav(wavHeader(8000, 2, 0));
    expect(header).toMatchObject({
      channels: 2,
      sampleRate: 8000,
      byteRate: 32000,
      blockAlign: 4,
      bitsPerSample: 16,
      riffSize: 36,
      dataSize: 0,
    });
    expect(header.data.length).toBe(0);
  });
});

describe('sumOfSquares and levelDbfs', () => {
  it('scales samples to -1..1', () => {
    // -32768 -> -1 (1), 16384 -> 0.5 (0.25), 0 -> 0
    expect(sumOfSquares(hex('0080 0040 0000'))).toBeCloseTo(1.25, 10);
    expect(sumOfSquares(hex('0080 00'))).toBeCloseTo(1, 10); // odd trailing byte ignored
  });

  it('gives the RMS level in dBFS, and -Infinity for silence or nothing', () => {
    expect(levelDbfs(1, 1)).toBe(0);
    expect(levelDbfs(1, 100)).toBeCloseTo(-20, 10);
    expect(levelDbfs(0, 100)).toBe(-Infinity);
    expect(levelDbfs(5, 0)).toBe(-Infinity);
  });
});
