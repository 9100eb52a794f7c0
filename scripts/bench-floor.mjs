// The floor under the service's CPU: what Node itself spends to receive a
// tapped leg's RTP and send it on as websocket messages, with none of the
// service's code in between. A relay process (the one measured) binds one UDP
// socket per stream, as the RTP tap does, and opens one websocket per stream
// to a sink process; a source process sends each stream a 652-byte RTP
// datagram (slin16, 20 ms) every 20 ms, the streams' phases spread over the
// 20 ms as Asterisk's channels are. The relay strips the RTP header and sends
// the payload (or, with --batch N, N payloads as one message, like
// STREAM_BUFFER_SIZE = N × 20 ms). `recv` only receives. `service` runs the
// service's own chain per frame instead (dist/: the RTP tap receiver with its
// source check, sequence count and byte swap, a call's split streams with
// their buffering, acknowledgements and heartbeats, the frame-latency
// histogram), two streams per call, so that the difference to `relay` is what
// the service's code adds. Each configuration reports the measured process's
// CPU (user + sys) as a share of one core.
//   npm run bench:floor -- [--streams 50,100] [--batch 1,5] [--modes recv,relay,service] [--seconds 20]
//                          [--node-args "FLAGS"] [--service-env K=V,...] [--out FILE]
// (FLAGS: the measured process's node flags; --service-env: its environment beside the shipped allocator's)
// Needs the built service (npm run build); no Asterisk, no root; loopback only, ports chosen by the kernel.
import { fork } from 'node:child_process';
import dgram from 'node:dgram';
import { createWriteStream } from 'node:fs';
import { cpus } from 'node:os';
import { WebSocket, WebSocketServer } from 'ws';
import { allocatorOf, option, record, serviceEnvOption, shippedAllocatorEnv } from './bench-lib.mjs';

const FRAME_MS = 20;
const DATAGRAM_BYTES = 12 + 640;
const role = process.argv[2];

const once = (emitter, event) => new Promise((resolve) => emitter.once(event, resolve));
const bindUdp = async () => {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return socket;
};

/** The sink: a websocket server that counts messages; tells its port, then its count when asked. */
async function sink() {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  let messages = 0;
  server.on('connection', (socket) => socket.on('message', () => messages++));
  process.send({ port: server.address().port });
  process.on('message', () => process.send({ messages }));
}

/** The relay: one UDP socket and one websocket per stream; reports its CPU between 'start' and 'stop'. */
async function relay(mode, streams, batch, sinkPort) {
  let received = 0;
  let sent = 0;
  const ports = [];
  if (mode === 'service') {
    const calls = await serviceCalls(streams / 2, batch, sinkPort, () => received++);
    process.send({ ports: calls.ports });
    process.once('message', (sources) => calls.expectSources(sources));
    await once(process, 'message');
    process.send('ready');
    reportCpu(() => ({ received, sent: calls.framesSent() }));
    return;
  }
  for (let i = 0; i < streams; i++) {
    const udp = await bindUdp();
    ports.push(udp.address().port);
    if (mode === 'recv') {
      udp.on('message', () => received++);
      continue;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${sinkPort}`, { perMessageDeflate: false });
    await once(ws, 'open');
    const pending = [];
    udp.on('message', (datagram) => {
      received++;
      const payload = datagram.subarray(12);
      if (batch === 1) {
        ws.send(payload, { binary: true });
        sent++;
        return;
      }
      pending.push(payload);
      if (pending.length < batch) return;
      ws.send(Buffer.concat(pending), { binary: true });
      sent += pending.length;
      pending.length = 0;
    });
  }
  process.send({ ports });
  reportCpu(() => ({ received, sent }));
}

/** Between the parent's 'start' and 'stop': this process's CPU and the frames `counts` says were received and sent. */
function reportCpu(counts) {
  let start;
  process.on('message', (message) => {
    if (message === 'start') start = { cpu: process.cpuUsage(), ...counts() };
    if (message === 'stop') {
      const cpu = process.cpuUsage(start.cpu);
      const now = counts();
      // Exits once it is sent (so that a --cpu-prof of the run is written).
      process.send(
        { userMs: cpu.user / 1000, sysMs: cpu.system / 1000, received: now.received - start.received, framesSent: now.sent - start.sent },
        () => process.exit(0),
      );
    }
  });
}

/**
 * `calls` calls as the service streams them after the answer: each leg's RtpTapReceiver (from the
 * service's port pool) hands its frames, as call-session does, to the call's streams
 * (createCallStreams, STREAM_MODE=split, the service's defaults), whose sent frames feed the
 * service's latency histogram. The sources' ports are known only after they bind: expectSources().
 */
async function serviceCalls(calls, batch, sinkPort, onFrame) {
  const dist = (path) => import(new URL(`../dist/app/${path}`, import.meta.url).href);
  const [
    { loadConfig },
    { RtpPortPool },
    { RtpTapReceiver },
    { createCallStreams },
    { streamConnectionFromConfig },
    { createLogger },
    { createMetrics },
  ] = await Promise.all(
    [
      'config/load-config.js',
      'media/rtp-port-pool.js',
      'media/rtp-tap-receiver.js',
      'transcription/call-streams.js',
      'transcription/stream-connection.js',
      'logging/logger.js',
      'ops/metrics.js',
    ].map(dist),
  );
  const { config } = loadConfig({
    cwd: '/nonexistent',
    env: { STREAM_URL: `ws://127.0.0.1:${sinkPort}`, STREAM_BUFFER_SIZE: String(20 * batch) },
  });
  const logger = createLogger('info', createWriteStream('/dev/null'));
  const metrics = createMetrics(
    { activeCalls: () => calls, liveStreams: () => [], callsAdopted: () => 0, ariReconnects: () => 0 },
    { defaultMetrics: false },
  );
  const pool = new RtpPortPool({ bindHost: '127.0.0.1', portStart: 40000, portEnd: 49999 });
  const connection = streamConnectionFromConfig(config);
  const receivers = [];
  const allStreams = [];
  for (let call = 0; call < calls; call++) {
    const identity = (leg, label) => ({
      label,
      leg,
      callId: `call-${call}`,
      channelId: `${leg}-${call}`,
      linkedId: `call-${call}`,
      sipCallId: '',
      direction: 'inbound',
      caller: '100',
      callee: '200',
      node: 'bench',
    });
    const streams = createCallStreams(
      { config, connection, logger, onFrameSent: (ms) => metrics.frameLatencyMs(ms) },
      identity('A', 'CALLER1'),
      identity('B', 'CALLER2'),
    );
    allStreams.push(streams);
    for (const leg of ['A', 'B']) {
      const receiver = await RtpTapReceiver.open(pool);
      receiver.onAudio((frame, lostBefore) => {
        onFrame();
        metrics.framesReceived(leg);
        streams.audio(leg, frame, performance.now(), lostBefore);
      });
      receivers.push(receiver);
    }
    streams.open();
  }
  return {
    ports: receivers.map((receiver) => receiver.port),
    expectSources: (sources) => receivers.forEach((receiver, i) => receiver.expectSource('127.0.0.1', sources[i])),
    framesSent: () => allStreams.reduce((sum, streams) => sum + streams.summaries().reduce((s, summary) => s + summary.framesSent, 0), 0),
  };
}

/** The source: every stream's datagram every 20 ms, stream i at phase i × 20 / streams ms. */
async function source(ports) {
  const sockets = [];
  for (let i = 0; i < ports.length; i++) sockets.push(await bindUdp());
  process.send({ sources: sockets.map((socket) => socket.address().port) });
  await once(process, 'message');
  const datagram = Buffer.alloc(DATAGRAM_BYTES);
  datagram[0] = 0x80;
  datagram[1] = 118;
  const t0 = performance.now();
  let next = 0; // datagrams sent so far, all streams, in turn
  const tick = () => {
    const due = Math.floor(((performance.now() - t0) / FRAME_MS) * ports.length);
    for (; next < due; next++) {
      const stream = next % ports.length;
      const packet = Buffer.from(datagram); // its own sequence number and SSRC
      packet.writeUInt16BE(Math.floor(next / ports.length) & 0xffff, 2);
      packet.writeUInt32BE(stream, 8);
      sockets[stream].send(packet, ports[stream], '127.0.0.1');
    }
    setTimeout(tick, 1);
  };
  tick();
}

async function run({ mode, streams, batch, seconds, nodeArgs, env }) {
  const here = new URL(import.meta.url).pathname;
  const sinkProcess = fork(here, ['sink']);
  const { port: sinkPort } = await once(sinkProcess, 'message');
  const relayProcess = fork(here, ['relay', mode, String(streams), String(batch), String(sinkPort)], {
    env: { ...process.env, ...env },
    execArgv: nodeArgs,
  });
  const { ports } = await once(relayProcess, 'message');
  const sourceProcess = fork(here, ['source', ports.join(',')]);
  try {
    const { sources } = await once(sourceProcess, 'message');
    if (mode === 'service') {
      relayProcess.send(sources);
      await once(relayProcess, 'message');
    }
    sourceProcess.send('go');
    await new Promise((resolve) => setTimeout(resolve, 2000)); // the relay's code warmed up
    relayProcess.send('start');
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    relayProcess.send('stop');
    const usage = await once(relayProcess, 'message');
    await once(relayProcess, 'exit');
    const cpuPercent = ((usage.userMs + usage.sysMs) / (seconds * 1000)) * 100;
    return {
      mode,
      streams,
      batch,
      seconds,
      nodeArgs,
      ...(env.MALLOC_CONF !== shippedAllocatorEnv().MALLOC_CONF && { mallocConf: env.MALLOC_CONF }),
      cpuPercent: Number(cpuPercent.toFixed(2)),
      userPercent: Number(((usage.userMs / (seconds * 1000)) * 100).toFixed(2)),
      sysPercent: Number(((usage.sysMs / (seconds * 1000)) * 100).toFixed(2)),
      usPerDatagram: Number((((usage.userMs + usage.sysMs) * 1000) / usage.received).toFixed(1)),
      received: usage.received,
      expected: (streams * seconds * 1000) / FRAME_MS,
      framesSent: usage.framesSent,
    };
  } finally {
    for (const child of [sourceProcess, relayProcess, sinkProcess]) child.kill('SIGKILL');
  }
}

if (role === 'sink') await sink();
else if (role === 'relay') await relay(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6]));
else if (role === 'source') await source(process.argv[3].split(',').map(Number));
else {
  const args = process.argv.slice(2);
  const streamCounts = option(args, 'streams', '50,100').split(',').map(Number);
  const batches = option(args, 'batch', '1,5').split(',').map(Number);
  const seconds = Number(option(args, 'seconds', '20'));
  const out = option(args, 'out', undefined);
  const nodeArgs = (option(args, 'node-args', '') || '').split(' ').filter(Boolean);
  const modes = option(args, 'modes', 'recv,relay,service').split(',');
  const env = { ...shippedAllocatorEnv(), ...serviceEnvOption(args) };
  const configurations = [];
  for (const streams of streamCounts) {
    if (modes.includes('recv')) configurations.push({ mode: 'recv', streams, batch: 1 });
    for (const batch of batches)
      for (const mode of ['relay', 'service']) if (modes.includes(mode)) configurations.push({ mode, streams, batch });
  }
  const results = [];
  for (const configuration of configurations) {
    const result = await run({ ...configuration, seconds, nodeArgs, env });
    results.push(result);
    console.log(
      `${result.mode.padEnd(5)} ${String(result.streams).padStart(4)} streams, batch ${result.batch}: ` +
        `${result.cpuPercent} % of a core (user ${result.userPercent} + sys ${result.sysPercent}), ` +
        `${result.usPerDatagram} µs per datagram, ${result.received} of ${result.expected} received, ${result.framesSent} sent`,
    );
  }
  record(out, {
    at: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    allocator: allocatorOf(env),
    results,
  });
}
