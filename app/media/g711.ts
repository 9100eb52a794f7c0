/**
 * G.711 µ-law (ITU-T G.711, the North American/Japanese law), as pure code:
 * 16-bit linear samples to one byte each and back. This is the audio of a
 * Twilio Media Stream and of SIPp's test tones. The linear side is always
 * LITTLE-endian L16 here (what our websocket streams carry), unlike slin over
 * RTP. A µ-law byte is stored inverted (all bits flipped), so silence is 0xFF.
 */

/** Added to the magnitude before the segment is found, so every segment starts on a power of two. */
export const ULAW_BIAS = 0x84;
/** Largest magnitude encoded without clipping: 32635 + BIAS = 0x7FFF. */
export const ULAW_CLIP = 32635;

/**
 * One linear sample to its µ-law byte. Takes an integer in -32768..32767;
 * fractions are truncated, larger magnitudes clip, and NaN counts as silence.
 */
export function linearToUlaw(sample: number): number {
  const value = Number.isNaN(sample) ? 0 : Math.trunc(sample);
  const sign = value < 0 ? 0x80 : 0x00;
  const biased = Math.min(Math.abs(value), ULAW_CLIP) + ULAW_BIAS;
  // Segment (exponent) = position of the highest set bit above bit 7; biased >= 0x84, so it is 0..7.
  const exponent = 31 - Math.clz32(biased >> 7);
  const mantissa = (biased >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** One µ-law byte to its linear sample (the middle of the byte's quantisation step). */
export function ulawToLinear(byte: number): number {
  const inverted = ~byte & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const magnitude = (((inverted & 0x0f) << 3) + ULAW_BIAS) << exponent;
  return inverted & 0x80 ? ULAW_BIAS - magnitude : magnitude - ULAW_BIAS;
}

/** Little-endian 16-bit samples to one µ-law byte each. An odd trailing byte is ignored. */
export function encodeUlaw(l16le: Buffer): Buffer {
  const count = l16le.length >> 1;
  const out = Buffer.allocUnsafe(count);
  for (let i = 0; i < count; i++) out[i] = linearToUlaw(l16le.readInt16LE(i * 2));
  return out;
}

/** µ-law bytes to little-endian 16-bit samples, two bytes per input byte. */
export function decodeUlaw(ulaw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ulaw.length * 2);
  for (let i = 0; i < ulaw.length; i++) out.writeInt16LE(ulawToLinear(ulaw[i]!), i * 2);
  return out;
}
