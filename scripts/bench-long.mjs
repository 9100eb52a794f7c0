// Long calls: one call held for --minutes through the real Asterisk, the
// service as its own process (STREAM_MODE=stereo by default), SIPp parties
// playing stepped tones (caller left, callee right). It checks that the call's
// stream carried every frame (the frames counted against the time the stream
// lasted, and each leg's frames received, to within 0.1 %), that the two
// channels stayed aligned (where each channel's stepped tone sits against the
// stream's frames, estimated every minute, must not move: a frame lost,
// repeated or shifted on one leg moves it), and that memory does not grow
// (RSS and V8 heap every minute). Results go to stdout and, with --out, as JSON
// lines to a file as they come. Run it on an Asterisk of its own:
//   scripts/bench-cell.sh long2h node scripts/bench-long.mjs --minutes 120 --transport rtp --out FILE
// or `npm run bench:long` (the three long calls of docs/benchmarks.md at once, each in a cell).
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CALLEE_STEPS_HZ,
  CALLER_STEPS_HZ,
  ROOT,
  StepTracker,
  ari,
  asteriskPid,
  benchService,
  cpuMs,
  freeUdpPort,
  option,
  record,
  scrape,
  sipp,
  sleep,
  startSink,
  statusKiB,
  steppedTone,
  stopService,
} from './bench-lib.mjs';

const args = process.argv.slice(2);
if (args.includes('--all')) await runAll(args.filter((a) => a !== '--all'));
const minutes = Number(option(args, 'minutes', '120'));
const transport = option(args, 'transport', 'rtp');
const mode = option(args, 'mode', 'stereo');
const out = option(args, 'out', undefined);
const main = option(args, 'main', undefined);
const SAMPLE_RATE = 16000;
const holdMs = minutes * 60_000;

/** The three long calls of docs/benchmarks.md at once, each on an Asterisk of its own. */
async function runAll(rest) {
  const outFile = option(rest, 'out', join(tmpdir(), `atp-bench-long-${process.pid}.jsonl`));
  const scale = Number(option(rest, 'scale', '1'));
  const runs = [
    { name: 'long-rtp', minutes: 120 * scale, transport: 'rtp' },
    { name: 'long-audiosocket', minutes: 60 * scale, transport: 'audiosocket' },
    { name: 'long-websocket', minutes: 60 * scale, transport: 'websocket' },
  ];
  console.log(`results: ${outFile}`);
  const codes = await Promise.all(
    runs.map(({ name, minutes: m, transport: t }) => {
      const child = spawn(
        'bash',
        [
          join(ROOT, 'scripts/bench-cell.sh'),
          name,
          process.execPath,
          join(ROOT, 'scripts/bench-long.mjs'),
          '--minutes',
          String(m),
          '--transport',
          t,
          '--out',
          outFile,
          ...rest,
        ],
        { stdio: 'inherit', env: { ...process.env, ATP_BENCH_NO_SESSION_TIMERS: '1' } },
      );
      return new Promise((resolve) => child.on('exit', resolve));
    }),
  );
  process.exit(codes.every((c) => c === 0) ? 0 : 1);
}

const trackers = { left: new StepTracker(CALLER_STEPS_HZ, SAMPLE_RATE), right: new StepTracker(CALLEE_STEPS_HZ, SAMPLE_RATE) };
const sink = await startSink({
  onFrame(stream, data) {
    if (mode !== 'stereo') return;
    const k = stream.frames - 1;
    trackers.left.push(k, data, { offset: 0, stride: 2 });
    trackers.right.push(k, data, { offset: 1, stride: 2 });
  },
});
// The aligner's closing counters (stereo): silence it gave each leg, frames it dropped, resyncs.
let aligner;
const { service, calleePort, opsPort, allocator } = await benchService(sink, {
  transport,
  mode,
  env: { SAMPLE_RATE: String(SAMPLE_RATE) },
  ...(main && { main }),
  onLog: (record) => {
    if (record.msg === 'stream aligned') aligner = record.alignment;
  },
});
const asterisk = asteriskPid();
const rssIdleKiB = statusKiB(service.pid, 'VmRSS');
const seconds = Math.ceil(holdMs / 1000) + 60;
const timeoutSeconds = seconds + 300;
const callee = await sipp(
  'callee.xml',
  (dir) => steppedTone(dir, CALLEE_STEPS_HZ, Math.min(seconds, 600)),
  ['-p', String(calleePort), '-mp', '46000', '-m', '1'],
  {
    timeoutSeconds,
  },
);
const caller = await sipp(
  'caller.xml',
  (dir) => steppedTone(dir, CALLER_STEPS_HZ, Math.min(seconds, 600)),
  ['-p', String(await freeUdpPort()), '-mp', '42000', '-s', '4567', '-d', String(holdMs), '-m', '1', '127.0.0.1:5060'],
  { timeoutSeconds },
);

const samples = [];
const started = Date.now();
const t0 = { service: cpuMs(service.pid), asterisk: cpuMs(asterisk), wall: performance.now() };
let callDone = false;
void Promise.all([caller.done, callee.done]).then(() => {
  callDone = true;
});
while (!callDone) {
  await Promise.race([sleep(60_000), Promise.all([caller.done, callee.done])]);
  if (callDone) break;
  let metrics = {};
  try {
    metrics = await scrape(opsPort);
  } catch {
    // a scrape that failed is a gap in the samples, not the end of the run
  }
  const sample = {
    minute: Math.round((Date.now() - started) / 60_000),
    rssMiB: statusKiB(service.pid, 'VmRSS') / 1024,
    heapUsedMiB: (metrics['transcription_proxy_nodejs_heap_size_used_bytes'] ?? NaN) / 2 ** 20,
    frames: sink.streams.map((s) => s.frames),
    left: trackers.left.estimate(),
    right: trackers.right.estimate(),
  };
  samples.push(sample);
  console.log(JSON.stringify({ transport, ...sample }));
}
const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
const t1 = { service: cpuMs(service.pid), asterisk: cpuMs(asterisk), wall: performance.now() };
for (let i = 0; i < 100 && sink.streams.some((s) => !s.closed); i++) await sleep(100);
const metrics = await scrape(opsPort).catch(() => ({}));
const rssEndKiB = statusKiB(service.pid, 'VmRSS');
await stopService(service);
await sink.close();
const left = await ari('/channels').catch(() => undefined);
const bridges = await ari('/bridges').catch(() => undefined);

const streams = sink.streams.map((s) => {
  const spanFrames = Math.round((s.lastFrameAtMs - s.firstFrameAtMs) / 20) + 1;
  return { label: s.start?.label, frames: s.frames, spanFrames, errorPercent: (100 * (s.frames - spanFrames)) / spanFrames };
});
const legs = ['A', 'B'].map((leg) => metrics[`transcription_proxy_frames_received_total{leg="${leg}"}`]);
const aligned = samples.filter((s) => s.left && s.right);
const first = aligned[0];
const last = aligned.at(-1);
const drift = (a, b) => (b === undefined || a === undefined ? undefined : b.offsetMs - a.offsetMs);
const steady = samples.filter((s) => s.minute >= 5);
const result = {
  transport,
  mode,
  minutes,
  sipp: callerResult.code === 0 && calleeResult.code === 0 ? 'ok' : `caller ${callerResult.code}, callee ${calleeResult.code}`,
  streams,
  framesReceivedByLeg: legs,
  legErrorPercent: legs.map((n) => (streams[0] ? (100 * (n - streams[0].spanFrames)) / streams[0].spanFrames : undefined)),
  alignment:
    mode === 'stereo'
      ? {
          minutesJudged: aligned.length,
          judgedFrames: { left: trackers.left.judged, right: trackers.right.judged },
          leftDriftMs: drift(first?.left, last?.left),
          rightDriftMs: drift(first?.right, last?.right),
          leftMinusRightFirstMs: first && first.left.offsetMs - first.right.offsetMs,
          leftMinusRightLastMs: last && last.left.offsetMs - last.right.offsetMs,
        }
      : undefined,
  aligner,
  allocator,
  rssIdleMiB: rssIdleKiB / 1024,
  rssAt5MinMiB: steady[0]?.rssMiB,
  rssEndMiB: rssEndKiB / 1024,
  heapAt5MinMiB: steady[0]?.heapUsedMiB,
  heapEndMiB: steady.at(-1)?.heapUsedMiB,
  serviceCpuPercent: (100 * (t1.service - t0.service)) / (t1.wall - t0.wall),
  asteriskCpuPercent: (100 * (t1.asterisk - t0.asterisk)) / (t1.wall - t0.wall),
  leftInAsterisk: { channels: left?.length, bridges: bridges?.length },
  samples: samples.map(({ minute, rssMiB, heapUsedMiB }) => ({ minute, rssMiB: +rssMiB.toFixed(1), heapUsedMiB: +heapUsedMiB.toFixed(1) })),
};
console.log(JSON.stringify(result));
record(out, result);
