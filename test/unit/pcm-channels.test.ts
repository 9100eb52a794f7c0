import { describe, expect, it } from 'vitest';
import { deinterleave, interleave, mix, silence } from '../../app/media/pcm-channels.js';
import { hex } from '../support/bytes.js';

function samples(...values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 2);
  values.forEach((value, i) => out.writeInt16LE(value, i * 2));
  return out;
}

function valuesOf(pcm: Buffer): number[] {
  return Array.from({ length: pcm.length >> 1 }, (_, i) => pcm.readInt16LE(i * 2));
}

describe('interleave', () => {
  it('puts the left sample before the right one, keeping each sample little-endian', () => {
    expect(interleave(hex('0102 0304'), hex('a1a2 a3a4')).toString('hex')).toBe('0102a1a2' + '0304a3a4');
  });

  it('doubles the length: one 20 ms frame at 8 kHz becomes 640 bytes', () => {
    expect(interleave(silence(320), silence(320)).length).toBe(640);
  });

  it('works on views with a non-zero offset and leaves its inputs alone', () => {
    const left = hex('ff 0102').subarray(1);
    const right = hex('0304');
    expect(interleave(left, right).toString('hex')).toBe('01020304');
    expect(left.toString('hex')).toBe('0102');
  });

  it('throws on buffers of different lengths or of half samples, rather than shifting a channel', () => {
    expect(() => interleave(silence(4), silence(2))).toThrow(RangeError);
    expect(() => interleave(silence(3), silence(3))).toThrow(RangeError);
  });

  it('returns an empty buffer for empty input', () => {
    expect(interleave(Buffer.alloc(0), Buffer.alloc(0)).length).toBe(0);
  });
});

describe('deinterleave', () => {
  it('undoes interleave', () => {
    const left = samples(1, -2, 32767, -32768);
    const right = samples(100, 200, -300, 0);
    const [l, r] = deinterleave(interleave(left, right));
    expect(l.equals(left)).toBe(true);
    expect(r.equals(right)).toBe(true);
  });

  it('drops an incomplete trailing sample pair', () => {
    const [l, r] = deinterleave(hex('0102 0304 0506'));
    expect(l.toString('hex')).toBe('0102');
    expect(r.toString('hex')).toBe('0304');
  });
});

describe('mix', () => {
  it('adds the two parties sample by sample, without halving', () => {
    expect(valuesOf(mix(samples(1000, -1000, 0), samples(234, -234, 5)))).toEqual([1234, -1234, 5]);
  });

  it('keeps one party at its own level when the other is silent', () => {
    const speech = samples(12000, -8000, 300);
    expect(mix(speech, silence(6)).equals(speech)).toBe(true);
    expect(mix(silence(6), speech).equals(speech)).toBe(true);
  });

  it('clips to the 16-bit range instead of wrapping around', () => {
    expect(valuesOf(mix(samples(30000, -30000, 32767, -32768), samples(30000, -30000, 1, -1)))).toEqual([32767, -32768, 32767, -32768]);
  });

  it('throws on buffers of different lengths', () => {
    expect(() => mix(silence(4), silence(6))).toThrow(RangeError);
  });
});

describe('silence', () => {
  it('is zero samples of the asked length, a new buffer each time', () => {
    const a = silence(320);
    expect(a.length).toBe(320);
    expect(a.every((byte) => byte === 0)).toBe(true);
    a[0] = 1;
    expect(silence(320)[0]).toBe(0);
  });
});
