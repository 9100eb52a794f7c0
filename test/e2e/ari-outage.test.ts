/**
 * A long ARI outage (3 minutes, through a TCP relay that resets every
 * connection and refuses new ones): the service keeps one reconnect loop
 * going the whole time, comes back with exactly one event websocket,
 * reconciles the call whose caller hung up meanwhile, and takes new calls.
 */
import { afterAll, beforeAll, expect, it, onTestFailed } from 'vitest';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectTone, expectWellFormed } from '../support/stream-checks.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startTcpRelay, type TcpRelay } from '../support/tcp-relay.js';
import { ARI_URL, ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';

const OUTAGE_MS = 180_000;
const EVENT_SOCKET = /^GET \/ari\/events\?/;

let streamServer: StrictStreamServer;
let relay: TcpRelay;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  const asterisk = new URL(ARI_URL);
  relay = await startTcpRelay({ host: asterisk.hostname, port: Number(asterisk.port) });
});

afterAll(async () => {
  await proxy?.stop();
  await relay?.close();
  await streamServer?.close();
  await expectNothingLeftInAsterisk();
});

const logHas = (text: string) => () => proxy?.logTail(2000).includes(text) ?? false;

it(
  'survives 3 minutes without ARI: one event websocket afterwards, the call reconciled, a new call transcribed',
  async () => {
    const calleePort = await freeUdpPort();
    proxy = await startServiceUnderTest({
      ARI_URL: relay.url.href,
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
    });
    onTestFailed(() => console.log(`--- service log\n${proxy?.logTail(150)}\n--- Asterisk log\n${asteriskLogTail()}`));
    expect(relay.openConnections(EVENT_SOCKET)).toBe(1);
    expect(proxy.service.readiness()).toEqual({ ready: true });

    // SIPp's own time limit must outlast the outage: the callee waits through it for its BYE.
    const sippTimeoutSeconds = Math.ceil(OUTAGE_MS / 1000) + 60;
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort, timeoutSeconds: sippTimeoutSeconds });
    const caller = await startSipp({
      scenario: 'caller.xml',
      toneHz: 440,
      service: '4567',
      holdMs: 4000,
      target: ASTERISK_SIP,
      timeoutSeconds: sippTimeoutSeconds,
    });
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length >= 10).length, { timeout: 10_000 }).toBe(2);

    relay.refuse(true);
    relay.cut();
    const cutAt = Date.now();
    await expect.poll(logHas('ARI event connection lost'), { timeout: 15_000 }).toBe(true);
    expect(proxy.service.readiness()).toEqual({ ready: false, reason: 'ari-down' });
    // The caller hangs up during the outage; nobody tells the service.
    expect((await caller.done).exitCode).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, OUTAGE_MS - (Date.now() - cutAt)));
    expect(relay.openConnections(EVENT_SOCKET), 'no event socket gets through while refused').toBe(0);

    relay.refuse(false);
    await expect.poll(logHas('ARI event connection back'), { timeout: 15_000 }).toBe(true);
    const calleeResult = await callee.done;
    expect(calleeResult.exitCode, 'the callee got its BYE once the service reconciled').toBe(0);
    const first = await streamServer.waitForClosedStreams(2);
    for (const stream of first) expect(stream.stop?.reason).toBe('caller gone from Asterisk while ARI was disconnected');
    expect(relay.openConnections(EVENT_SOCKET), 'exactly one event websocket').toBe(1);
    await expect.poll(() => proxy!.service.readiness()).toEqual({ ready: true });

    // A new call works as before.
    streamServer.streams.length = 0;
    const callee2 = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller2 = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 4000, target: ASTERISK_SIP });
    for (const result of await Promise.all([caller2.done, callee2.done])) expect(result.exitCode, result.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) expectWellFormed(stream);
    expectTone(
      streams.find((s) => s.metadata?.label === 'CALLER1')!,
      16000,
      440,
      [1330],
    );
    expectTone(
      streams.find((s) => s.metadata?.label === 'CALLER2')!,
      16000,
      1330,
      [440],
    );
    expect(relay.openConnections(EVENT_SOCKET), 'still exactly one event websocket').toBe(1);
    await expect.poll(() => proxy!.service.app.activeCalls).toBe(0);
    proxy.expectIdle();
  },
  OUTAGE_MS + 90_000,
);
