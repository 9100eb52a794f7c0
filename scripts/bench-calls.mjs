// Load benchmark of the whole service: N calls at once through the real
// Asterisk test bed, SIPp callers and callee playing tones, the service as its
// own process (`serve`, as users run it) and a websocket sink counting frames.
// While all N calls are up it samples, for 10 s, the CPU used by the service
// and by Asterisk (from /proc), and the service's memory. It then checks that
// every stream got its frames. Results are recorded in docs/benchmarks.md.
//   npm run bench:calls -- [N ...] [--transport rtp|audiosocket|websocket]
// (needs root for the test bed, like the tests; starts and stops it unless it is running)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

const ROOT = new URL('..', import.meta.url).pathname;
const TESTBED = join(ROOT, 'asterisk/testbed.sh');
const HOLD_MS = 20_000;
const SAMPLE_MS = 10_000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

const args = process.argv.slice(2);
const transportAt = args.indexOf('--transport');
const transport = transportAt >= 0 ? args.splice(transportAt, 2)[1] : 'rtp';
const sizes = args.length > 0 ? args.map(Number) : [10, 25, 50];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** utime + stime of a process, in ms of CPU. */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function statusKiB(pid, key) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.match(/(\d+)/)?.[1] ?? NaN);
}

async function freeUdpPort() {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

function tone(dir, hz) {
  execFileSync('sox', [
    '-n',
    '-r',
    '8000',
    '-c',
    '1',
    '-e',
    'u-law',
    '-t',
    'raw',
    join(dir, 'tone.ulaw'),
    'synth',
    '60',
    'sine',
    String(hz),
  ]);
}

function sipp(scenario, hz, extra) {
  const dir = mkdtempSync(join(tmpdir(), 'atp-bench-sipp-'));
  tone(dir, hz);
  const child = spawn(
    'sipp',
    [
      '-sf',
      join(ROOT, 'test/sipp', scenario),
      '-i',
      '127.0.0.1',
      '-mi',
      '127.0.0.1',
      '-nostdin',
      '-timeout',
      '120',
      '-timeout_error',
      ...extra,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  return { done: new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr }))) };
}

/** A transcription server that only counts: frames per stream, streams open and closed. */
async function startSink() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const streams = [];
  server.on('connection', (socket) => {
    const stream = { frames: 0, closed: false };
    streams.push(stream);
    socket.on('message', (_data, isBinary) => {
      if (isBinary) stream.frames++;
    });
    socket.on('close', () => {
      stream.closed = true;
    });
  });
  return { url: `ws://127.0.0.1:${server.address().port}`, streams, close: () => new Promise((resolve) => server.close(resolve)) };
}

async function startService(env) {
  const child = spawn(process.execPath, [join(ROOT, 'dist/app/cli/main.js'), 'serve'], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('"msg":"service ready"')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out.slice(-2000)}`)));
  });
  child.stdout.resume();
  return child;
}

async function run(calls) {
  const sink = await startSink();
  const calleePort = await freeUdpPort();
  const service = await startService({
    ARI_URL: 'http://127.0.0.1:8088',
    ARI_USERNAME: 'transcription-proxy',
    ARI_PASSWORD: 'change-me-ari-secret',
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    STREAM_URL: sink.url,
    MEDIA_TRANSPORT: transport,
    LOG_LEVEL: 'info',
    RTP_PORT_START: '20000',
    RTP_PORT_END: '29999',
  });
  const asteriskPid = Number(execFileSync('bash', [TESTBED, 'status'], { encoding: 'utf8' }).match(/pid (\d+)/)[1]);
  const rssIdleKiB = statusKiB(service.pid, 'VmRSS');

  const callee = sipp('callee.xml', 1330, ['-p', String(calleePort), '-mp', '46000', '-m', String(calls)]);
  const caller = sipp('caller.xml', 440, [
    '-p',
    String(await freeUdpPort()),
    '-mp',
    '42000',
    '-s',
    '4567',
    '-d',
    String(HOLD_MS),
    '-m',
    String(calls),
    '-l',
    String(calls),
    '-r',
    '10',
    '127.0.0.1:5060',
  ]);

  const open = () => sink.streams.filter((s) => !s.closed && s.frames > 0).length;
  const deadline = Date.now() + 30_000;
  while (open() < 2 * calls) {
    if (Date.now() > deadline) throw new Error(`only ${open()} of ${2 * calls} streams carried audio within 30 s`);
    await sleep(100);
  }
  const [service0, asterisk0, wall0] = [cpuMs(service.pid), cpuMs(asteriskPid), performance.now()];
  await sleep(SAMPLE_MS);
  const [service1, asterisk1, wall1] = [cpuMs(service.pid), cpuMs(asteriskPid), performance.now()];
  const stillOpen = open();
  const rssLoadedKiB = statusKiB(service.pid, 'VmRSS');

  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  while (sink.streams.some((s) => !s.closed)) await sleep(100);
  const peakKiB = statusKiB(service.pid, 'VmHWM');
  service.kill('SIGTERM');
  await once(service, 'exit');
  await sink.close();

  // Each stream should carry the whole call: HOLD_MS of audio at 50 frames a second.
  const expected = HOLD_MS / 20;
  const short = sink.streams.filter((s) => s.frames < expected * 0.97);
  const wall = wall1 - wall0;
  return {
    calls,
    transport,
    sipp: callerResult.code === 0 && calleeResult.code === 0 ? 'ok' : `caller ${callerResult.code}, callee ${calleeResult.code}`,
    streams: sink.streams.length,
    streamsOpenWhileSampling: stillOpen,
    streamsShort: short.length,
    framesMin: Math.min(...sink.streams.map((s) => s.frames)),
    serviceCpuPercent: (100 * (service1 - service0)) / wall,
    asteriskCpuPercent: (100 * (asterisk1 - asterisk0)) / wall,
    serviceRssIdleMiB: rssIdleKiB / 1024,
    serviceRssLoadedMiB: rssLoadedKiB / 1024,
    servicePeakRssMiB: peakKiB / 1024,
  };
}

const running = spawnSync('bash', [TESTBED, 'status'], { stdio: 'ignore' }).status === 0;
if (!running) execFileSync('bash', [TESTBED, 'start'], { stdio: 'inherit' });
try {
  const results = [];
  for (const calls of sizes) {
    const result = await run(calls);
    console.log(JSON.stringify(result));
    results.push(result);
  }
  console.log(
    `\n| concurrent calls | transport | service CPU (% of a core) | per call | Asterisk CPU (% of a core) | service RSS idle → loaded (MiB) | peak RSS | streams short of frames |`,
  );
  console.log('|---:|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.calls} | ${r.transport} | ${r.serviceCpuPercent.toFixed(1)} | ${(r.serviceCpuPercent / r.calls).toFixed(2)} | ${r.asteriskCpuPercent.toFixed(1)} | ${r.serviceRssIdleMiB.toFixed(0)} → ${r.serviceRssLoadedMiB.toFixed(0)} | ${r.servicePeakRssMiB.toFixed(0)} | ${r.streamsShort} of ${r.streams} |`,
    );
  }
} finally {
  if (!running) execFileSync('bash', [TESTBED, 'stop'], { stdio: 'inherit' });
}
