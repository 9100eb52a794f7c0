import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { codeOf } from '../support/bytes.js';
import { decodeUlaw, encodeUlaw } from '../../app/media/g711.js';
import {
  TWILIO_FRAME_BYTES,
  TwilioMessageEncoder,
  type TwilioStreamIds,
  type TwilioTrack,
  twilioSid,
} from '../../app/transcription/twilio-messages.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/** Twilio's published example of one message (test/fixtures/twilio/, see its README). */
function fixture(name: 'connected' | 'start' | 'media' | 'dtmf' | 'stop'): Record<string, Json> {
  return JSON.parse(readFileSync(new URL(`../fixtures/twilio/${name}.json`, import.meta.url), 'utf8')) as Record<string, Json>;
}

function jsonType(value: Json): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value as JsonType;
}

/**
 * Every path of a JSON value with its type, in document order (`$.start.tracks[]`
 * stands for every element). Below an `opaque` path only its own type counts.
 */
function jsonShape(value: Json, opaque: readonly string[] = [], path = '$'): [string, JsonType][] {
  const here: [string, JsonType][] = [[path, jsonType(value)]];
  if (opaque.includes(path) || value === null || typeof value !== 'object') return here;
  const below = Array.isArray(value)
    ? value.flatMap((item) => jsonShape(item, opaque, `${path}[]`))
    : Object.entries(value).flatMap(([key, item]) => jsonShape(item, opaque, `${path}.${key}`));
  const seen = new Set<string>();
  return [...here, ...below.filter(([p, type]) => !seen.has(`${p}:${type}`) && seen.add(`${p}:${type}`))];
}

/** The message has the fixture's keys, at every depth, with the same JSON types and in the same order. */
function expectShapeOf(text: string, expected: Record<string, Json>, opaque: readonly string[] = []): void {
  const actual = jsonShape(JSON.parse(text) as Json, opaque);
  const wanted = jsonShape(expected, opaque);
  expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(wanted));
  expect(actual.map(([path]) => path)).toEqual(wanted.map(([path]) => path));
}

interface MediaFields {
  sequenceNumber: string;
  media: { track: TwilioTrack; chunk: string; timestamp: string; payload: string };
  streamSid: string;
}

function parseMedia(text: string): MediaFields {
  return JSON.parse(text) as MediaFields;
}

const SID = /^(AC|CA|MZ)[0-9a-f]{32}$/;
const ids: TwilioStreamIds = {
  accountSid: twilioSid('AC', '0123456789abcdef0123456789abcdef'),
  callSid: twilioSid('CA', 'fedcba9876543210fedcba9876543210'),
  streamSid: twilioSid('MZ', '00112233445566778899aabbccddeeff'),
};
const customParameters = { callId: 'call-42', label: 'CALLER1' };

/** 20 ms of a sine at `hz`, 8 kHz, little-endian L16, peak 16000. */
function toneFrame(hz: number, firstSample = 0): Buffer {
  const frame = Buffer.alloc(TWILIO_FRAME_BYTES);
  for (let i = 0; i < TWILIO_FRAME_BYTES / 2; i++) {
    frame.writeInt16LE(Math.round(16000 * Math.sin((2 * Math.PI * hz * (firstSample + i)) / 8000)), i * 2);
  }
  return frame;
}

const silence = Buffer.alloc(TWILIO_FRAME_BYTES);

function bothTracks(): TwilioMessageEncoder {
  return new TwilioMessageEncoder(ids, ['inbound', 'outbound'], customParameters);
}

describe('twilioSid', () => {
  it("makes random SIDs in Twilio's shape: prefix and 32 lower-case hex digits", () => {
    const sids = (['AC', 'CA', 'MZ'] as const).flatMap((prefix) => [twilioSid(prefix), twilioSid(prefix)]);
    for (const sid of sids) expect(sid).toMatch(SID);
    expect(new Set(sids).size).toBe(sids.length);
    expect(sids[0]?.startsWith('AC')).toBe(true);
  });

  it('uses given digits, lower-cased', () => {
    expect(twilioSid('MZ', '92FD0A8252929ADB108B724F970EAEBB')).toBe('MZ92fd0a8252929adb108b724f970eaebb');
    for (const sid of Object.values(ids)) expect(sid).toMatch(SID);
  });

  it('throws TWILIO_MESSAGE_INVALID unless the digits are 32 hexadecimal digits', () => {
    expect(codeOf(() => twilioSid('AC', '0'.repeat(31)))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => twilioSid('AC', '0'.repeat(33)))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => twilioSid('AC', 'g'.repeat(32)))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => twilioSid('AC', 'X'.repeat(30)))).toBe('TWILIO_MESSAGE_INVALID'); // the doc's placeholder
  });
});

describe("TwilioMessageEncoder: messages in the shape of Twilio's examples", () => {
  it('opens with connected then start', () => {
    const texts = bothTracks().opening();
    expect(texts.map((text) => (JSON.parse(text) as { event: string }).event)).toEqual(['connected', 'start']);
  });

  it("connected is Twilio's example exactly, with no sequenceNumber and no streamSid", () => {
    const [connected] = bothTracks().opening();
    expectShapeOf(connected!, fixture('connected'));
    expect(JSON.parse(connected!)).toEqual(fixture('connected'));
  });

  it('start has the example\'s keys and types, sequenceNumber "1", the SIDs, tracks and media format', () => {
    const [, start] = bothTracks().opening();
    expectShapeOf(start!, fixture('start'), ['$.start.customParameters']);
    const parsed = JSON.parse(start!) as Record<string, Json>;
    expect(parsed).toEqual({
      event: 'start',
      sequenceNumber: '1',
      start: {
        accountSid: ids.accountSid,
        streamSid: ids.streamSid,
        callSid: ids.callSid,
        tracks: ['inbound', 'outbound'],
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
        customParameters,
      },
      streamSid: ids.streamSid,
    });
    expect((parsed.start as Record<string, Json>).mediaFormat).toEqual((fixture('start').start as Record<string, Json>).mediaFormat);
  });

  it('start carries the custom parameters as they were when the encoder was made, string values only', () => {
    const parameters: Record<string, string> = { FirstName: 'Jane' };
    const encoder = new TwilioMessageEncoder(ids, ['inbound'], parameters);
    parameters.FirstName = 'changed';
    const [, start] = encoder.opening();
    expect((JSON.parse(start!) as { start: { customParameters: unknown } }).start.customParameters).toEqual({ FirstName: 'Jane' });
    expect(codeOf(() => new TwilioMessageEncoder(ids, ['inbound'], { n: 1 } as unknown as Record<string, string>))).toBe(
      'TWILIO_MESSAGE_INVALID',
    );
  });

  it('start with no custom parameters has an empty object', () => {
    const [, start] = new TwilioMessageEncoder(ids, ['inbound'], {}).opening();
    expectShapeOf(start!, fixture('start'), ['$.start.customParameters']);
    expect((JSON.parse(start!) as { start: { customParameters: unknown } }).start.customParameters).toEqual({});
  });

  it("media has the example's keys and types", () => {
    const encoder = bothTracks();
    encoder.opening();
    expectShapeOf(encoder.media('outbound', silence, 1_005), fixture('media'));
  });

  it('dtmf has the example\'s keys, types and track "inbound_track"', () => {
    const encoder = new TwilioMessageEncoder(ids, ['inbound'], {});
    encoder.opening();
    const dtmf = encoder.dtmf('1');
    expectShapeOf(dtmf, fixture('dtmf'));
    expect(JSON.parse(dtmf)).toEqual({
      event: 'dtmf',
      streamSid: ids.streamSid,
      sequenceNumber: '2',
      dtmf: { track: 'inbound_track', digit: '1' },
    });
  });

  it("stop has the example's keys and types, and the account and call SIDs", () => {
    const encoder = bothTracks();
    encoder.opening();
    const stop = encoder.stop();
    expectShapeOf(stop, fixture('stop'));
    expect(JSON.parse(stop)).toEqual({
      event: 'stop',
      sequenceNumber: '2',
      stop: { accountSid: ids.accountSid, callSid: ids.callSid },
      streamSid: ids.streamSid,
    });
  });

  it('puts the top-level streamSid on every message after connected', () => {
    const encoder = bothTracks();
    const [connected, ...rest] = encoder.opening();
    rest.push(encoder.media('inbound', silence, 0), encoder.dtmf('#'), encoder.stop());
    expect(JSON.parse(connected!)).not.toHaveProperty('streamSid');
    for (const text of rest) expect((JSON.parse(text) as { streamSid: string }).streamSid).toBe(ids.streamSid);
  });
});

describe('TwilioMessageEncoder: counters and clocks', () => {
  it('numbers every message after connected from "1", across tracks, with a chunk counter per track', () => {
    const encoder = bothTracks();
    encoder.opening();
    const tracks: TwilioTrack[] = ['inbound', 'outbound', 'inbound', 'inbound', 'outbound'];
    const media = tracks.map((track, i) => parseMedia(encoder.media(track, silence, 1_000 + i)));
    expect(media.map((m) => [m.sequenceNumber, m.media.track, m.media.chunk])).toEqual([
      ['2', 'inbound', '1'],
      ['3', 'outbound', '1'],
      ['4', 'inbound', '2'],
      ['5', 'inbound', '3'],
      ['6', 'outbound', '2'],
    ]);
    expect((JSON.parse(encoder.dtmf('5')) as { sequenceNumber: string }).sequenceNumber).toBe('7');
    expect((JSON.parse(encoder.stop()) as { sequenceNumber: string }).sequenceNumber).toBe('8');
  });

  it("stamps each frame with its position in its track's audio (ms), so a gap shows", () => {
    const encoder = bothTracks();
    encoder.opening();
    const stamp = (track: TwilioTrack, positionMs: number): string => parseMedia(encoder.media(track, silence, positionMs)).media.timestamp;
    expect(stamp('inbound', 0)).toBe('0');
    expect(stamp('outbound', 0)).toBe('0');
    expect(stamp('inbound', 20)).toBe('20');
    expect(stamp('inbound', 1040)).toBe('1040');
    expect(stamp('outbound', 20.4)).toBe('20');
  });

  it('goes on counting across connections: a reconnection continues sequenceNumber and chunks, and its start says it resumed', () => {
    const encoder = bothTracks();
    encoder.opening();
    encoder.media('inbound', silence, 0);
    encoder.media('inbound', silence, 20);
    encoder.media('outbound', silence, 0);
    const [connected, start] = encoder.opening({ positionMs: 40, droppedMs: 60 });
    expect(JSON.parse(connected!)).toEqual(fixture('connected'));
    const parsed = JSON.parse(start!) as { sequenceNumber: string; start: { customParameters: Record<string, string> } };
    expect(parsed.sequenceNumber).toBe('5');
    expect(parsed.start.customParameters).toEqual({ ...customParameters, resumed: 'true', positionMs: '40', droppedMs: '60' });
    const outbound = parseMedia(encoder.media('outbound', silence, 100));
    const inbound = parseMedia(encoder.media('inbound', silence, 100));
    expect([outbound.sequenceNumber, outbound.media.chunk, outbound.media.timestamp]).toEqual(['6', '2', '100']);
    expect([inbound.sequenceNumber, inbound.media.chunk, inbound.media.timestamp]).toEqual(['7', '3', '100']);
  });
});

describe('TwilioMessageEncoder: media payload', () => {
  it('is base64 of the 160 µ-law bytes of a 320-byte frame', () => {
    const encoder = bothTracks();
    encoder.opening();
    const frame = toneFrame(1_000);
    const { payload } = parseMedia(encoder.media('inbound', frame, 0)).media;
    expect(payload).toMatch(/^[A-Za-z0-9+/]{214}==$/);
    const ulaw = Buffer.from(payload, 'base64');
    expect(ulaw.length).toBe(160);
    expect(ulaw.equals(encodeUlaw(frame))).toBe(true);
  });

  it("decodes back to the tone within G.711's error", () => {
    const encoder = bothTracks();
    encoder.opening();
    const frame = toneFrame(440, 160);
    const decoded = decodeUlaw(Buffer.from(parseMedia(encoder.media('outbound', frame, 0)).media.payload, 'base64'));
    expect(decoded.length).toBe(frame.length);
    const tooFar: number[] = [];
    for (let i = 0; i < 160; i++) {
      const [x, y] = [frame.readInt16LE(i * 2), decoded.readInt16LE(i * 2)];
      if (Math.abs(y - x) > (Math.abs(x) + 0x84) / 32) tooFar.push(i);
    }
    expect(tooFar).toEqual([]);
  });

  it('encodes silence as 0xFF bytes', () => {
    const encoder = bothTracks();
    encoder.opening();
    expect(Buffer.from(parseMedia(encoder.media('inbound', silence, 0)).media.payload, 'base64').equals(Buffer.alloc(160, 0xff))).toBe(
      true,
    );
  });
});

describe('TwilioMessageEncoder: misuse throws TWILIO_MESSAGE_INVALID', () => {
  it('before opening()', () => {
    const encoder = bothTracks();
    expect(codeOf(() => encoder.media('inbound', silence, 0))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => encoder.dtmf('1'))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => encoder.stop())).toBe('TWILIO_MESSAGE_INVALID');
  });

  it('on a frame that is not 20 ms of 8 kHz L16, or a track the stream does not have', () => {
    const encoder = new TwilioMessageEncoder(ids, ['inbound'], {});
    encoder.opening();
    expect(codeOf(() => encoder.media('inbound', Buffer.alloc(319), 0))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => encoder.media('inbound', Buffer.alloc(640), 0))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => encoder.media('outbound', silence, 0))).toBe('TWILIO_MESSAGE_INVALID');
    // A refused frame takes no sequence number.
    expect(parseMedia(encoder.media('inbound', silence, 0)).sequenceNumber).toBe('2');
  });

  it('on a position that is not finite, a DTMF digit outside 0-9 A-D * #, or no or repeated tracks', () => {
    const encoder = bothTracks();
    encoder.opening();
    expect(codeOf(() => encoder.media('inbound', silence, Number.POSITIVE_INFINITY))).toBe('TWILIO_MESSAGE_INVALID');
    for (const digit of ['', '12', 'E', 'a', ' ']) expect(codeOf(() => encoder.dtmf(digit))).toBe('TWILIO_MESSAGE_INVALID');
    for (const digit of ['0', '9', 'A', 'D', '*', '#']) expect(JSON.parse(encoder.dtmf(digit))).toMatchObject({ dtmf: { digit } });
    expect(codeOf(() => new TwilioMessageEncoder(ids, [], {}))).toBe('TWILIO_MESSAGE_INVALID');
    expect(codeOf(() => new TwilioMessageEncoder(ids, ['inbound', 'inbound'], {}))).toBe('TWILIO_MESSAGE_INVALID');
  });
});
