/**
 * The ARI event connection is lost mid-call and comes back: the events of the
 * gap are gone, so the service must find out from Asterisk what happened to
 * its calls. The service reaches ARI through a TCP relay the test cuts and
 * restores; the caller hangs up while the service cannot hear it.
 */
import { afterAll, afterEach, beforeAll, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, ARI_URL, asteriskLogTail, crashAndRestartAsterisk, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';

let streamServer: StrictStreamServer;
let relay: TcpRelay | undefined;
let calleePort: number;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
});

afterAll(async () => {
  await streamServer?.close();
});

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
  await relay?.close();
  await expectNothingLeftInAsterisk();
  streamServer.streams.length = 0;
});

const logHas = (text: string) => () => proxy?.logTail(400).includes(text) ?? false;

it('ends a call whose caller hung up while the ARI connection was down, once it is back', async () => {
  const asterisk = new URL(ARI_URL);
  relay = await startTcpRelay({ host: asterisk.hostname, port: Number(asterisk.port) });
  proxy = await startServiceUnderTest({
    ARI_URL: relay.url.href,
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    STREAM_URL: streamServer.url,
  });
  onTestFailed(() => console.log(`--- service log\n${proxy?.logTail(120)}\n--- Asterisk log\n${asteriskLogTail()}`));

  const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
  const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 3000, target: ASTERISK_SIP });
  // Both legs stream before the connection goes.
  await expect.poll(() => streamServer.streams.filter((s) => s.frames.length >= 10).length, { timeout: 10_000 }).toBe(2);

  relay.refuse(true);
  relay.cut();
  await expect.poll(logHas('ARI event connection lost'), { timeout: 10_000 }).toBe(true);

  // The caller hangs up (its BYE is answered by Asterisk) while the service hears nothing.
  const callerResult = await caller.done;
  expect(callerResult.exitCode, callerResult.stderr).toBe(0);
  expect(proxy.service.app.activeCalls, 'the hangup went unseen').toBe(1);

  relay.refuse(false);
  await expect.poll(logHas('ARI event connection back'), { timeout: 30_000 }).toBe(true);
  // The service ends the call: the callee gets its BYE, the streams their stop.
  const calleeResult = await callee.done;
  expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
  const streams = await streamServer.waitForClosedStreams(2);
  for (const stream of streams) {
    expect(stream.stop).toMatchObject({ event: 'stop', reason: 'caller gone from Asterisk while ARI was disconnected' });
    expect(stream.closeCode).toBe(1000);
  }
  await expect.poll(() => proxy!.service.app.activeCalls).toBe(0);
  proxy.expectIdle();
}, 60_000);

it('ends its calls, closing their streams, when Asterisk restarts under them', async () => {
  proxy = await startServiceUnderTest({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, STREAM_URL: streamServer.url });
  onTestFailed(() => console.log(`--- service log\n${proxy?.logTail(120)}\n--- Asterisk log\n${asteriskLogTail()}`));
  const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
  const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 30_000, target: ASTERISK_SIP });
  try {
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length >= 10).length, { timeout: 10_000 }).toBe(2);
    // A crash and a restart: no hangup, no StasisEnd, no BYE to anyone.
    await crashAndRestartAsterisk();
    const streams = await streamServer.waitForClosedStreams(2, 30_000);
    for (const stream of streams) {
      expect(stream.stop).toMatchObject({ event: 'stop', reason: 'caller gone from Asterisk while ARI was disconnected' });
      expect(stream.closeCode).toBe(1000);
    }
    await expect.poll(() => proxy!.service.app.activeCalls).toBe(0);
    proxy.expectIdle();
  } finally {
    caller.kill();
    callee.kill();
  }
}, 90_000);
