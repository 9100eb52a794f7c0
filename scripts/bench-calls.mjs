// Load benchmark of the whole service: N calls at once through the real
// Asterisk, SIPp callers and callee playing tones, the service as its own
// process (`serve`, as users run it, LOG_LEVEL=info) and a websocket sink
// counting frames. While all N calls are up it samples, for 10 s, the CPU used
// by the service and by Asterisk (from /proc), and the service's memory; then,
// for 5 s, it captures loopback traffic (tcpdump) to measure each frame's
// latency through the service from outside, next to the service's own
// histogram over the same seconds. First audio: from leg B's SIP answer
// (captured) to each stream's first frame at the sink. It then checks that
// every stream got its frames. Results: stdout, --out FILE (JSON lines), and
// --plot FILE.svg (bench-plot.mjs). Recorded in docs/benchmarks.md.
//   npm run bench:calls -- [N ...] [--transport rtp|audiosocket|websocket] [--mode split|stereo]
//     [--hold S] [--cpu-prof DIR] [--main CLI.js] [--no-capture] [--out FILE] [--plot FILE]
//     [--service-env K=V,...] [--node-args "FLAGS"] [--service-prefix "chrt --rr 1"] [--label TEXT] (the service's environment, and what the results say it was)
// Needs root. On the shared test bed (started and stopped unless it runs: hold its lock),
// or on an Asterisk of its own: scripts/bench-cell.sh NAME node scripts/bench-calls.mjs ...
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TESTBED,
  asteriskPid,
  benchService,
  cpuMs,
  cpuSplitMs,
  freeUdpPort,
  median,
  option,
  percentile,
  serviceEnvOption,
  record,
  scrape,
  sipp,
  sleep,
  startSink,
  statusKiB,
  stopService,
  ulawTone,
} from './bench-lib.mjs';
import { histogramDelta, histogramQuantile, matchLatencies, sipAnswers, startCapture } from './bench-capture.mjs';
import { writePlot } from './bench-plot.mjs';

const SAMPLE_MS = 10_000;
const CAPTURE_MS = 5_000;
const LATENCY = 'transcription_proxy_frame_latency_seconds';

const args = process.argv.slice(2);
const transport = option(args, 'transport', 'rtp');
const mode = option(args, 'mode', 'split');
const profDir = option(args, 'cpu-prof', undefined);
const main = option(args, 'main', undefined);
const out = option(args, 'out', undefined);
const plot = option(args, 'plot', undefined);
const holdMs = Number(option(args, 'hold', '30')) * 1000;
const capture = !args.includes('--no-capture');
const extraEnv = serviceEnvOption(args);
const label = option(args, 'label', undefined);
/** A command the service runs under: --service-prefix "chrt --rr 1". */
const servicePrefix = (option(args, 'service-prefix', '') || '').split(' ').filter(Boolean);
/** Node's own flags for the service (e.g. --node-args "--max-semi-space-size=1"). */
const nodeArgs = (option(args, 'node-args', '') || '').split(' ').filter(Boolean);
const sizes = args.filter((a) => !a.startsWith('--')).map(Number);
if (sizes.length === 0) sizes.push(10, 25, 50);

/** One size; a run cut short leaves nothing running (SIPp, the service, the captures). */
async function run(calls) {
  const held = {};
  try {
    return await measure(calls, held);
  } catch (error) {
    held.caller?.child.kill();
    held.callee?.child.kill();
    if (held.service) await stopService(held.service);
    await held.sip?.stop();
    await held.media?.stop();
    await held.sink?.close();
    throw error;
  }
}

async function measure(calls, held) {
  const sink = (held.sink = await startSink());
  /** RTP port of each leg's tap, from the service's "leg tapped" lines. */
  const tapPorts = new Map();
  const { service, calleePort, opsPort, allocator } = await benchService(sink, {
    transport,
    mode,
    env: extraEnv,
    ...(main && { main }),
    prefix: servicePrefix,
    nodeArgs: [...nodeArgs, ...(profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])],
    onLog(line) {
      if (line.msg === 'leg tapped' && typeof line.externalHost === 'string')
        tapPorts.set(line.legChannelId, Number(line.externalHost.split(':').at(-1)));
    },
  });
  held.service = service;
  const asterisk = asteriskPid();
  await sleep(2000);
  const rssIdleKiB = statusKiB(service.pid, 'VmRSS');
  // RSS counts the node binary's code pages, shared with every node process; RssAnon is the service's own.
  const anonIdleKiB = statusKiB(service.pid, 'RssAnon');

  const work = mkdtempSync(join(tmpdir(), 'atp-bench-calls-'));
  const sip = (held.sip = capture
    ? await startCapture(join(work, 'sip.pcap'), `udp src port ${calleePort}`, { snaplen: 2048 })
    : undefined);
  const callee = (held.callee = await sipp('callee.xml', (dir) => ulawTone(dir, 1330), [
    '-p',
    String(calleePort),
    '-mp',
    '46000',
    '-m',
    String(calls),
  ]));
  const caller = (held.caller = await sipp('caller.xml', (dir) => ulawTone(dir, 440), [
    '-p',
    String(await freeUdpPort()),
    '-mp',
    '42000',
    '-s',
    '4567',
    '-d',
    String(holdMs),
    '-m',
    String(calls),
    '-l',
    String(calls),
    '-r',
    '10',
    '127.0.0.1:5060',
  ]));

  const perCall = mode === 'split' ? 2 : 1;
  const open = () => sink.streams.filter((s) => !s.closed && s.frames > 0).length;
  const deadline = Date.now() + 30_000;
  while (open() < perCall * calls) {
    if (Date.now() > deadline) throw new Error(`only ${open()} of ${perCall * calls} streams carried audio within 30 s`);
    await sleep(100);
  }
  await sleep(1000);
  const [split0, asterisk0, wall0] = [cpuSplitMs(service.pid), cpuMs(asterisk), performance.now()];
  // RSS through the sample, every 250 ms: under load it is a sawtooth (garbage, Buffers among it,
  // piles up in V8's old space until a full collection), and one reading can fall anywhere on it.
  const rssDuringKiB = [];
  while (performance.now() - wall0 < SAMPLE_MS) {
    rssDuringKiB.push(statusKiB(service.pid, 'VmRSS'));
    await sleep(Math.min(250, SAMPLE_MS - (performance.now() - wall0)));
  }
  const [split1, asterisk1, wall1] = [cpuSplitMs(service.pid), cpuMs(asterisk), performance.now()];
  const stillOpen = open();
  // Others' work on the machine during the sample: the 1-minute load average.
  const load = loadavg()[0];
  const rssLoadedKiB = statusKiB(service.pid, 'VmRSS');
  const anonLoadedKiB = statusKiB(service.pid, 'RssAnon');
  const rssLowKiB = Math.min(...rssDuringKiB);
  // What of it is V8's heap (used, committed) and memory outside it held by JavaScript objects (Buffers).
  const loadedMetrics = await scrape(opsPort);
  const metricMiB = (name) => (loadedMetrics[`transcription_proxy_nodejs_${name}`] ?? NaN) / 2 ** 20;

  let latency;
  if (capture) {
    const file = join(work, 'media.pcap');
    const portsRange = transport === 'rtp' ? 'udp dst portrange 20000-29999 or ' : '';
    const sinkPort = new URL(sink.url).port;
    const before = await scrape(opsPort);
    const media = (held.media = await startCapture(file, `${portsRange}tcp dst port ${sinkPort}`));
    await sleep(CAPTURE_MS);
    await media.stop();
    const after = await scrape(opsPort);
    const buckets = histogramDelta(before, after, LATENCY);
    latency = {
      histogramFrames: buckets.at(-1)?.[1],
      histogramP50Ms: histogramQuantile(buckets, 0.5) * 1000,
      histogramP99Ms: histogramQuantile(buckets, 0.99) * 1000,
    };
    if (transport === 'rtp') {
      const legs = new Map();
      for (const stream of sink.streams) {
        const legsOfStream = stream.start?.legs ?? (stream.start ? [{ channelId: stream.start.channelId }] : []);
        legsOfStream.forEach((leg, channel) => {
          const port = tapPorts.get(leg.channelId);
          if (port !== undefined) legs.set(port, { stream: stream.remotePort, channel, stereo: mode === 'stereo' });
        });
      }
      const matched = matchLatencies(file, legs);
      Object.assign(latency, {
        captureFrames: matched.latencies.length,
        captureMatched: matched.matched,
        captureUnmatched: matched.unmatched,
        captureP50Ms: percentile(matched.latencies, 50),
        captureP99Ms: percentile(matched.latencies, 99),
        captureMaxMs: Math.max(...matched.latencies),
      });
    }
  }

  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  while (sink.streams.some((s) => !s.closed)) await sleep(100);
  const peakKiB = statusKiB(service.pid, 'VmHWM');
  await stopService(service);
  await sink.close();

  let firstAudio;
  if (sip) {
    await sip.stop();
    const answers = sipAnswers(join(work, 'sip.pcap'));
    // Leg B's SIP Call-ID: on its own stream (split), or in the call's legs (stereo).
    const answerOfCall = new Map();
    for (const stream of sink.streams) {
      const b = stream.start?.legs?.find((l) => l.leg === 'B') ?? (stream.start?.leg === 'B' ? stream.start : undefined);
      if (b && answers.has(b.sipCallId)) answerOfCall.set(stream.start.callId, answers.get(b.sipCallId));
    }
    const delays = sink.streams
      .filter((s) => s.start && answerOfCall.has(s.start.callId) && s.firstFrameAtMs !== undefined)
      .map((s) => s.firstFrameAtMs - answerOfCall.get(s.start.callId));
    firstAudio = { streams: delays.length, p50Ms: median(delays), p95Ms: percentile(delays, 95), maxMs: Math.max(...delays) };
  }
  rmSync(work, { recursive: true, force: true });

  // Each stream should carry the whole call: holdMs of audio at 50 frames a second.
  const expected = holdMs / 20;
  const short = sink.streams.filter((s) => s.frames < expected * 0.97);
  const wall = wall1 - wall0;
  const serviceUser = (100 * (split1.user - split0.user)) / wall;
  const serviceSystem = (100 * (split1.system - split0.system)) / wall;
  const asteriskCpu = (100 * (asterisk1 - asterisk0)) / wall;
  return {
    date: new Date().toISOString(),
    calls,
    transport,
    mode,
    ...(label !== undefined && { label }),
    ...(main !== undefined && { main }),
    allocator,
    ...(Object.keys(extraEnv).length > 0 && { serviceEnv: extraEnv }),
    ...(nodeArgs.length > 0 && { nodeArgs }),
    ...(servicePrefix.length > 0 && { servicePrefix: servicePrefix.join(' ') }),
    sipp: callerResult.code === 0 && calleeResult.code === 0 ? 'ok' : `caller ${callerResult.code}, callee ${calleeResult.code}`,
    loadAverage: load,
    streams: sink.streams.length,
    streamsOpenWhileSampling: stillOpen,
    streamsShort: short.length,
    framesMin: Math.min(...sink.streams.map((s) => s.frames)),
    serviceCpuPercent: serviceUser + serviceSystem,
    serviceUserPercent: serviceUser,
    serviceSystemPercent: serviceSystem,
    asteriskCpuPercent: asteriskCpu,
    ratio: (serviceUser + serviceSystem) / asteriskCpu,
    serviceRssIdleMiB: rssIdleKiB / 1024,
    serviceRssLoadedMiB: rssLoadedKiB / 1024,
    perCallMiB: (rssLoadedKiB - rssIdleKiB) / 1024 / calls,
    serviceRssDuringMiB: { min: rssLowKiB / 1024, max: Math.max(...rssDuringKiB) / 1024 },
    perCallLowMiB: (rssLowKiB - rssIdleKiB) / 1024 / calls,
    serviceAnonIdleMiB: anonIdleKiB / 1024,
    serviceAnonLoadedMiB: anonLoadedKiB / 1024,
    serviceHeapLoadedMiB: {
      used: metricMiB('heap_size_used_bytes'),
      total: metricMiB('heap_size_total_bytes'),
      external: metricMiB('external_memory_bytes'),
    },
    servicePeakRssMiB: peakKiB / 1024,
    latency,
    firstAudio,
  };
}

const fmt = (value, digits = 1) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));

const inCell = process.env.ATP_BENCH_ASTERISK_PID !== undefined;
const running = inCell || spawnSync('bash', [TESTBED, 'status'], { stdio: 'ignore' }).status === 0;
if (!running) execFileSync('bash', [TESTBED, 'start'], { stdio: 'inherit' });
try {
  const results = [];
  for (const calls of sizes) {
    const result = await run(calls);
    console.log(JSON.stringify(result));
    record(out, result);
    results.push(result);
  }
  console.log(
    '\n| calls | transport | mode | service CPU % (user + sys) | Asterisk CPU % | service / Asterisk | RSS idle → loaded (MiB) | of it anonymous | per call | latency p50 / p99 capture (ms) | histogram p50 / p99 | first audio p50 / p95 (ms) | streams short | load average |',
  );
  console.log('|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const l = r.latency ?? {};
    console.log(
      `| ${r.calls} | ${r.transport} | ${r.mode} | ${fmt(r.serviceCpuPercent)} (${fmt(r.serviceUserPercent)} + ${fmt(r.serviceSystemPercent)}) | ${fmt(r.asteriskCpuPercent)} | ${fmt(r.ratio, 2)} | ${fmt(r.serviceRssIdleMiB, 0)} → ${fmt(r.serviceRssLoadedMiB, 0)} | ${fmt(r.serviceAnonIdleMiB, 0)} → ${fmt(r.serviceAnonLoadedMiB, 0)} | ${fmt(r.perCallMiB, 2)} | ${fmt(l.captureP50Ms, 2)} / ${fmt(l.captureP99Ms, 2)} | ${fmt(l.histogramP50Ms, 2)} / ${fmt(l.histogramP99Ms, 2)} | ${fmt(r.firstAudio?.p50Ms, 0)} / ${fmt(r.firstAudio?.p95Ms, 0)} | ${r.streamsShort} of ${r.streams} | ${fmt(r.loadAverage)} |`,
    );
  }
  if (plot) writePlot(plot, results);
} finally {
  if (!running) execFileSync('bash', [TESTBED, 'stop'], { stdio: 'inherit' });
}
