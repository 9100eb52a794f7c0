/**
 * The two legs of a call in one stream, for STREAM_MODE=stereo (interleaved,
 * A left, B right) and mixed (one channel). Samples are little-endian 16-bit
 * linear, as our streams carry them (pcm.ts). The two inputs of interleave()
 * and mix() come from the frame aligner, which always hands over two buffers
 * of the same length, so a mismatch is a bug and throws rather than shifting
 * one party against the other.
 *
 * mix() adds the parties and clips to the 16-bit range instead of averaging
 * them. In a call one party speaks at a time: averaging would take 6 dB off
 * whoever is speaking, all the time, to avoid a clip that only happens when
 * both are loud at the same instant, and a recogniser fed the mix wants each
 * party at the level it was recorded at.
 */

const INT16_MAX = 32767;
const INT16_MIN = -32768;

/** Two mono buffers as one stereo buffer, samples interleaved L R L R …. */
export function interleave(left: Buffer, right: Buffer): Buffer {
  assertSamePcm(left, right, 'interleave');
  const out = Buffer.allocUnsafe(left.length * 2);
  for (let i = 0, o = 0; i < left.length; i += 2, o += 4) {
    out[o] = left[i]!;
    out[o + 1] = left[i + 1]!;
    out[o + 2] = right[i]!;
    out[o + 3] = right[i + 1]!;
  }
  return out;
}

/** The left and right channels of interleaved stereo. An incomplete trailing sample pair is dropped. */
export function deinterleave(stereo: Buffer): [Buffer, Buffer] {
  const samples = stereo.length >> 2;
  const left = Buffer.allocUnsafe(samples * 2);
  const right = Buffer.allocUnsafe(samples * 2);
  for (let i = 0, o = 0; o < samples * 2; i += 4, o += 2) {
    left[o] = stereo[i]!;
    left[o + 1] = stereo[i + 1]!;
    right[o] = stereo[i + 2]!;
    right[o + 1] = stereo[i + 3]!;
  }
  return [left, right];
}

/** The sum of two mono buffers, each sample clipped to the 16-bit range (not halved: see above). */
export function mix(a: Buffer, b: Buffer): Buffer {
  assertSamePcm(a, b, 'mix');
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i += 2) {
    const sum = a.readInt16LE(i) + b.readInt16LE(i);
    out.writeInt16LE(sum > INT16_MAX ? INT16_MAX : sum < INT16_MIN ? INT16_MIN : sum, i);
  }
  return out;
}

/** `bytes` bytes of digital silence (zero samples), freshly allocated. */
export function silence(bytes: number): Buffer {
  return Buffer.alloc(bytes);
}

function assertSamePcm(a: Buffer, b: Buffer, operation: string): void {
  if (a.length !== b.length || a.length % 2 !== 0) {
    throw new RangeError(
      `${operation}: needs two buffers of whole 16-bit samples of the same length, got ${a.length} and ${b.length} bytes`,
    );
  }
}
