// Soak: many calls through the real Asterisk, a fixed number at a time, each
// held for a random time (SIPp's uniform pause), the service as its own
// process (`serve`, LOG_LEVEL=info) and a websocket sink counting frames. It
// checks that every call yielded both labelled streams (CALLER1, CALLER2) and
// that each carried the frames of the time it lasted (its frame rate against the
// clock, the median over half-stream spans, so that the audio buffered while its
// websocket opened, arriving in one burst, does not count), and the two streams
// of a call the same count, within 3 %. Afterwards: Asterisk holds no channel or
// bridge, and the service holds no UDP port, TCP connection, file descriptor or
// timer more than it held idle (from /proc and the ops endpoint's
// nodejs_active_resources), and its RSS is back within 10 % of idle. Exits 1
// when a check fails. Results: stdout, and with --out as a JSON line.
//   npm run bench:soak -- [--calls 1000] [--concurrent 50] [--min-s 10] [--max-s 30]
//     [--transport rtp|audiosocket|websocket] [--service-env K=V,...] [--settle-s 30] [--watch-s 0] [--out FILE] [--main CLI]
// (--watch-s: after the reading at --settle-s, RSS every 10 s for that long more, as rssLater; the
// verdict stays the reading at --settle-s. Idle and after also list the largest resident mappings.)
// Run it on an Asterisk of its own: scripts/bench-cell.sh soak node scripts/bench-soak.mjs ...
// (npm run bench:soak does), or on the test bed under its lock for a short one.
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ROOT,
  ari,
  asteriskPid,
  benchService,
  cpuMs,
  fdKinds,
  freeUdpPort,
  frameRateRatio,
  option,
  serviceEnvOption,
  record,
  residentByMapping,
  scrape,
  sipp,
  sleep,
  socketsOf,
  startSink,
  statusKiB,
  stopService,
  ulawTone,
} from './bench-lib.mjs';

const args = process.argv.slice(2);
const calls = Number(option(args, 'calls', '1000'));
const concurrent = Number(option(args, 'concurrent', '50'));
const minMs = Number(option(args, 'min-s', '10')) * 1000;
const maxMs = Number(option(args, 'max-s', '30')) * 1000;
const settleMs = Number(option(args, 'settle-s', '30')) * 1000;
// After the verdict's reading (--settle-s after the calls): RSS every 10 s for this long more, to see where it goes.
const watchMs = Number(option(args, 'watch-s', '0')) * 1000;
const transport = option(args, 'transport', 'rtp');
const out = option(args, 'out', undefined);
const main = option(args, 'main', undefined);
const extraEnv = serviceEnvOption(args);

/**
 * The V8 heap the service still uses after a full garbage collection: a heap snapshot (taken on
 * SIGUSR2, --heapsnapshot-signal) collects first. Resolves once the snapshot is written.
 */
async function heapAfterGcMiB(pid, opsPort) {
  const before = new Set(readdirSync(work));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 600; i++) {
    await sleep(100);
    const written = readdirSync(work).filter((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    // The file appears when the snapshot starts; the service answers scrapes again once it is written.
    if (written.length > 0) {
      const metrics = await scrape(opsPort);
      for (const f of written) rmSync(join(work, f));
      return (metrics['transcription_proxy_nodejs_heap_size_used_bytes'] ?? NaN) / 2 ** 20;
    }
  }
  return NaN;
}

/** What the service holds that a call could leave behind. */
async function holdings(pid, opsPort) {
  const rssMiB = statusKiB(pid, 'VmRSS') / 1024;
  const metrics = await scrape(opsPort);
  // Not the connections to the ops endpoint: those are this script's own scrapes (fetch keeps them).
  const sockets = socketsOf(pid);
  const scrapes = sockets.tcp.filter((socket) => socket.local === opsPort).length;
  sockets.tcp = sockets.tcp.filter((socket) => socket.local !== opsPort);
  // What keeps the event loop alive, by type (Timeout, UDPWrap, TCPSocketWrap, ...): process.getActiveResourcesInfo().
  const resources = {};
  for (const [key, value] of Object.entries(metrics)) {
    const type = /^transcription_proxy_nodejs_active_resources\{type="([^"]+)"\}$/.exec(key)?.[1];
    if (type !== undefined) resources[type] = value;
  }
  const kinds = fdKinds(pid);
  kinds.socket -= scrapes;
  return {
    fds: Object.values(kinds).reduce((a, b) => a + b, 0),
    fdKinds: kinds,
    udpPorts: sockets.udpPorts.length,
    tcp: sockets.tcp.length,
    tcpSockets: sockets.tcp,
    timers: resources.Timeout ?? 0,
    resources,
    rssMiB,
    mappings: residentByMapping(pid),
    heapUsedMiB: (metrics['transcription_proxy_nodejs_heap_size_used_bytes'] ?? NaN) / 2 ** 20,
    heapTotalMiB: (metrics['transcription_proxy_nodejs_heap_size_total_bytes'] ?? NaN) / 2 ** 20,
    externalMiB: (metrics['transcription_proxy_nodejs_external_memory_bytes'] ?? NaN) / 2 ** 20,
  };
}

const work = mkdtempSync(join(tmpdir(), 'atp-bench-soak-'));
// caller.xml with its hold time drawn per call.
const scenario = join(work, 'caller-soak.xml');
writeFileSync(
  scenario,
  readFileSync(join(ROOT, 'test/sipp/caller.xml'), 'utf8').replace(
    '<pause />',
    `<pause distribution="uniform" min="${minMs}" max="${maxMs}" />`,
  ),
);

const warnings = {};
const warningSamples = {};
const sink = await startSink({ keepArrivals: true });
const { service, calleePort, opsPort, allocator } = await benchService(sink, {
  transport,
  mode: 'split',
  env: extraEnv,
  ...(main && { main }),
  nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${work}`],
  // What went wrong, by message: the service's warnings and errors.
  onLog(line) {
    if (line.level < 40) return;
    warnings[line.msg] = (warnings[line.msg] ?? 0) + 1;
    // Why, for the first few of each message.
    const why = typeof line.err === 'object' ? (line.err?.message ?? JSON.stringify(line.err)) : line.err;
    const samples = (warningSamples[line.msg] ??= []);
    if (samples.length < 3 && why !== undefined) samples.push(String(why).slice(0, 300));
  },
});
const asterisk = asteriskPid();
// Idle and after are both taken once the service has been idle --settle-s: V8 hands back what
// start-up used after 20 to 30 s of idleness (bench:idle), and the allocator its freed pages.
await sleep(settleMs);
const idle = await holdings(service.pid, opsPort);

// Calls arrive at the rate that keeps `concurrent` up at the mean hold time; -l caps them.
const rate = Math.max(1, Math.round((concurrent / ((minMs + maxMs) / 2)) * 1000 * 10) / 10);
const timeoutSeconds = Math.ceil((calls / rate) * 1.5 + maxMs / 1000 + 300);
const started = performance.now();
const cpu0 = { service: cpuMs(service.pid), asterisk: cpuMs(asterisk) };
const callee = await sipp('callee.xml', (dir) => ulawTone(dir, 1330, 60), ['-p', String(calleePort), '-mp', '46000', '-m', String(calls)], {
  timeoutSeconds,
});
const caller = await sipp(
  scenario,
  (dir) => ulawTone(dir, 440, 60),
  [
    '-p',
    String(await freeUdpPort()),
    '-mp',
    '42000',
    '-s',
    '4567',
    '-m',
    String(calls),
    '-l',
    String(concurrent),
    '-r',
    String(rate),
    '127.0.0.1:5060',
  ],
  { timeoutSeconds },
);
let peakOpen = 0;
// A caller that gave up leaves the callee waiting for calls that never come.
void caller.done.then(() => sleep(maxMs + 60_000)).then(() => callee.child.kill());
let done = false;
const bothDone = Promise.all([caller.done, callee.done]).then((results) => {
  done = true;
  return results;
});
while (!done) {
  peakOpen = Math.max(peakOpen, sink.streams.filter((s) => !s.closed).length);
  await Promise.race([sleep(1000), bothDone]);
}
const [callerResult, calleeResult] = await bothDone;
const elapsedMs = performance.now() - started;
const cpu1 = { service: cpuMs(service.pid), asterisk: cpuMs(asterisk) };
for (let i = 0; i < 300 && sink.streams.some((s) => !s.closed); i++) await sleep(100);
// Let the service finish its teardown and the garbage collector catch up, as an idle service would.
await sleep(settleMs);
const after = await holdings(service.pid, opsPort);
const rssLater = [];
for (let atS = 10; atS * 1000 <= watchMs; atS += 10) {
  await sleep(10_000);
  rssLater.push({ atS: settleMs / 1000 + atS, rssMiB: statusKiB(service.pid, 'VmRSS') / 1024 });
}
// Last: a snapshot's own memory stays in RSS after it.
after.heapAfterGcMiB = await heapAfterGcMiB(service.pid, opsPort);
const peakKiB = statusKiB(service.pid, 'VmHWM');
const channels = await ari('/channels');
const bridges = await ari('/bridges');
await stopService(service);
await sink.close();
rmSync(work, { recursive: true, force: true });

// Per call: its streams by label, and each stream's frames against the time it lasted.
const byCall = new Map();
for (const stream of sink.streams) {
  const callId = stream.start?.callId ?? 'unknown';
  if (!byCall.has(callId)) byCall.set(callId, []);
  byCall.get(callId).push(stream);
}
const problems = [];
for (const [callId, streams] of byCall) {
  const labels = streams.map((s) => s.start?.label).sort();
  if (labels.join() !== 'CALLER1,CALLER2') {
    problems.push({ callId, problem: 'streams', labels });
    continue;
  }
  for (const s of streams) {
    // Frames against the time they took to arrive, without the opening burst (frameRateRatio).
    const ratio = frameRateRatio(s.arrivalsMs);
    if (ratio === undefined || Math.abs(ratio - 1) > 0.03)
      problems.push({ callId, problem: 'frames', label: s.start.label, frames: s.frames, ratio: ratio && Math.round(ratio * 1000) / 1000 });
  }
  const [a, b] = streams.map((s) => s.frames);
  if (Math.abs(a - b) > 0.03 * Math.max(a, b)) problems.push({ callId, problem: 'legs differ', frames: [a, b] });
}
const leaks = {
  asteriskChannels: channels.length,
  asteriskBridges: bridges.length,
  fds: after.fds - idle.fds,
  udpPorts: after.udpPorts - idle.udpPorts,
  tcp: after.tcp - idle.tcp,
  timers: after.timers - idle.timers,
};
const rssWithin10Percent = after.rssMiB <= idle.rssMiB * 1.1;
const result = {
  date: new Date().toISOString(),
  bench: 'soak',
  transport,
  allocator,
  serviceEnv: extraEnv,
  calls,
  concurrent,
  holdS: [minMs / 1000, maxMs / 1000],
  ratePerS: rate,
  minutes: +(elapsedMs / 60_000).toFixed(1),
  sipp: callerResult.code === 0 && calleeResult.code === 0 ? 'ok' : `caller ${callerResult.code}, callee ${calleeResult.code}`,
  ...(callerResult.code !== 0 && { callerStderr: callerResult.stderr.slice(-2000) }),
  callsSeen: byCall.size,
  streams: sink.streams.length,
  peakOpenStreams: peakOpen,
  callsWithProblems: new Set(problems.map((p) => p.callId)).size,
  problems: problems.slice(0, 20),
  idle,
  after,
  leaks,
  rssWithin10Percent,
  ...(rssLater.length > 0 && { rssLater }),
  serviceWarnings: warnings,
  serviceWarningSamples: warningSamples,
  servicePeakRssMiB: peakKiB / 1024,
  serviceCpuPercent: (100 * (cpu1.service - cpu0.service)) / elapsedMs,
  asteriskCpuPercent: (100 * (cpu1.asterisk - cpu0.asterisk)) / elapsedMs,
};
console.log(JSON.stringify(result, null, 1));
record(out, result);
const ok =
  result.sipp === 'ok' && byCall.size === calls && problems.length === 0 && Object.values(leaks).every((n) => n <= 0) && rssWithin10Percent;
process.exit(ok ? 0 : 1);
