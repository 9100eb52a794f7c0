import { describe, expect, it } from 'vitest';
import { hex } from '../support/bytes.js';
import { ULAW_CLIP, decodeUlaw, encodeUlaw, linearToUlaw, ulawToLinear } from '../../app/media/g711.js';

/** Every 16-bit sample, -32768 to 32767, little-endian. */
function allSamples(): Buffer {
  const samples = Buffer.alloc(65536 * 2);
  for (let i = 0; i < 65536; i++) samples.writeInt16LE(i - 32768, i * 2);
  return samples;
}

describe('linearToUlaw', () => {
  it('encodes silence as 0xFF and -1 as 0x7F (the two zeros of µ-law)', () => {
    expect(linearToUlaw(0)).toBe(0xff);
    expect(linearToUlaw(-1)).toBe(0x7f);
  });

  it('encodes the largest positive and negative samples as 0x80 and 0x00', () => {
    expect(linearToUlaw(32767)).toBe(0x80);
    expect(linearToUlaw(-32768)).toBe(0x00);
  });

  it('clips above 32635', () => {
    expect(linearToUlaw(ULAW_CLIP)).toBe(0x80);
    expect(linearToUlaw(-ULAW_CLIP)).toBe(0x00);
    expect(linearToUlaw(100_000)).toBe(0x80);
    expect(linearToUlaw(-100_000)).toBe(0x00);
  });

  it('puts segment boundaries where the bias 0x84 puts them', () => {
    // biased = |x| + 132; segment 1 starts at biased 256, i.e. x = 124.
    expect(linearToUlaw(123)).toBe(0xf0); // segment 0, mantissa 15
    expect(linearToUlaw(124)).toBe(0xef); // segment 1, mantissa 0
    expect(linearToUlaw(-123)).toBe(0x70);
    expect(linearToUlaw(-124)).toBe(0x6f);
  });

  it('is monotonic over all 16-bit samples', () => {
    // Positive samples count down from 0xFF to 0x80; negative ones from 0x7F down to 0x00 as they grow.
    const outOfOrder: number[] = [];
    for (let x = -32767; x <= 32767; x++) {
      const [code, previous] = [linearToUlaw(x), linearToUlaw(x - 1)];
      const inOrder = x < 0 ? code >= previous : x === 0 || code <= previous;
      if (!inOrder) outOfOrder.push(x);
    }
    expect(outOfOrder).toEqual([]);
  });

  it('truncates fractions and treats NaN as silence', () => {
    expect(linearToUlaw(123.9)).toBe(linearToUlaw(123));
    expect(linearToUlaw(Number.NaN)).toBe(0xff);
  });
});

describe('ulawToLinear', () => {
  it('decodes the known values of G.711', () => {
    expect([0xff, 0x7f, 0x80, 0x00, 0xf0, 0x70, 0xef, 0x6f].map(ulawToLinear)).toEqual([0, 0, 32124, -32124, 120, -120, 132, -132]);
  });

  it('is symmetric: byte b and b ^ 0x80 decode to opposite values', () => {
    for (let b = 0; b < 256; b++) expect(ulawToLinear(b ^ 0x80) + ulawToLinear(b)).toBe(0);
  });
});

describe('encodeUlaw and decodeUlaw', () => {
  it('encodes little-endian samples, one byte each', () => {
    // 0, 32767, -32768, -1 little-endian
    expect(encodeUlaw(hex('0000 ff7f 0080 ffff')).toString('hex')).toBe('ff80007f');
  });

  it('decodes to little-endian samples', () => {
    expect(decodeUlaw(hex('ff 80 00 f0')).toString('hex')).toBe('0000' + '7c7d' + '8482' + '7800');
  });

  it('ignores an odd trailing byte', () => {
    expect(encodeUlaw(hex('0000 ff7f 12')).toString('hex')).toBe('ff80');
    expect(encodeUlaw(hex('12')).length).toBe(0);
    expect(encodeUlaw(Buffer.alloc(0)).length).toBe(0);
  });

  it('works on a view with a non-zero offset', () => {
    expect(encodeUlaw(hex('aa 0000 ff7f').subarray(1)).toString('hex')).toBe('ff80');
  });

  it('round-trips every 16-bit sample within half a quantisation step (clipped ones to ±32124)', () => {
    const input = allSamples();
    const output = decodeUlaw(encodeUlaw(input));
    expect(output.length).toBe(input.length);
    let worst = 0;
    const tooFar: number[] = [];
    for (let i = 0; i < 65536; i++) {
      const x = input.readInt16LE(i * 2);
      const y = output.readInt16LE(i * 2);
      worst = Math.max(worst, Math.abs(y - x));
      // Segment e covers biased magnitudes 2^(e+7)..2^(e+8) in steps of 2^(e+3), decoded at the middle:
      // the error is at most 2^(e+2) = 2^(e+7) / 32 <= (|x| + 0x84) / 32. Clipped samples decode to ±32124.
      const expected = Math.abs(x) > ULAW_CLIP ? Math.abs(y - Math.sign(x) * 32124) === 0 : Math.abs(y - x) <= (Math.abs(x) + 0x84) / 32;
      if (!expected || y * x < 0) tooFar.push(x);
    }
    expect(tooFar).toEqual([]);
    expect(worst).toBe(644); // -32768 -> -32124
  });

  it('re-encodes every decoded byte to itself, except 0x7F (negative zero) which becomes 0xFF', () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const again = encodeUlaw(decodeUlaw(bytes));
    const changed = [...bytes].filter((b) => again[b] !== b);
    expect(changed).toEqual([0x7f]);
    expect(again[0x7f]).toBe(0xff);
  });
});
