// What moves the two channels of a stereo stream. One RTP call through the
// real Asterisk (STREAM_MODE=stereo), SIPp parties playing stepped tones
// (caller left, callee right). Once the call is settled, each process on the
// audio's way is stopped (SIGSTOP) for each --stall-ms in turn: the callee's
// SIPp, the service, the caller's SIPp, --gap-s apart. Around each stall it
// estimates where each leg's tone sits (the stepped-tone tracker of the long
// calls) in two places: the stream's channels, and the taps Asterisk sends the
// service (each ExternalMedia leg's RTP, from a loopback capture, by sequence
// number). A stall that moves a channel of the stream by as much as it moves
// that leg's tap moved it before the service; one that moves the stream alone
// is the service's. Results: stdout and, with --out, a JSON line.
// --jitterbuffer SPEC sets JITTERBUFFER(SPEC) (e.g. fixed,200 or adaptive) on both parties' channels
// once the call is up: a jitter buffer on a channel's read side, before its snoop.
//   scripts/bench-cell.sh stalls node scripts/bench-stalls.mjs [--stall-ms 200,400,1000] [--gap-s 15]
//                                  [--jitterbuffer SPEC] [--out FILE]
// Root (the capture); run it on an Asterisk of its own (bench-cell.sh), as the stalls would disturb others.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPcap, startCapture } from './bench-capture.mjs';
import {
  CALLEE_STEPS_HZ,
  CALLER_STEPS_HZ,
  StepTracker,
  ari,
  benchService,
  freeUdpPort,
  option,
  record,
  sipp,
  sleep,
  startSink,
  steppedTone,
  stopService,
  wallMs,
} from './bench-lib.mjs';

const args = process.argv.slice(2);
const stallsMs = option(args, 'stall-ms', '200,400,1000').split(',').map(Number);
const gapS = Number(option(args, 'gap-s', '15'));
const out = option(args, 'out', undefined);
const jitterBuffer = option(args, 'jitterbuffer', undefined);
const SAMPLE_RATE = 16000;
const SETTLE_S = 20;
/** After a stall, this long is left out of the estimates: its bursts and catch-up. */
const TRANSIENT_S = 3;
const RTP_PORTS = { start: 20000, end: 29999 }; // serviceEnv's RTP_PORT_START..END

/** Each channel's tracker, over the stream's frames; `mark()` starts a new window. */
const stream = { left: new StepTracker(CALLER_STEPS_HZ, SAMPLE_RATE), right: new StepTracker(CALLEE_STEPS_HZ, SAMPLE_RATE) };
const sink = await startSink({
  onFrame(s, data) {
    const k = s.frames - 1;
    stream.left.push(k, data, { offset: 0, stride: 2 });
    stream.right.push(k, data, { offset: 1, stride: 2 });
  },
});
const dir = mkdtempSync(join(tmpdir(), 'atp-bench-stalls-'));
const pcap = join(dir, 'taps.pcap');
const capture = await startCapture(pcap, `udp and dst portrange ${RTP_PORTS.start}-${RTP_PORTS.end}`, { snaplen: 700 });
let aligner;
const { service, calleePort } = await benchService(sink, {
  transport: 'rtp',
  mode: 'stereo',
  env: { SAMPLE_RATE: String(SAMPLE_RATE) },
  onLog: (line) => {
    if (line.msg === 'stream aligned') aligner = line.alignment;
  },
});
const JITTER_BUFFER_WAIT_S = 5;
const holdMs = (SETTLE_S + JITTER_BUFFER_WAIT_S + stallsMs.length * 3 * gapS + 10) * 1000;
const seconds = Math.ceil(holdMs / 1000) + 30;
const callee = await sipp(
  'callee.xml',
  (d) => steppedTone(d, CALLEE_STEPS_HZ, seconds),
  ['-p', String(calleePort), '-mp', '46000', '-m', '1'],
  {
    timeoutSeconds: seconds + 60,
  },
);
const caller = await sipp(
  'caller.xml',
  (d) => steppedTone(d, CALLER_STEPS_HZ, seconds),
  ['-p', String(await freeUdpPort()), '-mp', '42000', '-s', '4567', '-d', String(holdMs), '-m', '1', '127.0.0.1:5060'],
  { timeoutSeconds: seconds + 60 },
);

/** Windows of wall time (capture clock) between the stalls, with the stream's estimates over each. */
const windows = [];
await sleep(SETTLE_S * 1000);
if (jitterBuffer !== undefined) {
  // The parties' channels (the taps' are Snoop/ and UnicastRTP/ ones).
  const parties = (await ari('/channels')).filter((channel) => channel.name.startsWith('PJSIP/'));
  if (parties.length !== 2) throw new Error(`expected the call's two PJSIP channels, found ${parties.length}`);
  const variable = encodeURIComponent(`JITTERBUFFER(${jitterBuffer.split(',')[0]})`);
  const value = encodeURIComponent(jitterBuffer.split(',').slice(1).join(',') || 'default');
  for (const channel of parties) await ari(`/channels/${channel.id}/variable?variable=${variable}&value=${value}`, { method: 'POST' });
  await sleep(JITTER_BUFFER_WAIT_S * 1000);
}
stream.left.estimate(); // the call's first seconds (streams opening) are no one's window
stream.right.estimate();
let windowStart = wallMs();
const events = [];
const targets = { callee: callee.child.pid, service: service.pid, caller: caller.child.pid };
for (const stallMs of stallsMs) {
  for (const [name, pid] of Object.entries(targets)) {
    await sleep(gapS * 1000 - TRANSIENT_S * 1000);
    windows.push({ fromMs: windowStart, toMs: wallMs(), left: stream.left.estimate(), right: stream.right.estimate() });
    const atMs = wallMs();
    process.kill(pid, 'SIGSTOP');
    await sleep(stallMs);
    process.kill(pid, 'SIGCONT');
    events.push({ stalled: name, stallMs, atMs });
    await sleep(TRANSIENT_S * 1000);
    stream.left.estimate();
    stream.right.estimate();
    windowStart = wallMs();
  }
}
await sleep(gapS * 1000 - TRANSIENT_S * 1000);
windows.push({ fromMs: windowStart, toMs: wallMs(), left: stream.left.estimate(), right: stream.right.estimate() });
const [callerDone, calleeDone] = await Promise.all([caller.done, callee.done]);
for (let i = 0; i < 100 && sink.streams.some((s) => !s.closed); i++) await sleep(100);
await stopService(service);
await sink.close();
await capture.stop();

// Each tap (a destination port of the capture): its leg is the one whose tone it carries.
const taps = new Map();
for (const packet of readPcap(pcap)) {
  if (!packet.udp || packet.payload.length < 12 + 640) continue;
  let tap = taps.get(packet.dstPort);
  if (tap === undefined) {
    tap = { packets: [], firstSeq: packet.payload.readUInt16BE(2) };
    taps.set(packet.dstPort, tap);
  }
  tap.packets.push({
    timeMs: packet.timeMs,
    seq: packet.payload.readUInt16BE(2),
    samples: Buffer.from(packet.payload.subarray(12)).swap16(),
  });
}
rmSync(dir, { recursive: true, force: true });
/** A tap's tone offsets over each window, by sequence number (a leg's frames are numbered by Asterisk, not by arrival). */
function tapOffsets(tap, stepsHz) {
  const tracker = new StepTracker(stepsHz, SAMPLE_RATE);
  const estimates = [];
  let w = 0;
  for (const packet of tap.packets) {
    while (w < windows.length && packet.timeMs > windows[w].toMs) {
      estimates.push(tracker.estimate());
      w++;
    }
    if (w >= windows.length) break;
    const k = (packet.seq - tap.firstSeq + 0x10000) & 0xffff;
    if (packet.timeMs < windows[w].fromMs) continue;
    tracker.push(k, packet.samples, { offset: 0, stride: 1 });
  }
  while (estimates.length < windows.length) estimates.push(tracker.estimate());
  return { judged: tracker.judged, estimates };
}
const tapOf = {};
for (const tap of taps.values()) {
  for (const [leg, stepsHz] of [
    ['A', CALLER_STEPS_HZ],
    ['B', CALLEE_STEPS_HZ],
  ]) {
    const offsets = tapOffsets(tap, stepsHz);
    if (offsets.judged > (tapOf[leg]?.judged ?? 100)) tapOf[leg] = offsets;
  }
}

const shift = (before, after) => (before === undefined || after === undefined ? undefined : after.offsetMs - before.offsetMs);
const rows = events.map((event, i) => ({
  ...event,
  streamLeftMs: shift(windows[i].left, windows[i + 1].left),
  streamRightMs: shift(windows[i].right, windows[i + 1].right),
  tapAMs: shift(tapOf.A?.estimates[i], tapOf.A?.estimates[i + 1]),
  tapBMs: shift(tapOf.B?.estimates[i], tapOf.B?.estimates[i + 1]),
}));
for (const row of rows)
  console.log(
    `${row.stalled.padEnd(7)} stopped ${String(row.stallMs).padStart(5)} ms: stream left ${row.streamLeftMs} ms, right ${row.streamRightMs} ms;` +
      ` tap A ${row.tapAMs} ms, tap B ${row.tapBMs} ms`,
  );
const result = {
  date: new Date().toISOString(),
  bench: 'stalls',
  sipp: callerDone.code === 0 && calleeDone.code === 0 ? 'ok' : `caller ${callerDone.code}, callee ${calleeDone.code}`,
  gapS,
  jitterBuffer,
  rows,
  windows: windows.map((w, i) => ({ left: w.left, right: w.right, tapA: tapOf.A?.estimates[i], tapB: tapOf.B?.estimates[i] })),
  aligner,
};
console.log(JSON.stringify(result));
record(out, result);
