import { describe, expect, it } from 'vitest';
import { hex, codeOf } from '../support/bytes.js';
import {
  AudioSocketDecoder,
  type AudioSocketMessage,
  HEADER_BYTES,
  KIND_DTMF,
  KIND_ERROR,
  KIND_HANGUP,
  KIND_SLIN,
  KIND_SLIN16,
  KIND_UUID,
  MAX_AUDIO_PAYLOAD,
  encodeAudio,
  encodeHangup,
  encodeMessage,
  encodeUuid,
  sampleRateOfKind,
} from '../../app/media/audiosocket-codec.js';

function errorOf(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

/** 320 little-endian samples of a ramp: sample i is i * 100 - 16000. */
function rampPayload(): Buffer {
  const payload = Buffer.alloc(640);
  for (let i = 0; i < 320; i++) payload.writeInt16LE(i * 100 - 16_000, i * 2);
  return payload;
}

const UUID_HEX = '01 0010 0c6d3b4e 9f1a 4b2c 8d3e 5f6a7b8c9d0e';
const UUID = '0c6d3b4e-9f1a-4b2c-8d3e-5f6a7b8c9d0e';

function decodeAll(...chunks: Buffer[]): AudioSocketMessage[] {
  const decoder = new AudioSocketDecoder();
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

describe('AudioSocketDecoder', () => {
  it('decodes a UUID message to the canonical lowercase form', () => {
    expect(decodeAll(hex(UUID_HEX))).toEqual([{ type: 'uuid', uuid: UUID }]);
    expect(decodeAll(hex('01 0010 ABCDEF01 2345 6789 ABCD EF0123456789'))).toEqual([
      { type: 'uuid', uuid: 'abcdef01-2345-6789-abcd-ef0123456789' },
    ]);
  });

  it('decodes a 640-byte slin16 message (kind 0x12) and hands back its little-endian payload', () => {
    const payload = rampPayload();
    expect(payload.subarray(0, 6).toString('hex')).toBe('80c1e4c148c2'); // -16000, -15900, -15800 little-endian
    const message = Buffer.concat([hex('12 0280'), payload]);
    const [decoded, ...rest] = decodeAll(message);
    expect(rest).toEqual([]);
    expect(decoded).toMatchObject({ type: 'audio', kind: 0x12 });
    expect(decoded?.type === 'audio' && decoded.payload.equals(payload)).toBe(true);
  });

  it('reports 0x10 as it is, without deciding its rate', () => {
    expect(decodeAll(hex('10 0004 0100 0200'))).toEqual([{ type: 'audio', kind: 0x10, payload: hex('0100 0200') }]);
  });

  it('decodes DTMF, hangup and errors with and without a code', () => {
    expect(decodeAll(hex('03 0001 35'))).toEqual([{ type: 'dtmf', digit: '5' }]);
    expect(decodeAll(hex('03 0001 23'))).toEqual([{ type: 'dtmf', digit: '#' }]);
    expect(decodeAll(hex('00 0000'))).toEqual([{ type: 'hangup' }]);
    expect(decodeAll(hex('ff 0000'))).toEqual([{ type: 'error' }]);
    expect(decodeAll(hex('ff 0001 02'))).toEqual([{ type: 'error', code: 2 }]);
  });

  it('accepts an empty audio frame', () => {
    expect(decodeAll(hex('12 0000'))).toEqual([{ type: 'audio', kind: 0x12, payload: Buffer.alloc(0) }]);
  });

  it('skips an unknown kind by its length and decodes the next message', () => {
    expect(decodeAll(hex('42 0003 aabbcc 03 0001 37'))).toEqual([
      { type: 'unknown', kind: 0x42, length: 3 },
      { type: 'dtmf', digit: '7' },
    ]);
    expect(decodeAll(hex('02 0000 00 0000'))).toEqual([{ type: 'unknown', kind: 0x02, length: 0 }, { type: 'hangup' }]);
  });

  it('decodes a stream split at every byte position, including inside the header', () => {
    const stream = hex(`${UUID_HEX} 12 0006 010002000300 03 0001 39 ff 0001 04 42 0002 abcd 00 0000`);
    const expected: AudioSocketMessage[] = [
      { type: 'uuid', uuid: UUID },
      { type: 'audio', kind: 0x12, payload: hex('010002000300') },
      { type: 'dtmf', digit: '9' },
      { type: 'error', code: 4 },
      { type: 'unknown', kind: 0x42, length: 2 },
      { type: 'hangup' },
    ];
    for (let split = 0; split <= stream.length; split++) {
      expect(decodeAll(stream.subarray(0, split), stream.subarray(split)), `split at ${split}`).toEqual(expected);
    }
  });

  it('decodes a stream split at every pair of positions', () => {
    const stream = hex(`03 0001 31 12 0004 aabb ccdd 00 0000`);
    const expected: AudioSocketMessage[] = [
      { type: 'dtmf', digit: '1' },
      { type: 'audio', kind: 0x12, payload: hex('aabbccdd') },
      { type: 'hangup' },
    ];
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const chunks = [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)];
        expect(decodeAll(...chunks), `splits at ${a}, ${b}`).toEqual(expected);
      }
    }
  });

  it('decodes a stream fed one byte at a time', () => {
    const stream = hex(`${UUID_HEX} 10 0002 ff7f 00 0000`);
    const chunks = [...stream].map((byte) => Buffer.from([byte]));
    expect(decodeAll(...chunks)).toEqual([
      { type: 'uuid', uuid: UUID },
      { type: 'audio', kind: 0x10, payload: hex('ff7f') },
      { type: 'hangup' },
    ]);
  });

  it('returns all of three messages that arrive in one chunk', () => {
    expect(decodeAll(hex(`${UUID_HEX} 12 0002 3412 03 0001 2a`))).toEqual([
      { type: 'uuid', uuid: UUID },
      { type: 'audio', kind: 0x12, payload: hex('3412') },
      { type: 'dtmf', digit: '*' },
    ]);
  });

  it('holds a chunk ending mid-payload until the rest arrives', () => {
    const decoder = new AudioSocketDecoder();
    expect(decoder.push(hex('03 0001 31 12 0280 0102 0304'))).toEqual([{ type: 'dtmf', digit: '1' }]);
    expect(decoder.bufferedBytes).toBe(4);
    const rest = Buffer.alloc(636, 0xab);
    const [audio, ...others] = decoder.push(Buffer.concat([rest, hex('00 0000')]));
    expect(audio?.type === 'audio' && audio.payload.equals(Buffer.concat([hex('0102 0304'), rest]))).toBe(true);
    expect(others).toEqual([{ type: 'hangup' }]);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('holds at most one incomplete message, however large the chunk', () => {
    const decoder = new AudioSocketDecoder();
    const frames = Array.from({ length: 100 }, () => encodeAudio(KIND_SLIN16, rampPayload()));
    const tail = encodeAudio(KIND_SLIN16, Buffer.alloc(MAX_AUDIO_PAYLOAD)).subarray(0, -1);
    expect(decoder.push(Buffer.concat([...frames, tail]))).toHaveLength(100);
    // The tail's header is already parsed: what is held is its payload so far.
    expect(decoder.bufferedBytes).toBe(MAX_AUDIO_PAYLOAD - 1);
    expect(decoder.bufferedBytes).toBeLessThan(HEADER_BYTES + MAX_AUDIO_PAYLOAD);
  });

  it('accepts a payload of exactly MAX_AUDIO_PAYLOAD (38400) bytes', () => {
    expect(MAX_AUDIO_PAYLOAD).toBe(38_400);
    const [message] = decodeAll(Buffer.concat([hex('18 9600'), Buffer.alloc(38_400, 1)]));
    expect(message?.type === 'audio' && message.payload.length).toBe(38_400);
  });

  describe('rejects impossible messages with AUDIOSOCKET_FRAME_INVALID', () => {
    const cases: [string, string][] = [
      ['audio one byte longer than the maximum', '10 9601'],
      ['audio of 65535 bytes', '12 ffff'],
      ['an unknown kind longer than the maximum', '42 9601'],
      ['an error message longer than the maximum', 'ff 9601'],
      ['a UUID of 15 bytes', '01 000f 0c6d3b4e9f1a4b2c8d3e5f6a7b8c9d'],
      ['a UUID of 17 bytes', '01 0011 0c6d3b4e9f1a4b2c8d3e5f6a7b8c9d0e00'],
      ['an empty UUID', '01 0000'],
      ['an empty DTMF', '03 0000'],
      ['a DTMF of two bytes', '03 0002 3132'],
    ];
    it.each(cases)('%s', (_name, text) => {
      expect(codeOf(() => decodeAll(hex(text)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    });

    it('fails on the header, without waiting for the payload', () => {
      expect(codeOf(() => new AudioSocketDecoder().push(hex('10 9601')))).toBe('AUDIOSOCKET_FRAME_INVALID');
      expect(codeOf(() => new AudioSocketDecoder().push(hex('01 0004')))).toBe('AUDIOSOCKET_FRAME_INVALID');
    });

    it('stays failed: every later push throws the same code', () => {
      const decoder = new AudioSocketDecoder();
      expect(codeOf(() => decoder.push(hex('10 ffff')))).toBe('AUDIOSOCKET_FRAME_INVALID');
      expect(codeOf(() => decoder.push(hex('00 0000')))).toBe('AUDIOSOCKET_FRAME_INVALID');
      expect(codeOf(() => decoder.push(Buffer.alloc(0)))).toBe('AUDIOSOCKET_FRAME_INVALID');
      expect(decoder.bufferedBytes).toBe(0);
    });

    it('fails when the bad header is completed by a later chunk', () => {
      const decoder = new AudioSocketDecoder();
      expect(decoder.push(hex('03 0001 31 01 00'))).toEqual([{ type: 'dtmf', digit: '1' }]);
      expect(codeOf(() => decoder.push(hex('05')))).toBe('AUDIOSOCKET_FRAME_INVALID');
    });

    it('hands over the messages completed before the failure in the same chunk, once', () => {
      const decoder = new AudioSocketDecoder();
      const error = errorOf(() => decoder.push(hex(`${UUID_HEX} 03 0001 30 10 ffff`)));
      expect(error).toMatchObject({
        code: 'AUDIOSOCKET_FRAME_INVALID',
        messages: [
          { type: 'uuid', uuid: UUID },
          { type: 'dtmf', digit: '0' },
        ],
      });
      expect(errorOf(() => decoder.push(hex('00 0000')))).toMatchObject({ code: 'AUDIOSOCKET_FRAME_INVALID', messages: [] });
    });
  });
});

describe('sampleRateOfKind', () => {
  const table: [number, number | undefined][] = [
    [0x10, 8000],
    [0x11, 12_000],
    [0x12, 16_000],
    [0x13, 24_000],
    [0x14, 32_000],
    [0x15, 44_100],
    [0x16, 48_000],
    [0x17, 96_000],
    [0x18, 192_000],
    [0x00, undefined],
    [0x01, undefined],
    [0x03, undefined],
    [0x0f, undefined],
    [0x19, undefined],
    [0xff, undefined],
  ];
  it.each(table.map(([kind, rate]) => [kind.toString(16).padStart(2, '0'), kind, rate] as const))('kind 0x%s', (_hex, kind, rate) => {
    expect(sampleRateOfKind(kind)).toBe(rate);
  });
});

describe('encoders', () => {
  it('encode the wire bytes of each message', () => {
    expect(encodeUuid(UUID).toString('hex')).toBe(hex(UUID_HEX).toString('hex'));
    expect(encodeUuid(UUID.toUpperCase()).toString('hex')).toBe(hex(UUID_HEX).toString('hex'));
    expect(encodeAudio(KIND_SLIN16, hex('0100 ff7f')).toString('hex')).toBe('1200040100ff7f');
    expect(encodeHangup().toString('hex')).toBe('000000');
    expect(encodeMessage(KIND_DTMF, Buffer.from('#')).toString('hex')).toBe('03000123');
    expect(encodeMessage(KIND_ERROR, hex('01')).toString('hex')).toBe('ff000101');
  });

  it('round-trip through the decoder', () => {
    const payload = rampPayload();
    const stream = Buffer.concat([
      encodeUuid(UUID),
      encodeAudio(KIND_SLIN16, payload),
      encodeAudio(KIND_SLIN, payload.subarray(0, 320)),
      encodeMessage(KIND_DTMF, Buffer.from('A')),
      encodeMessage(KIND_ERROR, Buffer.alloc(0)),
      encodeMessage(KIND_ERROR, hex('04')),
      encodeMessage(0x42, hex('010203')),
      encodeHangup(),
    ]);
    expect(decodeAll(stream)).toEqual([
      { type: 'uuid', uuid: UUID },
      { type: 'audio', kind: KIND_SLIN16, payload },
      { type: 'audio', kind: KIND_SLIN, payload: payload.subarray(0, 320) },
      { type: 'dtmf', digit: 'A' },
      { type: 'error' },
      { type: 'error', code: 4 },
      { type: 'unknown', kind: 0x42, length: 3 },
      { type: 'hangup' },
    ]);
  });

  it('refuse what the decoder would refuse, with AUDIOSOCKET_FRAME_INVALID', () => {
    expect(codeOf(() => encodeUuid('not-a-uuid'))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeUuid(`${UUID}0`))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeAudio(KIND_HANGUP, Buffer.alloc(2)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeAudio(KIND_SLIN16, Buffer.alloc(3)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeAudio(KIND_SLIN16, Buffer.alloc(MAX_AUDIO_PAYLOAD + 2)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeMessage(KIND_UUID, Buffer.alloc(15)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeMessage(KIND_DTMF, Buffer.alloc(2)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeMessage(256, Buffer.alloc(0)))).toBe('AUDIOSOCKET_FRAME_INVALID');
    expect(codeOf(() => encodeMessage(-1, Buffer.alloc(0)))).toBe('AUDIOSOCKET_FRAME_INVALID');
  });
});
