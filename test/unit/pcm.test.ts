import { describe, expect, it } from 'vitest';
import { frameBytes, swap16, swap16InPlace } from '../../app/media/pcm.js';

function hex(text: string): Buffer {
  return Buffer.from(text.replace(/ /g, ''), 'hex');
}

describe('swap16', () => {
  it('swaps the bytes of each 16-bit sample', () => {
    expect(swap16(hex('0102 fffe')).toString('hex')).toBe('0201feff');
  });

  it('turns big-endian samples into the same values read little-endian', () => {
    const bigEndian = Buffer.alloc(6);
    bigEndian.writeInt16BE(1000, 0);
    bigEndian.writeInt16BE(-32768, 2);
    bigEndian.writeInt16BE(-2, 4);
    const littleEndian = swap16(bigEndian);
    expect([littleEndian.readInt16LE(0), littleEndian.readInt16LE(2), littleEndian.readInt16LE(4)]).toEqual([1000, -32768, -2]);
  });

  it('drops an odd trailing byte', () => {
    const out = swap16(hex('0102 03'));
    expect(out.length).toBe(2);
    expect(out.toString('hex')).toBe('0201');
  });

  it('returns an empty buffer for empty input and for a single byte', () => {
    expect(swap16(Buffer.alloc(0)).length).toBe(0);
    expect(swap16(hex('ab')).length).toBe(0);
  });

  it('does not mutate its input', () => {
    const input = hex('0102 0304 0506');
    swap16(input);
    expect(input.toString('hex')).toBe('010203040506');
  });

  it('returns a copy, not a view into the input', () => {
    const input = hex('0102');
    const out = swap16(input);
    input[0] = 0xaa;
    expect(out.toString('hex')).toBe('0201');
  });

  it('works on a view with a non-zero offset', () => {
    const whole = hex('ff 0102 0304');
    expect(swap16(whole.subarray(1)).toString('hex')).toBe('02010403');
  });

  it('round-trips: swapping twice gives back the input', () => {
    const input = hex('0001 7fff 8000 1234 abcd');
    expect(swap16(swap16(input)).equals(input)).toBe(true);
  });
});

describe('swap16InPlace', () => {
  it('swaps the samples where they are and returns a view of them', () => {
    const input = hex('0102 fffe');
    const out = swap16InPlace(input);
    expect(out.toString('hex')).toBe('0201feff');
    expect(input.toString('hex')).toBe('0201feff');
    expect(out.buffer).toBe(input.buffer);
  });

  it('gives the same samples as swap16, for any length and offset', () => {
    for (const length of [0, 1, 2, 3, 64, 127, 128, 129, 320, 640, 641]) {
      const whole = Buffer.alloc(length + 3);
      for (let i = 0; i < whole.length; i++) whole[i] = (i * 37 + 11) & 0xff;
      const view = whole.subarray(3);
      const expected = swap16(view);
      expect(swap16InPlace(view).equals(expected)).toBe(true);
    }
  });

  it('leaves an odd trailing byte out, untouched', () => {
    const input = hex('0102 03');
    expect(swap16InPlace(input).toString('hex')).toBe('0201');
    expect(input[2]).toBe(0x03);
  });
});

describe('frameBytes', () => {
  it('is the byte size of 20 ms of 16-bit mono audio', () => {
    expect(frameBytes(16000)).toBe(640);
    expect(frameBytes(8000)).toBe(320);
  });

  it('scales with the frame duration', () => {
    expect(frameBytes(8000, 10)).toBe(160);
    expect(frameBytes(16000, 40)).toBe(1280);
  });
});
