/**
 * Byte order of 16-bit linear PCM. Asterisk sends slin over RTP big-endian
 * (network order, as RFC 3551 L16 requires), while the websocket streams our
 * users' servers read (mod_audio_stream style) are little-endian.
 */

/** A little-endian copy of big-endian 16-bit samples. An odd trailing byte is dropped. */
export function swap16(bigEndian: Buffer): Buffer {
  const length = bigEndian.length & ~1;
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i += 2) {
    out[i] = bigEndian[i + 1]!;
    out[i + 1] = bigEndian[i]!;
  }
  return out;
}

/**
 * Swaps big-endian samples to little-endian where they are, and returns the view of the
 * whole samples (an odd trailing byte is left out). For a buffer that nobody else reads,
 * such as a received datagram: no allocation, and Node's native swap does the work.
 */
export function swap16InPlace(bigEndian: Buffer): Buffer {
  const samples = bigEndian.length & 1 ? bigEndian.subarray(0, bigEndian.length - 1) : bigEndian;
  return samples.swap16();
}

/** Bytes of one 20 ms frame of 16-bit mono audio at `sampleRate`. */
export function frameBytes(sampleRate: number, frameMs = 20): number {
  return (sampleRate / 1000) * frameMs * 2;
}
