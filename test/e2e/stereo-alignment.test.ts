/**
 * STREAM_MODE=stereo keeps the two parties time-aligned when one leg's audio
 * goes missing mid-call. A relay between Asterisk's AudioSocket channels and
 * the service drops the callee's frames for a second, then, half a second
 * later, replaces both parties' audio with one marker tone at the same moment.
 * The gap must come out as silence on the right channel (not as a shift of
 * everything after it), and the marker must start on both channels within one
 * frame (20 ms) of each other, with both channels the same length.
 */
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { deinterleave } from '../../app/media/pcm-channels.js';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { startAudioSocketRelay, type AudioSocketRelay } from '../support/audiosocket-relay.js';
import { closedTcpPort } from '../support/ports.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { tonePowerDb } from '../support/tones.js';

const RATE = 8000;
const CALLER_HZ = 440;
const CALLEE_HZ = 1330;
const MARKER_HZ = 2000;
const GAP_AFTER_FRAMES = 100;
const GAP_MS = 1000;
const MARKER_AFTER_GAP_MS = 500;

let streamServer: StrictStreamServer;
let relay: AudioSocketRelay;
let proxy: ServiceUnderTest;
let calleePort: number;

/** Samples of the marker tone, phase-continuous per leg. */
function markerSamples(bytes: number, phase: { n: number }): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes / 2; i++, phase.n++)
    out.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * MARKER_HZ * phase.n) / RATE)), i * 2);
  return out;
}

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
  const port = await closedTcpPort();
  let gapStartedAt: number | undefined;
  const phases = new Map<unknown, { n: number }>();
  relay = await startAudioSocketRelay({
    listenHost: '127.0.0.2',
    serviceHost: '127.0.0.1',
    port,
    classify(samples) {
      if (samples.length < 1600) return undefined;
      return tonePowerDb(samples, RATE, CALLER_HZ) > tonePowerDb(samples, RATE, CALLEE_HZ) ? 'caller' : 'callee';
    },
    rewrite(leg, samples, now) {
      if (leg.party === 'callee' && gapStartedAt === undefined && leg.frames >= GAP_AFTER_FRAMES) gapStartedAt = now;
      if (gapStartedAt === undefined) return samples;
      if (leg.party === 'callee' && now < gapStartedAt + GAP_MS) return null;
      if (now >= gapStartedAt + GAP_MS + MARKER_AFTER_GAP_MS) {
        if (!phases.has(leg)) phases.set(leg, { n: 0 });
        return markerSamples(samples.length, phases.get(leg)!);
      }
      return samples;
    },
  });
  proxy = await startServiceUnderTest({
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    STREAM_URL: streamServer.url,
    STREAM_MODE: 'stereo',
    SAMPLE_RATE: String(RATE),
    MEDIA_TRANSPORT: 'audiosocket',
    MEDIA_BIND_HOST: '127.0.0.1',
    MEDIA_ADVERTISE_HOST: '127.0.0.2',
    AUDIOSOCKET_PORT: String(port),
    TAP_NO_AUDIO_TIMEOUT_MS: '5000',
  });
});

afterAll(async () => {
  await proxy?.stop();
  await relay?.close();
  await streamServer?.close();
});

/** Where a tone at `hz` first dominates `otherHz`, in samples (10 ms windows every 1 ms). */
function onsetOf(audio: Buffer, hz: number, otherHz: number, from = 0): number {
  const window = 80;
  for (let start = from; start + window <= audio.length / 2; start += 8) {
    const slice = audio.subarray(start * 2, (start + window) * 2);
    if (tonePowerDb(slice, RATE, hz) > tonePowerDb(slice, RATE, otherHz) + 6 && tonePowerDb(slice, RATE, hz) > -30) return start;
  }
  return -1;
}

/** The longest run of 20 ms blocks whose level is below -60 dBFS. */
function longestSilence(audio: Buffer): { blocks: number; at: number } {
  const block = RATE / 50;
  let best = { blocks: 0, at: -1 };
  let run = 0;
  for (let i = 0; (i + 1) * block * 2 <= audio.length; i++) {
    const slice = audio.subarray(i * block * 2, (i + 1) * block * 2);
    let peak = 0;
    for (let s = 0; s < block; s++) peak = Math.max(peak, Math.abs(slice.readInt16LE(s * 2)));
    run = peak < 33 ? run + 1 : 0;
    if (run > best.blocks) best = { blocks: run, at: i - run + 1 };
  }
  return best;
}

it("turns a leg's missing frames into silence and keeps a simultaneous marker aligned within one frame", async () => {
  onTestFailed(() => console.log(`--- service log\n${proxy.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
  const callee = await startSipp({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
  const caller = await startSipp({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 6000, target: ASTERISK_SIP });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  expect(callerResult.exitCode, callerResult.stderr).toBe(0);
  expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
  const [stream] = await streamServer.waitForClosedStreams(1);
  expect(stream!.violations).toEqual([]);
  expect(relay.legs.map((leg) => leg.party).sort()).toEqual(['callee', 'caller']);

  const [left, right] = deinterleave(Buffer.concat(stream!.frames));
  expect(left.length).toBe(right.length);

  // The callee's dropped second is silence on the right, while the caller goes on on the left.
  const silence = longestSilence(right);
  expect(silence.blocks, 'silent 20 ms blocks on the right').toBeGreaterThanOrEqual(40);
  expect(silence.blocks).toBeLessThanOrEqual(55);
  const during = left.subarray(silence.at * 320, (silence.at + silence.blocks) * 320);
  expect(tonePowerDb(during, RATE, CALLER_HZ), 'caller on the left during the gap (dBFS)').toBeGreaterThan(-20);

  // The marker starts on both channels within one frame of each other.
  const afterGap = (silence.at + silence.blocks) * (RATE / 50);
  const leftOnset = onsetOf(left, MARKER_HZ, CALLER_HZ, afterGap);
  const rightOnset = onsetOf(right, MARKER_HZ, CALLEE_HZ, afterGap);
  expect(leftOnset, 'marker found on the left').toBeGreaterThan(0);
  expect(rightOnset, 'marker found on the right').toBeGreaterThan(0);
  expect(Math.abs(leftOnset - rightOnset) / (RATE / 1000), 'marker onsets apart (ms)').toBeLessThanOrEqual(20);

  await expectNothingLeftInAsterisk();
  proxy.expectIdle();
}, 60_000);
