/**
 * Assertions shared by the end-to-end tests about what the transcription
 * server received: well-formed streams, the right tone on the right label,
 * and a frame count that matches the stream's duration.
 */
import { expect } from 'vitest';
import type { ReceivedStream } from './strict-stream-server.js';
import { toneMarginDb } from './tones.js';

/** The stream's audio, minus `trimMs` at each end (set-up and teardown edges). */
export function steadyAudio(stream: ReceivedStream, sampleRate: number, trimMs = 500): Buffer {
  const audio = Buffer.concat(stream.frames);
  const trimBytes = Math.round((sampleRate * trimMs) / 1000) * 2;
  return audio.subarray(trimBytes, Math.max(trimBytes, audio.length - trimBytes));
}

export function streamByLabel(streams: ReceivedStream[], label: string): ReceivedStream {
  const found = streams.filter((s) => s.metadata?.label === label);
  expect(found, `streams labelled ${label}`).toHaveLength(1);
  return found[0]!;
}

/** Metadata first, audio only, stop last, close 1000: what a mod_audio_stream server accepts. */
export function expectWellFormed(stream: ReceivedStream): void {
  expect(stream.violations).toEqual([]);
  expect(stream.metadata).toMatchObject({ event: 'start', version: 1, encoding: 'L16', channels: 1, endianness: 'little' });
  expect(stream.stop).toMatchObject({ event: 'stop', label: stream.metadata?.label, callId: stream.metadata?.callId });
  expect(stream.closeCode).toBe(1000);
}

/** The stream carries `ownHz` at least `minMarginDb` above each of `otherHz`. */
export function expectTone(stream: ReceivedStream, sampleRate: number, ownHz: number, otherHz: number[], minMarginDb = 40): void {
  const audio = steadyAudio(stream, sampleRate);
  expect(audio.length, 'seconds of steady audio').toBeGreaterThan(sampleRate * 2 * 2);
  for (const other of otherHz) {
    const margin = toneMarginDb(audio, sampleRate, ownHz, other);
    expect(margin, `${stream.metadata?.label}: ${ownHz} Hz above ${other} Hz (dB)`).toBeGreaterThanOrEqual(minMarginDb);
  }
}

/**
 * One frame per 20 ms of real time, within 3 %: no frame doubled, none dropped, none split.
 * The time per frame is the median, over every span of half the stream's frames, of the
 * span's arrival time over its frames. Edges do not move a median: audio buffered while the
 * connection opened arrives in one burst, the last frames may come late or at once; nor does
 * a stall in the middle, caught up by a burst after it (it lies inside most spans, whole).
 */
export function expectFrameCountMatchesDuration(stream: Pick<ReceivedStream, 'frameArrivalMs'>): void {
  const arrivals = stream.frameArrivalMs;
  expect(arrivals.length).toBeGreaterThan(50);
  const half = Math.floor(arrivals.length / 2);
  const msPerFrame = arrivals
    .slice(0, arrivals.length - half)
    .map((at, i) => (arrivals[i + half]! - at) / half)
    .sort((a, b) => a - b);
  const median = msPerFrame[Math.floor(msPerFrame.length / 2)]!;
  const ratio = 20 / median;
  const what = `${arrivals.length} frames, a median ${median.toFixed(2)} ms per frame over spans of ${half}`;
  expect(ratio, what).toBeGreaterThanOrEqual(0.97);
  expect(ratio, what).toBeLessThanOrEqual(1.03);
}

/** Little-endian L16 minus half a second at each end (set-up and teardown edges). */
export function steady(audio: Buffer, sampleRate: number): Buffer {
  const trim = sampleRate; // 0.5 s of 16-bit samples
  expect(audio.length, 'seconds of audio').toBeGreaterThan(trim * 2 + sampleRate * 2 * 2);
  return audio.subarray(trim, audio.length - trim);
}

/** Raw L16 audio (a channel, a track, a WAV file's data) carries `ownHz` at least 40 dB above `otherHz`, edges trimmed. */
export function expectOwnTone(audio: Buffer, sampleRate: number, ownHz: number, otherHz: number, what: string): void {
  expect(
    toneMarginDb(steady(audio, sampleRate), sampleRate, ownHz, otherHz),
    `${what}: ${ownHz} Hz above ${otherHz} Hz (dB)`,
  ).toBeGreaterThanOrEqual(40);
}
