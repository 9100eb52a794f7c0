/**
 * Fuzzing of the two wire parsers that take bytes from the network: the RTP
 * packet parser (UDP datagrams from ExternalMedia) and the AudioSocket decoder
 * (a TCP stream). Every case draws from its own seeded PRNG, so a failure names
 * the seed and the input (as hex) and can be replayed; FUZZ_SEED=<n> explores
 * other seeds.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../app/errors.js';
import {
  AudioSocketDecoder,
  type AudioSocketMessage,
  HEADER_BYTES,
  KIND_DTMF,
  KIND_ERROR,
  KIND_HANGUP,
  KIND_UUID,
  MAX_AUDIO_PAYLOAD,
  encodeAudio,
  encodeHangup,
  encodeMessage,
  encodeUuid,
  isAudioKind,
} from '../../app/media/audiosocket-codec.js';
import { parseRtpPacket } from '../../app/media/rtp-packet.js';

const BASE_SEED = Number(process.env.FUZZ_SEED ?? 0x5eed2024) >>> 0;

type Rng = () => number;

/** mulberry32: a small, fast, seedable 32-bit PRNG; returns [0, 1). */
function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max]. */
function int(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng() * (max - min + 1));
}

function chance(rng: Rng, p: number): boolean {
  return rng() < p;
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

function randomBytes(rng: Rng, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let i = 0;
  for (; i + 4 <= length; i += 4) out.writeUInt32LE(Math.floor(rng() * 4294967296), i);
  for (; i < length; i++) out[i] = Math.floor(rng() * 256);
  return out;
}

function hexOf(input: Buffer): string {
  const limit = 4096;
  const text = input.subarray(0, limit).toString('hex');
  return input.length > limit ? `${text}… (${input.length} bytes, first ${limit} shown)` : text;
}

/** What the failing case was fed, for the report. */
interface Trace {
  input: Buffer;
  chunkSizes?: number[];
}

/**
 * Runs `count` cases, each with a PRNG seeded from BASE_SEED and the case
 * number. A failure is rethrown naming the seed, the case and the input.
 */
function fuzz(name: string, count: number, body: (rng: Rng, trace: Trace) => void): void {
  for (let i = 0; i < count; i++) {
    const seed = (BASE_SEED ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
    const trace: Trace = { input: Buffer.alloc(0) };
    try {
      body(mulberry32(seed), trace);
    } catch (error) {
      const chunks = trace.chunkSizes === undefined ? '' : `\n  chunk sizes: ${trace.chunkSizes.join(',')}`;
      throw new Error(
        `${name}: case ${i}, seed 0x${seed.toString(16)} (FUZZ_SEED=${BASE_SEED})\n  input: ${hexOf(trace.input)}${chunks}\n  ${String(error)}`,
        { cause: error },
      );
    }
  }
}

function fail(reason: string): never {
  throw new Error(reason);
}

// ---------------------------------------------------------------- RTP

interface ValidRtp {
  packet: Buffer;
  payload: Buffer;
  csrcs: number[];
}

function validRtp(rng: Rng): ValidRtp {
  const csrcCount = chance(rng, 0.6) ? 0 : int(rng, 0, 15);
  const extensionWords = chance(rng, 0.7) ? -1 : int(rng, 0, chance(rng, 0.8) ? 4 : 64);
  const padding = chance(rng, 0.7) ? 0 : int(rng, 1, 255);
  const payload = randomBytes(rng, pick(rng, [0, 1, 2, 3, 160, 320, 640, int(rng, 0, 1500)]));
  const csrcs = Array.from({ length: csrcCount }, () => Math.floor(rng() * 4294967296));
  const first = 0x80 | (padding > 0 ? 0x20 : 0) | (extensionWords >= 0 ? 0x10 : 0) | csrcCount;
  const fixed = randomBytes(rng, 12);
  fixed[0] = first;
  const parts = [fixed];
  for (const csrc of csrcs) {
    const word = Buffer.alloc(4);
    word.writeUInt32BE(csrc);
    parts.push(word);
  }
  if (extensionWords >= 0) {
    const extension = randomBytes(rng, 4 + extensionWords * 4);
    extension.writeUInt16BE(extensionWords, 2);
    parts.push(extension);
  }
  parts.push(payload);
  if (padding > 0) {
    const pad = randomBytes(rng, padding);
    pad[padding - 1] = padding;
    parts.push(pad);
  }
  return { packet: Buffer.concat(parts), payload, csrcs };
}

/**
 * Parses and checks what came out against an independent reading of the header
 * bits. Returns whether the packet was accepted.
 */
function checkRtp(packet: Buffer): boolean {
  let rtp;
  try {
    rtp = parseRtpPacket(packet);
  } catch (error) {
    if (error instanceof AppError && error.code === 'RTP_PACKET_INVALID') return false;
    throw error;
  }
  const first = packet[0]!;
  if (first >> 6 !== 2) fail(`accepted version ${first >> 6}`);
  const csrcCount = first & 0x0f;
  let headerBytes = 12 + 4 * csrcCount;
  if (first & 0x10) headerBytes += 4 + 4 * packet.readUInt16BE(headerBytes + 2);
  const paddingBytes = first & 0x20 ? packet[packet.length - 1]! : 0;
  if (first & 0x20 && paddingBytes === 0) fail('accepted a padding count of 0');
  const payloadStart = rtp.payload.byteOffset - packet.byteOffset;
  if (rtp.payload.buffer !== packet.buffer) fail('payload is not a view into the packet');
  if (payloadStart < 12 || payloadStart + rtp.payload.length > packet.length) {
    fail(`payload [${payloadStart}, ${payloadStart + rtp.payload.length}) lies outside the ${packet.length}-byte packet`);
  }
  if (payloadStart !== headerBytes) fail(`payload starts at ${payloadStart}, header bits say ${headerBytes}`);
  if (rtp.payload.length !== packet.length - headerBytes - paddingBytes) {
    fail(`payload of ${rtp.payload.length} bytes; header bits say ${packet.length - headerBytes - paddingBytes}`);
  }
  if (rtp.csrcs.length !== csrcCount) fail(`${rtp.csrcs.length} CSRCs, CC says ${csrcCount}`);
  if (rtp.payloadType !== (packet[1]! & 0x7f) || rtp.marker !== (packet[1]! & 0x80) > 0) fail('M/PT misread');
  if (rtp.sequenceNumber !== packet.readUInt16BE(2)) fail('sequence misread');
  if (rtp.timestamp !== packet.readUInt32BE(4) || rtp.ssrc !== packet.readUInt32BE(8)) fail('timestamp/SSRC misread');
  return true;
}

function flipBits(rng: Rng, input: Buffer): Buffer {
  const out = Buffer.from(input);
  if (out.length === 0) return out;
  for (let n = int(rng, 1, 4); n > 0; n--) {
    const at = int(rng, 0, out.length - 1);
    out[at] = out[at]! ^ (1 << int(rng, 0, 7));
  }
  return out;
}

function truncate(rng: Rng, input: Buffer): Buffer {
  return Buffer.from(input.subarray(0, int(rng, 0, Math.max(0, input.length - 1))));
}

function extend(rng: Rng, input: Buffer): Buffer {
  return Buffer.concat([input, randomBytes(rng, int(rng, 1, 64))]);
}

/** Random values in the fields that say how long things are: CC, the extension length, the padding count. */
function randomRtpLengths(rng: Rng, input: Buffer): Buffer {
  const out = Buffer.from(input);
  if (out.length === 0) return out;
  if (chance(rng, 0.5)) out[0] = (out[0]! & 0xf0) | int(rng, 0, 15);
  if (chance(rng, 0.5)) out[0] = out[0]! | 0x10;
  if (chance(rng, 0.5)) out[0] = out[0]! | 0x20;
  const extensionAt = 12 + 4 * (out[0]! & 0x0f) + 2;
  if (chance(rng, 0.6) && extensionAt + 2 <= out.length) out.writeUInt16BE(int(rng, 0, 0xffff), extensionAt);
  if (chance(rng, 0.5)) out[out.length - 1] = int(rng, 0, 255);
  return out;
}

/** A packet of 12 to 24 bytes with any of the P, X and CC bits set. */
function shortWithBits(rng: Rng): Buffer {
  const out = randomBytes(rng, int(rng, 12, 24));
  out[0] = 0x80 | (chance(rng, 0.5) ? 0x20 : 0) | (chance(rng, 0.5) ? 0x10 : 0) | (chance(rng, 0.5) ? int(rng, 1, 15) : 0);
  return out;
}

describe('fuzz: parseRtpPacket', () => {
  it('parses 20,000 valid packets exactly as built', () => {
    fuzz('valid RTP', 20_000, (rng, trace) => {
      const built = validRtp(rng);
      trace.input = built.packet;
      if (!checkRtp(built.packet)) fail('rejected a valid packet');
      const rtp = parseRtpPacket(built.packet);
      if (!rtp.payload.equals(built.payload)) fail('payload differs from the one built');
      if (rtp.csrcs.some((csrc, i) => csrc !== built.csrcs[i])) fail('CSRCs differ');
    });
  });

  it('survives 30,000 random datagrams with only RTP_PACKET_INVALID', () => {
    let accepted = 0;
    fuzz('random RTP', 30_000, (rng, trace) => {
      const packet = randomBytes(rng, pick(rng, [int(rng, 0, 16), int(rng, 0, 64), int(rng, 0, 400)]));
      // Mostly version 2, so the fuzzing reaches past the first check.
      if (packet.length > 0 && chance(rng, 0.8)) packet[0] = 0x80 | (packet[0]! & 0x3f);
      trace.input = packet;
      if (checkRtp(packet)) accepted += 1;
    });
    expect(accepted).toBeGreaterThan(1000);
  });

  it('survives 60,000 mutated packets (bit flips, truncation, extension, random lengths, bits on short packets)', () => {
    const mutations = [flipBits, truncate, extend, randomRtpLengths];
    const outcomes = { accepted: 0, rejected: 0 };
    fuzz('mutated RTP', 60_000, (rng, trace) => {
      let packet: Buffer;
      if (chance(rng, 0.15)) {
        packet = shortWithBits(rng);
      } else {
        packet = validRtp(rng).packet;
        for (let n = int(rng, 1, 3); n > 0; n--) packet = pick(rng, mutations)(rng, packet);
      }
      trace.input = packet;
      outcomes[checkRtp(packet) ? 'accepted' : 'rejected'] += 1;
    });
    expect(outcomes.accepted).toBeGreaterThan(5000);
    expect(outcomes.rejected).toBeGreaterThan(5000);
  });

  it('parses valid packets that arrive between garbage datagrams', () => {
    fuzz('RTP after garbage', 2000, (rng, trace) => {
      for (let n = int(rng, 1, 10); n > 0; n--) {
        const garbage = chance(rng, 0.5) ? randomBytes(rng, int(rng, 0, 100)) : flipBits(rng, truncate(rng, validRtp(rng).packet));
        trace.input = garbage;
        checkRtp(garbage);
        const built = validRtp(rng);
        trace.input = built.packet;
        if (!checkRtp(built.packet) || !parseRtpPacket(built.packet).payload.equals(built.payload)) {
          fail('a valid packet after garbage was not parsed');
        }
      }
    });
  });
});

// ---------------------------------------------------------------- AudioSocket

const AUDIO_KINDS = [0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18];
const KNOWN_KINDS = new Set([KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_ERROR, ...AUDIO_KINDS]);
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Encoded {
  bytes: Buffer;
  message: AudioSocketMessage;
}

/** A random valid message; audio payloads of up to `maxPayload` bytes, or of the maximum with probability `maximal`. */
function randomMessage(rng: Rng, maxPayload: number, maximal = 0): Encoded {
  const roll = rng();
  if (roll < 0.5) {
    const kind = pick(rng, AUDIO_KINDS);
    const length = chance(rng, maximal) ? MAX_AUDIO_PAYLOAD : 2 * int(rng, 0, maxPayload / 2);
    const payload = randomBytes(rng, length);
    return { bytes: encodeAudio(kind, payload), message: { type: 'audio', kind, payload } };
  }
  if (roll < 0.6) {
    const raw = randomBytes(rng, 16).toString('hex');
    const uuid = `${raw.slice(0, 8)}-${raw.slice(8, 12)}-${raw.slice(12, 16)}-${raw.slice(16, 20)}-${raw.slice(20)}`;
    return { bytes: encodeUuid(uuid), message: { type: 'uuid', uuid } };
  }
  if (roll < 0.7) {
    const digit = pick(rng, [...'0123456789*#ABCD']);
    return { bytes: encodeMessage(KIND_DTMF, Buffer.from(digit, 'latin1')), message: { type: 'dtmf', digit } };
  }
  if (roll < 0.75) return { bytes: encodeHangup(), message: { type: 'hangup' } };
  if (roll < 0.85) {
    if (chance(rng, 0.5)) return { bytes: encodeMessage(KIND_ERROR, Buffer.alloc(0)), message: { type: 'error' } };
    const code = int(rng, 0, 255);
    return { bytes: encodeMessage(KIND_ERROR, Buffer.from([code])), message: { type: 'error', code } };
  }
  let kind = int(rng, 0, 255);
  while (KNOWN_KINDS.has(kind)) kind = int(rng, 0, 255);
  const length = int(rng, 0, maxPayload);
  return { bytes: encodeMessage(kind, randomBytes(rng, length)), message: { type: 'unknown', kind, length } };
}

function randomStream(rng: Rng, messages: number, maxPayload: number, maximal = 0): { bytes: Buffer; messages: AudioSocketMessage[] } {
  const encoded = Array.from({ length: messages }, () => randomMessage(rng, maxPayload, maximal));
  return { bytes: Buffer.concat(encoded.map((e) => e.bytes)), messages: encoded.map((e) => e.message) };
}

/** Cuts `bytes` into chunks of random sizes: single bytes, header-sized bits, frame-sized and large reads. */
function randomChunks(rng: Rng, bytes: Buffer): Buffer[] {
  const style = int(rng, 0, 3);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length;) {
    const size =
      style === 0
        ? int(rng, 1, 4)
        : style === 1
          ? int(rng, 1, 700)
          : style === 2
            ? int(rng, 1, 65_536)
            : pick(rng, [1, 2, 3, 643, int(rng, 1, 5000)]);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  if (chance(rng, 0.1)) chunks.splice(int(rng, 0, chunks.length), 0, Buffer.alloc(0));
  return chunks;
}

function sameMessage(a: AudioSocketMessage, b: AudioSocketMessage): boolean {
  switch (a.type) {
    case 'audio':
      return b.type === 'audio' && a.kind === b.kind && a.payload.equals(b.payload);
    case 'uuid':
      return b.type === 'uuid' && a.uuid === b.uuid;
    case 'dtmf':
      return b.type === 'dtmf' && a.digit === b.digit;
    case 'hangup':
      return b.type === 'hangup';
    case 'error':
      return b.type === 'error' && a.code === b.code && 'code' in a === 'code' in b;
    case 'unknown':
      return b.type === 'unknown' && a.kind === b.kind && a.length === b.length;
  }
}

function describeMessage(message: AudioSocketMessage | undefined): string {
  if (message === undefined) return 'nothing';
  if (message.type === 'audio') return `audio kind 0x${message.kind.toString(16)} of ${message.payload.length} bytes`;
  return JSON.stringify(message);
}

/** Whatever the decoder emits, even from garbage, must be well formed. */
function checkWellFormed(message: AudioSocketMessage): void {
  const ok =
    message.type === 'audio'
      ? isAudioKind(message.kind) && message.payload.length <= MAX_AUDIO_PAYLOAD
      : message.type === 'uuid'
        ? UUID_PATTERN.test(message.uuid)
        : message.type === 'dtmf'
          ? message.digit.length === 1
          : message.type === 'error'
            ? message.code === undefined || (Number.isInteger(message.code) && message.code >= 0 && message.code <= 255)
            : message.type === 'unknown'
              ? !KNOWN_KINDS.has(message.kind) && message.length <= MAX_AUDIO_PAYLOAD
              : message.type === 'hangup';
  if (!ok) fail(`malformed message ${describeMessage(message)}`);
}

interface Decoded {
  messages: AudioSocketMessage[];
  failed: boolean;
}

/**
 * Feeds the chunks to one decoder. Only AUDIOSOCKET_FRAME_INVALID may escape;
 * once failed, the next push must fail the same way (then, like the caller
 * closing the connection, feeding stops); the decoder never holds more than
 * one maximal message.
 */
function decodeChunks(chunks: Buffer[]): Decoded {
  const decoder = new AudioSocketDecoder();
  const messages: AudioSocketMessage[] = [];
  let failed = false;
  for (const chunk of chunks) {
    try {
      const out = decoder.push(chunk);
      if (failed) fail('push() succeeded after the decoder had failed');
      messages.push(...out);
    } catch (error) {
      if (!(error instanceof AppError) || error.code !== 'AUDIOSOCKET_FRAME_INVALID') throw error;
      const before = (error as AppError & { messages?: AudioSocketMessage[] }).messages ?? [];
      if (failed) {
        if (before.length > 0) fail('a later failure handed over messages again');
        break;
      }
      messages.push(...before);
      failed = true;
    }
    if (decoder.bufferedBytes > HEADER_BYTES + MAX_AUDIO_PAYLOAD) fail(`decoder holds ${decoder.bufferedBytes} bytes`);
  }
  if (failed && chunks.length > 0) {
    // Whether or not a chunk was left, one more push must still throw the codec's own error.
    let code: unknown;
    try {
      decoder.push(Buffer.alloc(0));
    } catch (error) {
      code = error instanceof AppError ? error.code : error;
    }
    if (code !== 'AUDIOSOCKET_FRAME_INVALID') fail(`after failing, push() gave ${String(code)}`);
  }
  for (const message of messages) checkWellFormed(message);
  return { messages, failed };
}

function expectMessages(actual: AudioSocketMessage[], expected: AudioSocketMessage[], exact: boolean): void {
  if (exact && actual.length !== expected.length) fail(`decoded ${actual.length} messages, encoded ${expected.length}`);
  expected.forEach((message, i) => {
    const got = actual[i];
    if (got === undefined || !sameMessage(message, got)) {
      fail(`message ${i}: decoded ${describeMessage(got)}, encoded ${describeMessage(message)}`);
    }
  });
}

function recordChunks(trace: Trace, bytes: Buffer, chunks: Buffer[]): void {
  trace.input = bytes;
  trace.chunkSizes = chunks.map((c) => c.length);
}

/** Mutations of a stream: bit flips, truncation, extension, random kinds and lengths in headers. */
function mutateStream(rng: Rng, bytes: Buffer, headerOffsets: number[]): Buffer {
  let out: Buffer = Buffer.from(bytes);
  for (let n = int(rng, 1, 3); n > 0; n--) {
    switch (int(rng, 0, 4)) {
      case 0:
        out = flipBits(rng, out);
        break;
      case 1:
        out = truncate(rng, out);
        break;
      case 2:
        out = extend(rng, out);
        break;
      case 3: {
        const at = pick(rng, headerOffsets);
        if (at + 3 <= out.length) out.writeUInt16BE(chance(rng, 0.5) ? int(rng, 0, 0xffff) : int(rng, 0, 64), at + 1);
        break;
      }
      default: {
        const at = pick(rng, headerOffsets);
        if (at < out.length) out[at] = chance(rng, 0.5) ? int(rng, 0, 255) : pick(rng, [...KNOWN_KINDS]);
      }
    }
  }
  return out;
}

describe('fuzz: AudioSocketDecoder', () => {
  it('round-trips 5,000 valid streams cut into random chunks', () => {
    fuzz('AudioSocket round trip', 5000, (rng, trace) => {
      const stream = randomStream(rng, int(rng, 1, 20), pick(rng, [8, 700, 4000]), 0.01);
      const chunks = randomChunks(rng, stream.bytes);
      recordChunks(trace, stream.bytes, chunks);
      const decoded = decodeChunks(chunks);
      if (decoded.failed) fail('a valid stream failed');
      expectMessages(decoded.messages, stream.messages, true);
    });
  });

  it('survives 50,000 random byte streams with only AUDIOSOCKET_FRAME_INVALID', () => {
    const outcomes = { failed: 0, decoded: 0 };
    fuzz('random AudioSocket', 50_000, (rng, trace) => {
      const bytes = randomBytes(rng, pick(rng, [int(rng, 0, 8), int(rng, 0, 64), int(rng, 0, 1000)]));
      // Bias some headers towards plausible kinds and small lengths, so decoding goes past the first message.
      if (bytes.length >= 3 && chance(rng, 0.5)) {
        bytes[0] = pick(rng, [...KNOWN_KINDS, 0x42]);
        bytes.writeUInt16BE(int(rng, 0, 40), 1);
      }
      const chunks = randomChunks(rng, bytes);
      recordChunks(trace, bytes, chunks);
      outcomes[decodeChunks(chunks).failed ? 'failed' : 'decoded'] += 1;
    });
    expect(outcomes.failed).toBeGreaterThan(1000);
    expect(outcomes.decoded).toBeGreaterThan(1000);
  });

  it('survives 50,000 mutated streams (bit flips, truncation, extension, random kinds and lengths)', () => {
    fuzz('mutated AudioSocket', 50_000, (rng, trace) => {
      const encoded = Array.from({ length: int(rng, 1, 8) }, () => randomMessage(rng, 400));
      const headerOffsets: number[] = [];
      let at = 0;
      for (const e of encoded) {
        headerOffsets.push(at);
        at += e.bytes.length;
      }
      const bytes = mutateStream(rng, Buffer.concat(encoded.map((e) => e.bytes)), headerOffsets);
      const chunks = randomChunks(rng, bytes);
      recordChunks(trace, bytes, chunks);
      decodeChunks(chunks);
    });
  });

  it('decodes the valid messages before a stretch of garbage, then fails only with its own code', () => {
    fuzz('AudioSocket valid then garbage', 5000, (rng, trace) => {
      const valid = randomStream(rng, int(rng, 1, 10), 700);
      const garbage = chance(rng, 0.5)
        ? randomBytes(rng, int(rng, 1, 2000))
        : mutateStream(rng, randomStream(rng, int(rng, 1, 5), 100).bytes, [0]);
      const bytes = Buffer.concat([valid.bytes, garbage]);
      const chunks = randomChunks(rng, bytes);
      recordChunks(trace, bytes, chunks);
      expectMessages(decodeChunks(chunks).messages, valid.messages, false);
    });
  });
});
