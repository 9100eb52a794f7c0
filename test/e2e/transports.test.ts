/**
 * The tone test of the call path over the other two tap transports, AudioSocket
 * (TCP, Asterisk connects to us) and WebSocket (we connect to Asterisk's
 * /media/ID): the labelled streams must be the same whichever transport
 * produced them. RTP is covered by inbound-call.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
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
    proxy = await startServiceUnderTest({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, STREAM_URL: streamServer.url, MEDIA_TRANSPORT: transport });
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
