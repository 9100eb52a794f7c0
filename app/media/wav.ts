/**
 * The 44-byte header of a PCM WAV file (RIFF, 16-bit little-endian samples).
 * Pure; the receiver writes a placeholder first and the real sizes at the end.
 */

export function wavHeader(sampleRate: number, channels: number, dataBytes: number): Buffer {
  const header = Buffer.alloc(44);
  const blockAlign = channels * 2;
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + dataBytes, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * blockAlign, 28);
  header.writeUInt16LE(blockAlign, 32);
  header.writeUInt16LE(16, 34); // bits per sample
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(dataBytes, 40);
  return header;
}

/** Sum of squared samples (little-endian 16-bit), each scaled to -1..1. */
export function sumOfSquares(samples: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < samples.length; i += 2) {
    const sample = samples.readInt16LE(i) / 32768;
    sum += sample * sample;
  }
  return sum;
}

/** RMS level in dBFS of `sampleCount` samples whose sumOfSquares is given (-Infinity for silence). */
export function levelDbfs(squares: number, sampleCount: number): number {
  if (sampleCount === 0 || squares === 0) return -Infinity;
  return 10 * Math.log10(squares / sampleCount);
}
