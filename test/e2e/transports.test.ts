/**
 * The tone test of the call path over the other two tap transports, AudioSocket
 * (TCP, Asterisk connects to us) and WebSocket (we connect to Asterisk's
 * /media/ID): the labelled streams must be the same whichever transport
 * produced them. RTP is covered by inbound-call.test.ts.
 */
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  ASTERISK_HTTP_PORT,
  ASTERISK_SIP,
  ariRequest,
  asteriskLogTail,
  expectNothingLeftInAsterisk,
  listChannels,
} from '../support/testbed.js';
import type { ReceivedStream } from '../support/strict-stream-server.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { establishedTcp, resetTcp, type TcpConnection } from '../support/tcp-connections.js';
import type { MediaTransportKind } from '../../app/media/tap-transport.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';

const HOLD_MS = 5000;
let streamServer: StrictStreamServer;
let calleePort: number;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

afterEach(async () => {
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
  proxy?.expectIdle();
});

describe.each(['audiosocket', 'websocket'] as const)('MEDIA_TRANSPORT=%s', (transport) => {
  beforeAll(async () => {
    await proxy?.stop();
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      MEDIA_TRANSPORT: transport,
      TAP_NO_AUDIO_TIMEOUT_MS: '1000',
    });
  });

  it.each([
    { callerHz: 440, calleeHz: 1330 },
    { callerHz: 1330, calleeHz: 440 },
  ])('streams the caller ($callerHz Hz) as CALLER1 and the callee ($calleeHz Hz) as CALLER2', async ({ callerHz, calleeHz }) => {
    const started = proxy!;
    onTestFailed(() => console.log(`--- service log\n${started.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: calleeHz, sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller.xml', toneHz: callerHz, service: '4567', holdMs: HOLD_MS, target: ASTERISK_SIP });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);

    const streams = await streamServer.waitForClosedStreams(2);
    expect(streamServer.streams).toHaveLength(2);
    const callerStream = streamByLabel(streams, 'CALLER1');
    const calleeStream = streamByLabel(streams, 'CALLER2');
    for (const stream of [callerStream, calleeStream]) {
      expectWellFormed(stream);
      expectFrameCountMatchesDuration(stream);
    }
    expectTone(callerStream, 16000, callerHz, [calleeHz]);
    expectTone(calleeStream, 16000, calleeHz, [callerHz]);
    expect(started.logTail(60)).toMatch(new RegExp(`"transport":"${transport}"`));
  });
});

describe('the AudioSocket port, open to anyone who reaches it', () => {
  it('1,000 idle connections do not keep a new call from being tapped, and are closed within 2 s', async () => {
    await proxy?.stop();
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      MEDIA_TRANSPORT: 'audiosocket',
    });
    const started = proxy;
    onTestFailed(() => console.log(`--- service log\n${started.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
    const port = started.service.audioSocketPort!;
    const idle = Array.from({ length: 1000 }, () => {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      return new Promise<number>((resolve) => {
        let connectedAt = 0;
        socket.once('connect', () => (connectedAt = Date.now()));
        socket.once('close', () => resolve(Date.now() - connectedAt));
      });
    });
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: HOLD_MS, target: ASTERISK_SIP });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    expectTone(streamByLabel(streams, 'CALLER1'), 16000, 440, [1330]);
    expectTone(streamByLabel(streams, 'CALLER2'), 16000, 1330, [440]);
    const openMs = await Promise.all(idle);
    expect(Math.max(...openMs)).toBeLessThan(3000);
  });

  it('is not open while no call uses AudioSocket', async () => {
    await proxy?.stop();
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      MEDIA_TRANSPORT: 'rtp',
    });
    expect(proxy.service.audioSocketPort).toBeUndefined();
  });
});

/** The longest pause between two frames of a stream, and the frames after it. */
function longestGap(stream: ReceivedStream): { gapMs: number; after: Buffer[] } {
  let gapMs = 0;
  let at = 0;
  stream.frameArrivalMs.forEach((arrival, index) => {
    const gap = index === 0 ? 0 : arrival - stream.frameArrivalMs[index - 1]!;
    if (gap > gapMs) {
      gapMs = gap;
      at = index;
    }
  });
  return { gapMs, after: stream.frames.slice(at) };
}

/**
 * How a test kills one leg's tap mid-call: Asterisk hangs up its ExternalMedia
 * channel, or the network resets the tap's TCP connection under the service
 * (AudioSocket: a connection to our server's port; WebSocket: our connection to
 * Asterisk's /media/ID, the one carrying audio that existed only since the call).
 */
type Kill = 'hang up the media channel' | 'reset its TCP connection';
const KILLS: [MediaTransportKind, Kill][] = [
  ['rtp', 'hang up the media channel'],
  ['audiosocket', 'hang up the media channel'],
  ['audiosocket', 'reset its TCP connection'],
  ['websocket', 'hang up the media channel'],
  ['websocket', 'reset its TCP connection'],
];

async function killOneTap(kill: Kill, transport: MediaTransportKind, service: ServiceUnderTest, before: TcpConnection[]): Promise<void> {
  if (kill === 'hang up the media channel') {
    const media = (await listChannels()).filter((c) => c.id.startsWith('media-'));
    expect(media).toHaveLength(2);
    await ariRequest('DELETE', `/channels/${media[0]!.id}`);
    return;
  }
  const known = new Set(before.map((c) => c.local));
  const taps =
    transport === 'audiosocket'
      ? establishedTcp(`sport = :${service.service.audioSocketPort}`)
      : // Our side of /media/ID: new since the call began, and carrying audio (32 kB/s).
        establishedTcp(`dport = :${ASTERISK_HTTP_PORT}`).filter((c) => !known.has(c.local) && c.bytesReceived > 20_000);
  expect(taps).toHaveLength(2);
  resetTcp(taps[0]!);
}

describe.each(KILLS)('no silent leg, MEDIA_TRANSPORT=%s', (transport, kill) => {
  it(`replaces a tap when we ${kill} mid-call, and its audio resumes on the same stream`, async () => {
    await proxy?.stop();
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      MEDIA_TRANSPORT: transport,
      TAP_NO_AUDIO_TIMEOUT_MS: '1000',
    });
    const started = proxy;
    onTestFailed(() => console.log(`--- service log\n${started.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
    const before = establishedTcp(`dport = :${ASTERISK_HTTP_PORT}`);
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 8000, target: ASTERISK_SIP });

    const deadline = Date.now() + 10_000;
    while (streamServer.streams.length < 2 || streamServer.streams.some((s) => s.frames.length < 50)) {
      if (Date.now() > deadline) throw new Error('streams did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await killOneTap(kill, transport, started, before);

    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    expect(started.logTail(200)).toMatch(/tap delivers no audio; replacing it/);

    // Exactly one stream paused (about the timeout) and then resumed with its own party's tone.
    const gaps = streams.map((stream) => ({ stream, ...longestGap(stream) }));
    const broken = gaps.filter((g) => g.gapMs > 500);
    expect(broken).toHaveLength(1);
    const { stream, gapMs, after } = broken[0]!;
    expect(gapMs).toBeLessThan(4000);
    expect(after.length).toBeGreaterThan(100);
    const [own, other] = stream.metadata?.label === 'CALLER1' ? [440, 1330] : [1330, 440];
    expectTone({ ...stream, frames: after }, 16000, own, [other]);
    for (const each of streams) expectWellFormed(each);
  }, 30_000);
});
