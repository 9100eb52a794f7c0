// Benchmark of the per-frame work on the media path, on the built code (dist/):
// how many microseconds of one CPU core each 20 ms frame costs at each stage,
// what that means in concurrent calls per core, and the heap one call's
// sink-side state holds. Results are recorded in docs/benchmarks.md.
//   npm run bench            (builds first)
import { performance } from 'node:perf_hooks';
import { parseRtpPacket } from '../dist/app/media/rtp-packet.js';
import { swap16 } from '../dist/app/media/pcm.js';
import { interleave, mix } from '../dist/app/media/pcm-channels.js';
import { AudioSocketDecoder, encodeAudio, KIND_SLIN16 } from '../dist/app/media/audiosocket-codec.js';
import { FrameAligner } from '../dist/app/transcription/frame-aligner.js';
import { TwilioMessageEncoder, twilioSid } from '../dist/app/transcription/twilio-messages.js';

const FRAMES = 200_000;

function sine(samples, hz, rate) {
  const out = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) out.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / rate)), i * 2);
  return out;
}

/** Runs `body(i)` FRAMES times after a warm-up; returns µs per call. */
function measure(name, body) {
  for (let i = 0; i < 20_000; i++) body(i);
  const start = performance.now();
  for (let i = 0; i < FRAMES; i++) body(i);
  const us = ((performance.now() - start) * 1000) / FRAMES;
  return { name, us };
}

const pcm16k = sine(320, 440, 16000);
const pcm8k = sine(160, 440, 8000);
const rtp = Buffer.concat([Buffer.from([0x80, 0x76, 0, 1, 0, 0, 0, 160, 0x12, 0x34, 0x56, 0x78]), swap16(pcm16k)]);
const audioSocketFrame = encodeAudio(KIND_SLIN16, pcm16k);

const results = [];
results.push(measure('RTP parse + swap to little-endian (slin16, 640 B)', () => swap16(parseRtpPacket(rtp).payload)));
const decoder = new AudioSocketDecoder();
results.push(measure('AudioSocket decode (slin16, 640 B)', () => decoder.push(audioSocketFrame)));
results.push(measure('interleave two legs (stereo, 16 kHz)', () => interleave(pcm16k, pcm16k)));
results.push(measure('mix two legs (mixed, 16 kHz)', () => mix(pcm16k, pcm16k)));
{
  let t = 0;
  let out = 0;
  const aligner = new FrameAligner({
    frameBytes: 640,
    now: () => t,
    onFrame: (l, r) => {
      out += interleave(l, r).length;
    },
  });
  results.push(
    measure('frame aligner + interleave, per pair of frames', (i) => {
      t = i * 20;
      aligner.push(0, pcm16k);
      t += 7;
      aligner.push(1, pcm16k);
    }),
  );
  if (out === 0) throw new Error('aligner emitted nothing');
}
{
  const encoder = new TwilioMessageEncoder(
    { accountSid: twilioSid('AC'), callSid: twilioSid('CA'), streamSid: twilioSid('MZ') },
    ['inbound', 'outbound'],
    {},
  );
  encoder.opening(0);
  results.push(measure('Twilio media message (µ-law + base64 + JSON, 8 kHz)', (i) => encoder.media('inbound', pcm8k, i * 20)));
}

// One leg-frame is what every call costs 50 times a second per leg.
console.log(`node ${process.version}, ${FRAMES} frames per stage\n`);
console.log('| stage | µs per frame | leg-frames per core-second |');
console.log('|---|---:|---:|');
for (const { name, us } of results) console.log(`| ${name} | ${us.toFixed(2)} | ${Math.round(1e6 / us).toLocaleString('en')} |`);

// Sink-side memory of one call in stereo mode: an aligner with its frames in flight
// (heap and the buffers' backing stores, which live outside the heap).
const used = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
globalThis.gc?.();
const before = used();
const calls = [];
for (let c = 0; c < 1000; c++) {
  let t = 0;
  const aligner = new FrameAligner({ frameBytes: 640, now: () => t, onFrame: () => {} });
  for (let i = 0; i < 10; i++) {
    t = i * 20;
    aligner.push(0, Buffer.from(pcm16k));
    aligner.push(1, Buffer.from(pcm16k));
  }
  calls.push(aligner);
}
globalThis.gc?.();
const perCall = (used() - before) / calls.length;
console.log(
  `\nmemory per call, stereo aligner with its frames in flight: ${(perCall / 1024).toFixed(1)} KiB${globalThis.gc ? '' : ' (run with --expose-gc for a steadier figure)'}`,
);
