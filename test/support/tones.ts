/**
 * Test audio: pure tones made with sox, and a Goertzel filter to measure how
 * much of a given frequency a stream carries. A label is right when its own
 * party's tone stands well above the other party's.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes `seconds` of a sine at `hz` as raw G.711 µ-law 8 kHz (what SIPp plays). */
export function makeUlawTone(directory: string, hz: number, seconds = 30, name = 'tone.ulaw'): string {
  return makeG711Tone(directory, hz, seconds, name, 'u-law');
}

/** The same as raw G.711 A-law (SIPp plays it as PCMA, payload type 8). */
export function makeAlawTone(directory: string, hz: number, seconds = 30, name = 'tone.alaw'): string {
  return makeG711Tone(directory, hz, seconds, name, 'a-law');
}

function makeG711Tone(directory: string, hz: number, seconds: number, name: string, encoding: 'u-law' | 'a-law'): string {
  const path = join(directory, name);
  execFileSync('sox', [
    '-n',
    '-r',
    '8000',
    '-c',
    '1',
    '-e',
    encoding,
    '-t',
    'raw',
    path,
    'synth',
    String(seconds),
    'sine',
    String(hz),
    'vol',
    '0.5',
  ]);
  return path;
}

/** Power of `hz` in little-endian 16-bit samples (Goertzel), in dB relative to full scale. */
export function tonePowerDb(samples: Buffer, sampleRate: number, hz: number): number {
  const count = samples.length >> 1;
  if (count === 0) return -Infinity;
  const coefficient = 2 * Math.cos((2 * Math.PI * hz) / sampleRate);
  let previous = 0;
  let beforePrevious = 0;
  for (let i = 0; i < count; i++) {
    const current = samples.readInt16LE(i * 2) / 32768 + coefficient * previous - beforePrevious;
    beforePrevious = previous;
    previous = current;
  }
  const power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious;
  return 10 * Math.log10(power / (count * count) + 1e-20);
}

/**
 * The tone's level as the median over 100 ms blocks: what a party's level is when its tone
 * jumps in phase somewhere (Asterisk's snoop sends silence for audio that is late, under
 * load), where the power over the whole buffer would add the parts out of phase and fall.
 */
export function blockTonePowerDb(samples: Buffer, sampleRate: number, hz: number, blockMs = 100): number {
  const blockBytes = Math.round((sampleRate * blockMs) / 1000) * 2;
  const levels: number[] = [];
  for (let at = 0; at + blockBytes <= samples.length; at += blockBytes)
    levels.push(tonePowerDb(samples.subarray(at, at + blockBytes), sampleRate, hz));
  levels.sort((x, y) => x - y);
  return levels.length === 0 ? -Infinity : levels[Math.floor(levels.length / 2)]!;
}

/** How many dB `hz` stands above `otherHz` in these samples. */
export function toneMarginDb(samples: Buffer, sampleRate: number, hz: number, otherHz: number): number {
  return tonePowerDb(samples, sampleRate, hz) - tonePowerDb(samples, sampleRate, otherHz);
}

/** G.711 µ-law bytes to little-endian 16-bit samples: the service's own decoder, under the name the tests use. */
export { decodeUlaw as ulawToL16 } from '../../app/media/g711.js';
