/**
 * The inbound call path on the real Asterisk with real SIPp peers: a caller
 * dials through Asterisk into the Stasis app, the app dials the callee, bridges
 * them and streams each party to a strict mod_audio_stream-style server. Each
 * party plays its own tone, so a swapped or mixed label cannot pass.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { freeUdpPort, receivedRequestLines, receivedResponseCodes, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';

const SAMPLE_RATE = 16000;
const HOLD_MS = 6000;

let streamServer: StrictStreamServer;
let calleePort: number;
let proxy: ServiceUnderTest;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
  proxy = await startServiceUnderTest({
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    DIALED_NUMBER_MAPPING: '1233:4567',
    STREAM_URL: streamServer.url,
    STREAM_TOKEN: 'e2e-token',
    SAMPLE_RATE: String(SAMPLE_RATE),
    DIAL_TIMEOUT_MS: '3000',
  });
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

afterEach(async () => {
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
  expect(proxy.service.app.activeCalls).toBe(0);
  expect(proxy.service.app.holdsSockets).toBe(false);
});

function showLogsOnFailure(): void {
  onTestFailed(() => {
    console.log(`--- service log (${proxy.logFile})\n${proxy.logTail()}\n--- Asterisk log\n${asteriskLogTail()}`);
  });
}

async function placeCall(options: { callerHz: number; calleeHz: number; dialled?: string; calleeScenario?: string; callerScenario?: string }) {
  const callee = await startSipp({ scenario: options.calleeScenario ?? 'callee.xml', toneHz: options.calleeHz, sipPort: calleePort, holdMs: HOLD_MS });
  const caller = await startSipp({
    scenario: options.callerScenario ?? 'caller.xml',
    toneHz: options.callerHz,
    service: options.dialled ?? '1233',
    callerId: '1001',
    holdMs: HOLD_MS,
    target: ASTERISK_SIP,
  });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  return { callerResult, calleeResult };
}

describe('inbound call', () => {
  it.each([
    { callerHz: 440, calleeHz: 1330 },
    { callerHz: 1330, calleeHz: 440 },
  ])('streams the caller ($callerHz Hz) as CALLER1 and the callee ($calleeHz Hz) as CALLER2', async ({ callerHz, calleeHz }) => {
    showLogsOnFailure();
    const { callerResult, calleeResult } = await placeCall({ callerHz, calleeHz });
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    // DIALED_NUMBER_MAPPING turned 1233 into 4567 on leg B.
    expect(receivedRequestLines(calleeResult.messages)[0]).toMatch(/^INVITE sip:4567@127\.0\.0\.1:\d+ SIP\/2\.0$/);

    const streams = await streamServer.waitForClosedStreams(2);
    expect(streamServer.streams).toHaveLength(2);
    const caller = streamByLabel(streams, 'CALLER1');
    const callee = streamByLabel(streams, 'CALLER2');
    for (const stream of [caller, callee]) {
      expectWellFormed(stream);
      expectFrameCountMatchesDuration(stream);
      expect(stream.headers.authorization).toBe('Bearer e2e-token');
      expect(stream.frames.every((frame) => frame.length === 640)).toBe(true);
      const seconds = (stream.frames.length * 20) / 1000;
      expect(seconds).toBeGreaterThan(HOLD_MS / 1000 - 1.5);
      expect(seconds).toBeLessThan(HOLD_MS / 1000 + 1);
    }
    expect(caller.metadata).toMatchObject({ leg: 'A', direction: 'inbound', caller: '1001', callee: '4567', sampleRate: SAMPLE_RATE });
    expect(callee.metadata).toMatchObject({ leg: 'B', direction: 'inbound', caller: '1001', callee: '4567', sampleRate: SAMPLE_RATE });
    expect(caller.metadata?.callId).toBe(callee.metadata?.callId);
    expect(caller.metadata?.linkedId).toBe(callee.metadata?.linkedId);
    expect(caller.metadata?.channelId).not.toBe(callee.metadata?.channelId);
    expect(String(caller.metadata?.sipCallId)).not.toBe('');
    expect(String(callee.metadata?.sipCallId)).not.toBe('');

    expectTone(caller, SAMPLE_RATE, callerHz, [calleeHz]);
    expectTone(callee, SAMPLE_RATE, calleeHz, [callerHz]);
  });
});
