/**
 * Many calls at once through one service: every caller plays a tone of its
 * own, so audio that strays into another call's stream shows up. Each call
 * must deliver its caller's tone as CALLER1 and the callee's as CALLER2, each
 * far above every other tone in play, and leave nothing behind.
 */
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed } from '../support/stream-checks.js';

const CALLS = 10;
const CALLEE_HZ = 1330;
/** One tone per caller, 100 Hz apart, none near the callee's. */
const CALLER_HZ = Array.from({ length: CALLS }, (_, i) => 300 + 100 * i);
const HOLD_MS = 4000;

let streamServer: StrictStreamServer;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

it(`${CALLS} concurrent calls: each caller's own tone on its CALLER1, the callee's on CALLER2, nothing of another call`, async () => {
  const calleePort = await freeUdpPort();
  proxy = await startServiceUnderTest({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, STREAM_URL: streamServer.url });
  onTestFailed(() => console.log(`--- service log\n${proxy?.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));

  const callee = await startSipp({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort, calls: CALLS });
  const callers = await Promise.all(
    CALLER_HZ.map((hz, i) =>
      startSipp({
        scenario: 'caller.xml',
        toneHz: hz,
        service: '4567',
        callerId: `20${i}`,
        holdMs: HOLD_MS,
        target: ASTERISK_SIP,
      }),
    ),
  );
  // All calls overlap: every caller is still holding when the last one is set up.
  await expect.poll(() => proxy!.service.app.activeCalls, { timeout: 10_000 }).toBe(CALLS);

  const results = await Promise.all([...callers.map((caller) => caller.done), callee.done]);
  for (const result of results) expect(result.exitCode, result.stderr).toBe(0);
  const streams = await streamServer.waitForClosedStreams(2 * CALLS, 20_000);
  expect(streams).toHaveLength(2 * CALLS);

  const byCall = new Map<string, typeof streams>();
  for (const stream of streams) {
    const callId = String(stream.metadata?.callId);
    byCall.set(callId, [...(byCall.get(callId) ?? []), stream]);
  }
  expect(byCall.size, 'distinct calls').toBe(CALLS);
  for (const [callId, pair] of byCall) {
    expect(pair.map((s) => s.metadata?.label).sort(), `labels of call ${callId}`).toEqual(['CALLER1', 'CALLER2']);
    const caller = pair.find((s) => s.metadata?.label === 'CALLER1')!;
    const callee = pair.find((s) => s.metadata?.label === 'CALLER2')!;
    const index = Number(String(caller.metadata?.caller).slice(2));
    const ownHz = CALLER_HZ[index];
    expect(ownHz, `caller ${String(caller.metadata?.caller)}`).toBeDefined();
    for (const stream of pair) {
      expectWellFormed(stream);
      expectFrameCountMatchesDuration(stream);
    }
    expectTone(caller, 16000, ownHz!, [CALLEE_HZ, ...CALLER_HZ.filter((hz) => hz !== ownHz)]);
    expectTone(callee, 16000, CALLEE_HZ, CALLER_HZ);
  }

  await expectNothingLeftInAsterisk();
  proxy.expectIdle();
}, 90_000);
