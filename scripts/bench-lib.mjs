// What the whole-call benchmarks share (bench-calls.mjs, bench-soak.mjs,
// bench-long.mjs): the service as its own process, SIPp peers, a websocket
// sink that counts what each stream carries, readings of /proc, and the
// Asterisk to measure (the test bed's, or a cell's from scripts/bench-cell.sh).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';

export const ROOT = new URL('..', import.meta.url).pathname;
export const TESTBED = join(ROOT, 'asterisk/testbed.sh');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Takes `--name value` out of `args`; `fallback` when absent. */
export function option(args, name, fallback) {
  const at = args.indexOf(`--${name}`);
  if (at < 0) return fallback;
  return args.splice(at, 2)[1];
}

/**
 * More of the service's environment: --service-env K=V,K=V (e.g. MALLOC_ARENA_MAX=2). A comma
 * starts the next variable only where NAME= follows, so values may hold commas
 * (MALLOC_CONF=narenas:1,background_thread:true).
 */
export function serviceEnvOption(args) {
  return Object.fromEntries(
    (option(args, 'service-env', '') || '')
      .split(/,(?=[A-Za-z_][A-Za-z0-9_]*=)/)
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

/** utime and stime of a process, in ms of CPU. */
export function cpuSplitMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { user: (Number(fields[11]) * 1000) / CLK_TCK, system: (Number(fields[12]) * 1000) / CLK_TCK };
}

export function cpuMs(pid) {
  const { user, system } = cpuSplitMs(pid);
  return user + system;
}

export function statusKiB(pid, key) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return Number(line?.match(/(\d+)/)?.[1] ?? NaN);
}

/** Resident MiB per mapping (the binary, [anon], [heap], [stack], libraries), the `top` largest first. */
export function residentByMapping(pid, top = 5) {
  const by = new Map();
  let current = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      current = head[1] || '[anon]';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) by.set(current, (by.get(current) ?? 0) + Number(rss[1]));
  }
  return [...by]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, kib]) => ({ name, MiB: kib / 1024 }));
}

/** The process's file descriptors by kind (socket, pipe, anon_inode:[eventfd], file), from /proc. */
export function fdKinds(pid) {
  const kinds = {};
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = target.startsWith('socket:')
      ? 'socket'
      : target.startsWith('pipe:')
        ? 'pipe'
        : target.startsWith('anon_inode:')
          ? target
          : 'file';
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** Socket inodes of a process, and the UDP ports and TCP connections behind them (from /proc/PID/net). */
export function socketsOf(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // gone meanwhile
    }
  }
  const rows = (file) =>
    readFileSync(`/proc/${pid}/net/${file}`, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => inodes.has(f[9]));
  const port = (hex) => parseInt(hex.split(':')[1], 16);
  return {
    udpPorts: [...rows('udp'), ...rows('udp6')].map((f) => port(f[1])),
    tcp: [...rows('tcp'), ...rows('tcp6')].map((f) => ({ local: port(f[1]), remote: port(f[2]), state: f[3] })),
  };
}

export async function freeUdpPort() {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

export async function freeTcpPort() {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Writes `seconds` of a sine at `hz` as raw µ-law 8 kHz, as SIPp plays it. */
export function ulawTone(dir, hz, seconds = 60) {
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
    String(seconds),
    'sine',
    String(hz),
  ]);
}

/** A SIPp peer (`scenario`: a file of test/sipp, or an absolute path) in a directory of its own with `tone.ulaw` written by `writeTone(dir)`. */
export async function sipp(scenario, writeTone, extra, { timeoutSeconds = 120 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'atp-bench-sipp-'));
  await writeTone(dir);
  const child = spawn(
    'sipp',
    [
      '-sf',
      isAbsolute(scenario) ? scenario : join(ROOT, 'test/sipp', scenario),
      '-i',
      '127.0.0.1',
      '-mi',
      '127.0.0.1',
      '-nostdin',
      '-timeout',
      String(timeoutSeconds),
      '-timeout_error',
      ...extra,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const done = new Promise((resolve) =>
    child.on('exit', (code) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, stderr });
    }),
  );
  return { child, done };
}

/** Wall-clock time in ms with µs resolution (comparable with a packet capture's timestamps). */
export const wallMs = () => performance.timeOrigin + performance.now();

/**
 * A transcription server that counts: per stream its start metadata, frames, first and last
 * frame times (wallMs), whether it closed; `onFrame(stream, data)` sees each binary frame.
 */
/**
 * The stream's frame rate against the clock, robustly: the median time per frame over
 * spans of half the stream (the e2e check's measure, test/support/stream-checks.ts).
 * Audio buffered while the websocket opened arrives in a burst at the start, and a
 * stall caught up in one burst mid-stream, move first-to-last spans but not this;
 * frames missing or doubled mid-stream do. 1 is exact; undefined below 50 frames.
 */
export function frameRateRatio(arrivalsMs) {
  if (arrivalsMs.length < 50) return undefined;
  const half = Math.floor(arrivalsMs.length / 2);
  const msPerFrame = [];
  for (let i = 0; i + half < arrivalsMs.length; i++) msPerFrame.push((arrivalsMs[i + half] - arrivalsMs[i]) / half);
  msPerFrame.sort((a, b) => a - b);
  return 20 / msPerFrame[Math.floor(msPerFrame.length / 2)];
}

/** `keepArrivals`: each stream keeps the arrival time of each 20 ms frame (`arrivalsMs`, for frameRateRatio). */
export async function startSink({ onFrame, keepArrivals = false } = {}) {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const streams = [];
  server.on('connection', (socket, request) => {
    const stream = {
      frames: 0,
      messages: 0,
      arrivalsMs: [],
      closed: false,
      start: undefined,
      firstFrameAtMs: undefined,
      lastFrameAtMs: undefined,
      remotePort: request.socket.remotePort,
    };
    streams.push(stream);
    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        const message = JSON.parse(data.toString());
        if (message.event === 'start' && stream.start === undefined) stream.start = message;
        return;
      }
      const now = wallMs();
      stream.firstFrameAtMs ??= now;
      stream.lastFrameAtMs = now;
      // 20 ms frames, also when a message carries several of them (STREAM_BUFFER_SIZE).
      const start = stream.start;
      const frameBytes = start ? (start.sampleRate * 2 * (start.channels ?? 1) * (start.frameMs ?? 20)) / 1000 : data.length;
      const frames = Math.max(1, Math.round(data.length / frameBytes));
      stream.frames += frames;
      stream.messages++;
      if (keepArrivals) for (let i = 0; i < frames; i++) stream.arrivalsMs.push(now);
      onFrame?.(stream, data);
    });
    socket.on('close', () => {
      stream.closed = true;
    });
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    streams,
    close: () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(resolve);
      }),
  };
}

/** Node's flags from the command's first line (`#!/usr/bin/env -S node FLAGS`), as the service is shipped. */
export function nodeFlags(main) {
  const words = readFileSync(main, 'utf8').split('\n', 1)[0].split(/\s+/);
  return words.slice(words.indexOf('node') + 1);
}

/**
 * `serve` as its own process, as users run it; resolves once it logged "service ready".
 * Its JSON log lines go to `onLog(record)`. `main`: the CLI to run (default: this checkout's dist/).
 * `prefix`: a command the service runs under (e.g. ['chrt', '--rr', '1'], real-time
 * scheduling like Asterisk's highpriority); it execs node, so the pid is still the service's.
 */
export async function startService(env, { main = join(ROOT, 'dist/app/cli/main.js'), nodeArgs = [], onLog, prefix = [] } = {}) {
  // The shipped flags first, so that --node-args can override one.
  const argv = [...nodeFlags(main), ...nodeArgs, main, 'serve'];
  const child = spawn(prefix[0] ?? process.execPath, prefix.length > 0 ? [...prefix.slice(1), process.execPath, ...argv] : argv, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let partial = '';
  let ready = false;
  const tail = [];
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop();
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 50) tail.shift();
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          continue;
        }
        onLog?.(record);
        if (!ready && record.msg === 'service ready') {
          ready = true;
          resolve();
        }
      }
    });
    child.once('exit', (code) => {
      if (!ready) reject(new Error(`serve exited ${code}: ${tail.join('\n')}`));
    });
  });
  return child;
}

/**
 * `serve` for a benchmark: the test bed's Asterisk, streams to `sink`, leg B's calls to a callee
 * on a free port, the ops endpoint on another. Resolves with the process, those ports and the
 * allocator it runs on (the shipped one, shippedAllocatorEnv, unless `env` says otherwise).
 */
export async function benchService(sink, { transport, mode, env = {}, ...options }) {
  const calleePort = await freeUdpPort();
  const opsPort = await freeTcpPort();
  const environment = serviceEnv({
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    STREAM_URL: sink.url,
    MEDIA_TRANSPORT: transport,
    STREAM_MODE: mode,
    OPS_LISTEN: `127.0.0.1:${opsPort}`,
    ...env,
  });
  const service = await startService(environment, options);
  return { service, calleePort, opsPort, allocator: allocatorOf(environment) };
}

export async function stopService(service) {
  if (service.exitCode !== null || service.signalCode !== null) return;
  service.kill('SIGTERM');
  await once(service, 'exit');
}

/** The Asterisk being measured: a bench cell's (scripts/bench-cell.sh) or the test bed's. */
export function asteriskPid() {
  if (process.env.ATP_BENCH_ASTERISK_PID) return Number(process.env.ATP_BENCH_ASTERISK_PID);
  return Number(execFileSync('bash', [TESTBED, 'status'], { encoding: 'utf8' }).match(/pid (\d+)/)[1]);
}

const ARI_AUTH = `Basic ${Buffer.from('transcription-proxy:change-me-ari-secret').toString('base64')}`;

/** A plain ARI request (GET unless `method` says otherwise) to the Asterisk on 127.0.0.1. */
export async function ari(path, { method = 'GET' } = {}) {
  const response = await fetch(`http://127.0.0.1:8088/ari${path}`, { method, headers: { Authorization: ARI_AUTH } });
  if (!response.ok) throw new Error(`ARI ${method} ${path}: HTTP ${response.status}`);
  return response.status === 204 ? undefined : response.json();
}

/** Prometheus text of the ops endpoint, parsed into { 'name{labels}': value }. */
export async function scrape(opsPort) {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const values = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const at = line.lastIndexOf(' ');
    values[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return values;
}

/** p-th percentile (0..100) of numbers. */
export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function median(values) {
  return percentile(values, 50);
}

/**
 * The allocator the service ships with: the systemd unit's LD_PRELOAD and MALLOC_CONF (jemalloc;
 * the image sets the same), where this machine has the library (Debian's libjemalloc2), so that
 * the benchmarks run the service as users run it; {} where it has not. `--service-env
 * LD_PRELOAD=` runs a benchmark on glibc's allocator instead.
 */
export function shippedAllocatorEnv() {
  shippedAllocator ??= readShippedAllocator();
  return shippedAllocator;
}
let shippedAllocator;

function readShippedAllocator() {
  const unit = readFileSync(join(ROOT, 'deploy/transcription-proxy.service'), 'utf8');
  const env = Object.fromEntries([...unit.matchAll(/^Environment=(LD_PRELOAD|MALLOC_CONF)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  let libraries = '';
  try {
    libraries = execFileSync('ldconfig', ['-p'], { encoding: 'utf8' });
  } catch {
    // No ldconfig on PATH: as if the library were missing.
  }
  return libraries.includes(`\t${env.LD_PRELOAD} `) ? env : {};
}

/** What a service started with `env` allocates with, for the results. */
export function allocatorOf(env) {
  return env.LD_PRELOAD ? env.LD_PRELOAD.replace(/^.*\/|\.so.*$/g, '').replace(/^lib/, '') : 'glibc';
}

/** The service's environment for the Asterisk on 127.0.0.1 (the test bed's credentials). */
export function serviceEnv(extra) {
  return {
    ...shippedAllocatorEnv(),
    ARI_URL: 'http://127.0.0.1:8088',
    ARI_USERNAME: 'transcription-proxy',
    ARI_PASSWORD: 'change-me-ari-secret',
    LOG_LEVEL: 'info',
    RTP_PORT_START: '20000',
    RTP_PORT_END: '29999',
    ...extra,
  };
}

/** Appends a JSON line to a results file (results survive a run cut short). */
export function record(file, result) {
  if (file) writeFileSync(file, `${JSON.stringify(result)}\n`, { flag: 'a' });
}

/** Power of `hz` in `count` 16-bit samples of `samples` from `offset` every `stride` samples (Goertzel), in dB. */
export function tonePowerDb(samples, sampleRate, hz, { offset = 0, stride = 1 } = {}) {
  const count = Math.floor((samples.length / 2 - offset) / stride);
  const coefficient = 2 * Math.cos((2 * Math.PI * hz) / sampleRate);
  let previous = 0;
  let beforePrevious = 0;
  for (let i = 0; i < count; i++) {
    const current = samples.readInt16LE(2 * (offset + i * stride)) / 32768 + coefficient * previous - beforePrevious;
    beforePrevious = previous;
    previous = current;
  }
  const power = previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious;
  return 10 * Math.log10(power / ((count * count) / 4) + 1e-12);
}

export const STEP_MS = 250;
export const CALLER_STEPS_HZ = [400, 550, 700, 850, 1000, 1150, 1300, 1450];
export const CALLEE_STEPS_HZ = [1700, 1850, 2000, 2150, 2300, 2450, 2600, 2750];

/** Writes `tone.ulaw`: a stepped tone (eight 250 ms steps, repeating) of `seconds`, µ-law 8 kHz, via the service's G.711 encoder. */
export async function steppedTone(dir, stepsHz, seconds) {
  const { encodeUlaw } = await import(join(ROOT, 'dist/app/media/g711.js'));
  const rate = 8000;
  const periodMs = STEP_MS * stepsHz.length;
  const periods = Math.ceil((seconds * 1000) / periodMs);
  const samplesPerStep = (rate * STEP_MS) / 1000;
  const pcm = Buffer.alloc(periods * stepsHz.length * samplesPerStep * 2);
  let phase = 0;
  let offset = 0;
  for (let period = 0; period < periods; period++) {
    for (const hz of stepsHz) {
      for (let i = 0; i < samplesPerStep; i++) {
        pcm.writeInt16LE(Math.round(Math.sin(phase) * 12000), offset);
        offset += 2;
        phase += (2 * Math.PI * hz) / rate;
      }
    }
  }
  writeFileSync(join(dir, 'tone.ulaw'), encodeUlaw(pcm));
}

/**
 * Follows where one channel's stepped tone sits against the stream's frames: each clean frame
 * k carrying step s puts the pattern's offset within [20k − 250s − 230, 20k − 250s] (mod 2 s).
 * `estimate()` intersects those windows (robustly: 1st and 99th percentiles) for the frames
 * seen since the last call, each frame's offset taken within half a period of the previous
 * estimate; a constant estimate means no frame of this channel was lost, repeated or shifted.
 */
export class StepTracker {
  constructor(stepsHz, sampleRate) {
    this.stepsHz = stepsHz;
    this.sampleRate = sampleRate;
    this.reference = undefined;
    this.centre = undefined;
    this.window = [];
    this.judged = 0;
  }

  /** One frame (index k in the stream) of this channel's samples (`offset`/`stride` for interleaved stereo). */
  push(k, samples, channel) {
    const powers = this.stepsHz.map((hz) => tonePowerDb(samples, this.sampleRate, hz, channel));
    let best = 0;
    for (let i = 1; i < powers.length; i++) if (powers[i] > powers[best]) best = i;
    const next = Math.max(...powers.filter((_, i) => i !== best));
    if (powers[best] < -40 || powers[best] - next < 10) return;
    const period = STEP_MS * this.stepsHz.length;
    const p = (((20 * k - STEP_MS * best) % period) + period) % period;
    this.reference ??= p;
    // Within half a period of the last estimate, so that an offset that moves past ±1 s over
    // the call (a channel falling behind under overload) stays one number instead of wrapping.
    const centre = this.centre ?? 0;
    this.window.push(((((p - this.reference - centre + period / 2) % period) + period) % period) - period / 2 + centre);
    this.judged++;
  }

  /** The offset (ms, relative to the first frame judged) from the frames since the last call. */
  estimate() {
    if (this.window.length < 50) return undefined;
    const low = percentile(this.window, 99) - (STEP_MS - 20);
    const high = percentile(this.window, 1);
    this.window = [];
    this.centre = (low + high) / 2;
    return { offsetMs: this.centre, widthMs: high - low };
  }
}
