/**
 * Nothing lost on the way to the transcription server: real calls through the
 * real Asterisk, the service's streams passing a relay that plays outages,
 * stalls and black holes. Each party plays a stepped tone, so whether every
 * 20 ms of its audio arrived, once, in order, at the position the metadata
 * claims, can be read off what the server received.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { freeUdpPort, startSipp, type SippPeer } from '../support/sipp.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { CALLEE_STEPS_HZ, CALLER_STEPS_HZ, checkJoints, checkSteps, steppedToneUlaw } from '../support/stepped-tones.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { startWebsocketRelay, type WebsocketRelay } from '../support/websocket-relay.js';

let streamServer: StrictStreamServer;
let relay: WebsocketRelay | undefined;
let proxy: ServiceUnderTest | undefined;
const peers: SippPeer[] = [];
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
});

afterAll(async () => {
  await streamServer?.close();
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.kill();
  await proxy?.stop();
  proxy = undefined;
  await relay?.close();
  relay = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
});

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function startRelay(): Promise<WebsocketRelay> {
  const target = new URL(streamServer.url);
  relay = await startWebsocketRelay({ host: target.hostname, port: Number(target.port) });
  return relay;
}

async function startProxy(settings: Record<string, string>): Promise<ServiceUnderTest> {
  const calleePort = await freeUdpPort();
  proxy = await startServiceUnderTest({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, ...settings });
  const started = proxy;
  onTestFailed(() => console.log(`--- service log\n${started.logTail(150)}\n--- Asterisk log\n${asteriskLogTail(40)}`));
  (started as ServiceUnderTest & { calleePort: number }).calleePort = calleePort;
  return started;
}

/** A call whose parties play stepped tones; the caller hangs up after `holdMs`. */
async function steppedCall(holdMs: number, options: { calls?: number; callerId?: string } = {}): Promise<SippPeer[]> {
  const calleePort = (proxy as ServiceUnderTest & { calleePort: number }).calleePort;
  const timeoutSeconds = Math.ceil(holdMs / 1000) + 60;
  const seconds = Math.ceil(holdMs / 1000) + 30;
  const callee = await startSipp({
    scenario: 'callee.xml',
    toneUlaw: steppedToneUlaw(CALLEE_STEPS_HZ, seconds),
    sipPort: calleePort,
    calls: options.calls ?? 1,
    timeoutSeconds,
  });
  const callers = await Promise.all(
    Array.from({ length: options.calls ?? 1 }, (_, i) =>
      startSipp({
        scenario: 'caller.xml',
        toneUlaw: steppedToneUlaw(CALLER_STEPS_HZ, seconds),
        service: '4567',
        callerId: options.callerId ?? `40${i}`,
        holdMs,
        target: ASTERISK_SIP,
        timeoutSeconds,
      }),
    ),
  );
  peers.push(callee, ...callers);
  return [callee, ...callers];
}

const connectionsOf = (label: string, callerId?: string) =>
  streamServer.streams.filter((s) => s.metadata?.label === label && (callerId === undefined || s.metadata?.caller === callerId));

/** Each connection's frames at the position its metadata claims (the first connection: 0). */
const positioned = (connections: ReceivedStream[]) =>
  connections.map((c) => ({ positionMs: Number(c.metadata?.positionMs ?? 0), frames: c.frames }));

/**
 * A reset loses what was on the wire at that instant (in the relay, or in the server's
 * socket unread): the protocol has no acknowledgement that could say, and sending it
 * again would duplicate it for every server that does not read positions. A few frames
 * at most on loopback.
 */
const IN_FLIGHT_MS = 100;

/**
 * Every connection begins where the one before ended, plus what was reported dropped,
 * plus what was in flight at the cut. Returns the ms lost in flight, over all cuts.
 */
function expectContiguous(connections: ReceivedStream[]): number {
  let inFlightMs = 0;
  for (let k = 1; k < connections.length; k++) {
    const before = connections[k - 1]!;
    const end = Number(before.metadata?.positionMs ?? 0) + before.frames.length * 20;
    expect(connections[k]!.metadata, `connection ${k}`).toMatchObject({ resumed: true });
    const gapMs = Number(connections[k]!.metadata?.positionMs) - end - Number(connections[k]!.metadata?.droppedMs);
    const where = `connection ${k} begins where ${k - 1} ended, plus what was dropped, plus what was in flight (ms)`;
    expect(gapMs, where).toBeGreaterThanOrEqual(0);
    expect(gapMs, where).toBeLessThanOrEqual(IN_FLIGHT_MS);
    inFlightMs += gapMs;
  }
  return inFlightMs;
}

/**
 * The party's stepped tone, joint by joint: across every reconnection the steps go on as if
 * nothing happened. And nothing of the other party in any frame.
 */
function expectSteps(connections: ReceivedStream[], own: readonly number[], other: readonly number[]): void {
  const joints = checkJoints(positioned(connections), 16000, own);
  joints.forEach((check, k) => {
    expect(check.judged, `joint ${k + 1}`).toBeGreaterThan(35);
    if (!check.slipped) expect(check.wrong, `joint ${k + 1}: frames out of place across the reconnection`).toEqual([]);
  });
  // A slip of the audio itself next to a joint (a loaded snoop) leaves that joint unjudged: one at most.
  expect(joints.filter((check) => check.slipped).length, 'joints with a slip of the audio beside them').toBeLessThanOrEqual(1);
  const check = checkSteps(positioned(connections), 16000, own, other);
  expect(check.leaks, 'frames with the other party in them').toBe(0);
  expect(check.glitches, 'lone glitched frames (a loaded snoop), a few at most').toBeLessThanOrEqual(5);
}

/**
 * What the server received of a leg, plus what was in flight at the cuts, equals what the
 * service got from Asterisk for it (the tap's closing counters).
 */
function expectAllFrames(log: string, label: string, connections: ReceivedStream[], inFlightMs: number): void {
  const closed = log
    .split('\n')
    .filter((line) => line.includes('"msg":"leg tap closed"'))
    .map((line) => JSON.parse(line) as { label: string; media: { packets: number } });
  const tapped = closed.find((line) => line.label === label)?.media.packets;
  expect(tapped, `${label}: the tap's count`).toBeGreaterThan(0);
  expect(
    connections.reduce((sum, c) => sum + c.frames.length, 0) + inFlightMs / 20,
    `${label}: frames received, all connections, and in flight at the cuts`,
  ).toBe(tapped);
}

const streamsWith = (label: string, count: number, frames: number) => () =>
  connectionsOf(label).length >= count && connectionsOf(label).at(-1)!.frames.length >= frames;

describe('outages of the transcription server', () => {
  it('five outages of 1 to 10 s in a 60 s call: the frames of each label in order, none twice, none lost but what was on the wire at a cut, metadata first on every connection', async () => {
    const wsRelay = await startRelay();
    await startProxy({ STREAM_URL: wsRelay.url });
    const [callee, caller] = await steppedCall(60_000);
    await expect.poll(() => streamsWith('CALLER1', 1, 100)() && streamsWith('CALLER2', 1, 100)(), { timeout: 15_000 }).toBe(true);
    const outagesMs = [1000, 2000, 4000, 7000, 10_000];
    for (const [i, outageMs] of outagesMs.entries()) {
      wsRelay.refuse(true);
      wsRelay.cut();
      await wait(outageMs);
      wsRelay.refuse(false);
      // Streaming again on both labels before the next outage.
      await expect.poll(() => streamsWith('CALLER1', i + 2, 50)() && streamsWith('CALLER2', i + 2, 50)(), { timeout: 10_000 }).toBe(true);
    }
    for (const result of await Promise.all([caller!.done, callee!.done])) expect(result.exitCode, result.stderr).toBe(0);
    await streamServer.waitForClosedStreams(12);
    for (const [label, own, other] of [
      ['CALLER1', CALLER_STEPS_HZ, CALLEE_STEPS_HZ],
      ['CALLER2', CALLEE_STEPS_HZ, CALLER_STEPS_HZ],
    ] as const) {
      const connections = connectionsOf(label);
      expect(connections, label).toHaveLength(6);
      expect(connections[0]!.metadata?.resumed, 'the first connection as always').toBeUndefined();
      for (const connection of connections) expect(connection.violations).toEqual([]);
      for (const connection of connections.slice(1)) expect(connection.metadata?.droppedMs).toBe(0);
      expect(connections.at(-1)!.stop?.reason).toBe('caller hung up');
      const inFlightMs = expectContiguous(connections);
      expectSteps(connections, own, other);
      expectAllFrames(proxy!.logTail(2000), label, connections, inFlightMs);
      const frames = connections.reduce((sum, c) => sum + c.frames.length, 0);
      expect(frames * 20, `${label}: ms of audio over a 60 s call`).toBeGreaterThan(58_000);
    }
  }, 150_000);

  it('an outage longer than STREAM_BUFFER_MS: the call is untouched, the oldest audio is dropped, counted and reported, the rest arrives in order', async () => {
    const wsRelay = await startRelay();
    await startProxy({ STREAM_URL: wsRelay.url, STREAM_BUFFER_MS: '2000' });
    const [callee, caller] = await steppedCall(14_000);
    await expect.poll(() => streamsWith('CALLER1', 1, 100)() && streamsWith('CALLER2', 1, 100)(), { timeout: 15_000 }).toBe(true);
    wsRelay.refuse(true);
    wsRelay.cut();
    await wait(5000);
    wsRelay.refuse(false);
    for (const result of await Promise.all([caller!.done, callee!.done])) expect(result.exitCode, result.stderr).toBe(0);
    await streamServer.waitForClosedStreams(4);
    for (const [label, own, other] of [
      ['CALLER1', CALLER_STEPS_HZ, CALLEE_STEPS_HZ],
      ['CALLER2', CALLEE_STEPS_HZ, CALLER_STEPS_HZ],
    ] as const) {
      const connections = connectionsOf(label);
      expect(connections).toHaveLength(2);
      const droppedMs = Number(connections[1]!.metadata?.droppedMs);
      expect(droppedMs, 'a 5 s outage with a 2 s buffer').toBeGreaterThanOrEqual(2800);
      expect(droppedMs).toBeLessThanOrEqual(4500);
      // What was sent after the gap is 2 s of backlog, then live audio.
      expectContiguous(connections);
      expectSteps(connections, own, other);
    }
    const log = proxy!.logTail(400);
    const closed = log
      .split('\n')
      .filter((line) => line.includes('"msg":"stream closed"'))
      .map((line) => JSON.parse(line) as { stream: string; framesDropped: number });
    for (const label of ['CALLER1', 'CALLER2']) {
      const droppedMs = Number(connectionsOf(label)[1]!.metadata?.droppedMs);
      expect(closed.find((line) => line.stream === label)?.framesDropped, `${label}: the count matches the report`).toBe(droppedMs / 20);
    }
  }, 60_000);

  it('a black-holed connection is noticed within the heartbeat bound; what the server did not acknowledge is sent again', async () => {
    const wsRelay = await startRelay();
    await startProxy({ STREAM_URL: wsRelay.url });
    const [callee, caller] = await steppedCall(14_000);
    await expect.poll(() => streamsWith('CALLER1', 1, 100)() && streamsWith('CALLER2', 1, 100)(), { timeout: 15_000 }).toBe(true);
    const holedAt = Date.now();
    wsRelay.blackhole();
    await expect.poll(() => proxy!.logTail(200).includes('the stream server did not answer the ping'), { timeout: 10_000 }).toBe(true);
    // A ping a second; no pong within 5 s is a stall.
    expect(Date.now() - holedAt).toBeLessThan(7500);
    for (const result of await Promise.all([caller!.done, callee!.done])) expect(result.exitCode, result.stderr).toBe(0);
    await expect.poll(() => connectionsOf('CALLER1').length + connectionsOf('CALLER2').length).toBe(4);
    for (const label of ['CALLER1', 'CALLER2']) {
      const [first, second] = connectionsOf(label);
      const firstEnd = first!.frames.length * 20;
      // Nothing lost: the new connection starts no later than where the black hole began;
      // what the server had read before it may come again (at most a heartbeat's worth).
      expect(second!.metadata).toMatchObject({ resumed: true, droppedMs: 0 });
      expect(Number(second!.metadata?.positionMs)).toBeLessThanOrEqual(firstEnd);
      expect(firstEnd - Number(second!.metadata?.positionMs)).toBeLessThanOrEqual(1500);
      await second!.closed;
      const own = label === 'CALLER1' ? CALLER_STEPS_HZ : CALLEE_STEPS_HZ;
      // The joint, with what came twice: the new connection's frames sit where their positions say.
      const [joint] = checkJoints(positioned([first!, second!]), 16000, own);
      expect(joint!.slipped || joint!.wrong.length === 0, JSON.stringify(joint!.wrong)).toBe(true);
    }
  }, 60_000);

  it('a server that accepts the connection and never answers the handshake is given up on within the bound, and retried', async () => {
    const silent = createTcpServer(() => {});
    const sockets: Socket[] = [];
    silent.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise((resolve) => {
          for (const socket of sockets) socket.destroy();
          silent.close(resolve);
        }),
    );
    await startProxy({ STREAM_URL: `ws://127.0.0.1:${(silent.address() as AddressInfo).port}` });
    const answeredAt = Date.now();
    const [callee, caller] = await steppedCall(9000);
    await expect
      .poll(() => proxy!.logTail(200).includes('stream connection failed; buffering and retrying'), { timeout: 10_000 })
      .toBe(true);
    expect(Date.now() - answeredAt).toBeLessThan(8000);
    for (const result of await Promise.all([caller!.done, callee!.done])) expect(result.exitCode, result.stderr).toBe(0);
    expect(sockets.length, 'retried after the first handshake timed out').toBeGreaterThanOrEqual(4);
  }, 60_000);

  it('a server that answers 401: the call connects, one log line per stream, retries at most every 30 s', async () => {
    let upgrades = 0;
    const refusing = createHttpServer((_request, response) => response.writeHead(404).end());
    refusing.on('upgrade', (_request, socket: Socket) => {
      upgrades++;
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => refusing.close(resolve)));
    await startProxy({ STREAM_URL: `ws://127.0.0.1:${(refusing.address() as AddressInfo).port}`, STREAM_TOKEN: 'wrong-token' });
    const [callee, caller] = await steppedCall(8000);
    for (const result of await Promise.all([caller!.done, callee!.done])) expect(result.exitCode, result.stderr).toBe(0);
    expect(upgrades, 'one handshake per stream within 8 s').toBe(2);
    const refusals = proxy!
      .logTail(400)
      .split('\n')
      .filter((line) => line.includes('refused the handshake (HTTP 401)'));
    expect(refusals).toHaveLength(2);
    expect(proxy!.logTail(400)).not.toContain('wrong-token');
  }, 60_000);
});
