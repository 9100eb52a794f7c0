/**
 * Calls outlive the service: `serve` runs as its own process, as users run it,
 * and is stopped (SIGTERM), killed (SIGKILL), started twice, or started after
 * a party hung up, while real calls run through the real Asterisk. The calls
 * must go on; what the transcription server misses is bounded (each label's
 * streams, all connections together, against the time they span), and every
 * stream carries its own party's tone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { runCli, type CliProcess } from '../support/cli-process.js';
import { freeUdpPort, receivedRequestHeader, startSipp, type SippPeer } from '../support/sipp.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed } from '../support/stream-checks.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, ASTERISK_SIP, expectNothingLeftInAsterisk, setDialplanGlobal } from '../support/testbed.js';

const CALLEE_HZ = 1330;
let streamServer: StrictStreamServer;
const processes: CliProcess[] = [];
const peers: SippPeer[] = [];

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
});

afterAll(async () => {
  await streamServer?.close();
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.kill();
  for (const serve of processes.splice(0)) {
    if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
    await serve.exited;
  }
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk(10_000);
});

/** `serve` as its own process, like a user runs it; resolves once it logged "service ready". */
async function startServe(settings: Record<string, string>): Promise<CliProcess & { readyAt: number; connectedAt: number }> {
  const serve = runCli(['serve'], {
    ARI_URL,
    ARI_USERNAME,
    ARI_PASSWORD,
    STREAM_URL: streamServer.url,
    // Two instances run at once in some tests: each its own ops port.
    OPS_LISTEN: '127.0.0.1:0',
    LOG_LEVEL: 'debug',
    ...settings,
  });
  processes.push(serve);
  onTestFailed(() => console.log(`--- serve (pid ${serve.child.pid}) log\n${serve.stdoutLines.slice(-80).join('\n')}\n${serve.stderr()}`));
  await serve.line((entry) => entry.msg === 'connected to ARI', 20_000);
  const connectedAt = performance.now();
  await serve.line((entry) => entry.msg === 'service ready', 20_000);
  return Object.assign(serve, { readyAt: performance.now(), connectedAt });
}

async function startPeer(options: Parameters<typeof startSipp>[0]): Promise<SippPeer> {
  const peer = await startSipp(options);
  peers.push(peer);
  return peer;
}

const streamsOf = (label: string, callerId?: string) =>
  streamServer.streams.filter((s) => s.metadata?.label === label && (callerId === undefined || s.metadata?.caller === callerId));

/** Every label has a stream carrying at least `frames` frames, from the newest connections. */
const streaming = (count: number, frames: number) => () => streamServer.streams.filter((s) => s.frames.length >= frames).length >= count;

/**
 * Audio the server never got for one label: the time its connections span (first frame to
 * last) minus the audio they carried. Frames arrive at 20 ms as they are spoken here, so a
 * gap in arrival is audio missed.
 */
function missingMs(streams: ReceivedStream[]): number {
  const arrivals = streams.flatMap((s) => s.frameArrivalMs).sort((a, b) => a - b);
  expect(arrivals.length).toBeGreaterThan(50);
  return arrivals.at(-1)! - arrivals[0]! + 20 - arrivals.length * 20;
}

describe('SIGTERM: the service drains', () => {
  it('lets three calls run to their end, transcribed; a call during the drain takes the dialplan fallback; exit code 0', async () => {
    const calleePort = await freeUdpPort();
    const serve = await startServe({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, DRAIN_TIMEOUT_MS: '60000' });
    const callee = await startPeer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort, calls: 3 });
    const callerHz = [440, 550, 660];
    const holdMs = 10_000;
    const callers = await Promise.all(
      callerHz.map((hz, i) =>
        startPeer({ scenario: 'caller.xml', toneHz: hz, service: '4567', callerId: `30${i}`, holdMs, target: ASTERISK_SIP }),
      ),
    );
    await expect.poll(streaming(6, 25), { timeout: 15_000 }).toBe(true);

    const termAt = performance.now();
    serve.child.kill('SIGTERM');
    await serve.line((entry) => entry.msg === 'draining: new calls go to the dialplan fallback; calls in progress go on');

    // A call placed now goes where the FreePBX custom destination's fallback sends it, untranscribed.
    const fallbackPort = await freeUdpPort();
    const fallbackCallee = await startPeer({ scenario: 'callee.xml', toneHz: 880, sipPort: fallbackPort });
    await setDialplanGlobal('TESTBED_CALLEE', `127.0.0.1:${fallbackPort}`);
    const late = await startPeer({ scenario: 'caller.xml', toneHz: 770, service: 'freepbx4568', holdMs: 2000, target: ASTERISK_SIP });
    const [lateResult, fallbackResult] = await Promise.all([late.done, fallbackCallee.done]);
    expect(lateResult.exitCode, lateResult.stderr).toBe(0);
    expect(fallbackResult.exitCode, fallbackResult.stderr).toBe(0);
    expect(receivedRequestHeader(fallbackResult.messages, 'INVITE', 'X-Testbed-Context')).toBe('from-did-direct');

    for (const result of await Promise.all([...callers.map((c) => c.done), callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    expect(await serve.exited).toBe(0);
    expect(performance.now() - termAt, 'the drain ended with the last call').toBeLessThan(holdMs + 5000);
    const streams = await streamServer.waitForClosedStreams(6);
    expect(streams, 'no stream for the call placed during the drain').toHaveLength(6);
    for (const [i, hz] of callerHz.entries()) {
      const [caller] = streamsOf('CALLER1', `30${i}`);
      const [calleeStream] = streamsOf('CALLER2', `30${i}`);
      for (const stream of [caller!, calleeStream!]) {
        expectWellFormed(stream);
        expect(stream.stop?.reason).toBe('caller hung up');
        expectFrameCountMatchesDuration(stream);
        // Transcribed to the end: the whole call, not just up to the SIGTERM.
        expect(stream.frames.length * 20, 'ms of audio').toBeGreaterThan(holdMs - 2500);
      }
      expectTone(caller!, 16000, hz, [CALLEE_HZ, ...callerHz.filter((other) => other !== hz)]);
      expectTone(calleeStream!, 16000, CALLEE_HZ, callerHz);
    }
  }, 90_000);
});

describe('SIGTERM twice', () => {
  it('ends the drain at once, leaving the call up; the next instance adopts it', async () => {
    const calleePort = await freeUdpPort();
    const settings = { DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` };
    const first = await startServe(settings);
    const callee = await startPeer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await startPeer({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 12_000, target: ASTERISK_SIP });
    await expect.poll(streaming(2, 175), { timeout: 15_000 }).toBe(true);
    first.child.kill('SIGTERM');
    await first.line((entry) => entry.msg === 'draining: new calls go to the dialplan fallback; calls in progress go on');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const released = await streamServer.waitForClosedStreams(2);
    for (const stream of released) {
      expectWellFormed(stream);
      expect(stream.stop?.reason).toBe('service stopped; the call goes on untranscribed until another instance adopts it');
    }
    await startServe(settings);
    await expect.poll(() => streamServer.streams.length, { timeout: 5000 }).toBe(4);
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    await streamServer.waitForClosedStreams(4);
    const [, resumedA] = streamsOf('CALLER1');
    const [, resumedB] = streamsOf('CALLER2');
    expect(resumedA!.metadata?.resumed).toBe(true);
    expectTone(resumedA!, 16000, 440, [CALLEE_HZ]);
    expectTone(resumedB!, 16000, CALLEE_HZ, [440]);
  }, 60_000);
});

describe('crash and restart', () => {
  it('kill -9 while the callee rings: the next instance bridges the call when it answers, and streams it', async () => {
    const calleePort = await freeUdpPort();
    const settings = { DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` };
    const first = await startServe(settings);
    const callee = await startPeer({ scenario: 'callee-answers-late.xml', toneHz: CALLEE_HZ, sipPort: calleePort, holdMs: 4000 });
    const caller = await startPeer({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 6000, target: ASTERISK_SIP });
    await first.line((entry) => entry.msg === 'leg B event' && entry.event === 'Dial');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await startServe(settings);
    await second.line((entry) => entry.msg === 'call adopted before it was bridged');
    await second.line((entry) => entry.msg === 'callee answered', 10_000);
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) {
      expectWellFormed(stream);
      expect(stream.metadata?.resumed, 'first streamed by this instance').toBeUndefined();
    }
    expectTone(streamsOf('CALLER1')[0]!, 16000, 440, [CALLEE_HZ]);
    expectTone(streamsOf('CALLER2')[0]!, 16000, CALLEE_HZ, [440]);
  }, 60_000);

  it('kill -9 mid-call, then serve again: the call stays up, both streams resume on their labels, audio missed at most the downtime plus 1 s', async () => {
    const calleePort = await freeUdpPort();
    const settings = { DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` };
    const first = await startServe(settings);
    const callee = await startPeer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await startPeer({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 14_000, target: ASTERISK_SIP });
    // 3.5 s before the crash: enough for the tone check of the first connections.
    await expect.poll(streaming(2, 175), { timeout: 15_000 }).toBe(true);

    const killedAt = performance.now();
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await startServe(settings);
    const downtimeMs = second.readyAt - killedAt;
    await expect.poll(() => streamServer.streams.length, { timeout: 5000 }).toBe(4);

    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    await streamServer.waitForClosedStreams(4);
    const [firstA, resumedA] = streamsOf('CALLER1');
    const [firstB, resumedB] = streamsOf('CALLER2');
    for (const resumed of [resumedA!, resumedB!]) {
      expectWellFormed(resumed);
      expect(resumed.metadata).toMatchObject({ resumed: true, callId: firstA!.metadata?.callId });
      expect(resumed.metadata?.positionMs).toBeGreaterThan(1000);
      expect(resumed.stop?.reason).toBe('caller hung up');
    }
    for (const stream of [firstA!, firstB!]) expect(stream.metadata?.resumed, 'the first connection is not resumed').toBeUndefined();
    expect(resumedB!.metadata?.positionMs).toBeLessThanOrEqual(Math.round(downtimeMs + 8000));
    for (const stream of [firstA!, resumedA!]) expectTone(stream, 16000, 440, [CALLEE_HZ]);
    for (const stream of [firstB!, resumedB!]) expectTone(stream, 16000, CALLEE_HZ, [440]);
    for (const label of ['CALLER1', 'CALLER2']) {
      expect(missingMs(streamsOf(label)), `${label}: audio missed (downtime ${Math.round(downtimeMs)} ms)`).toBeLessThanOrEqual(
        downtimeMs + 1000,
      );
    }
  }, 60_000);

  it('the caller hangs up while no instance runs: the next instance releases the callee within 1 s', async () => {
    const calleePort = await freeUdpPort();
    const settings = { DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` };
    const first = await startServe(settings);
    const callee = await startPeer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await startPeer({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 3000, target: ASTERISK_SIP });
    await expect.poll(streaming(2, 20), { timeout: 15_000 }).toBe(true);
    first.child.kill('SIGKILL');
    await first.exited;
    const callerResult = await caller.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);

    const calleeDone = callee.done.then((result) => ({ result, at: performance.now() }));
    const second = await startServe(settings);
    const { result, at } = await calleeDone;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(at - second.connectedAt, "ms from connecting to ARI to the callee's BYE").toBeLessThan(1000);
    await second.line((entry) => entry.msg === 'hanging up the party left alone');
  }, 60_000);
});

describe('a second instance', () => {
  it('takes the calls over: the first logs the replacement and lets go, the second adopts, at most 1 s of audio missed', async () => {
    const calleePort = await freeUdpPort();
    const settings = { DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` };
    const first = await startServe(settings);
    const callee = await startPeer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await startPeer({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 12_000, target: ASTERISK_SIP });
    await expect.poll(streaming(2, 175), { timeout: 15_000 }).toBe(true);

    const second = await startServe(settings);
    await first.line((entry) => entry.msg === 'replaced by another instance of the service: its calls are handed over');
    await second.line((entry) => entry.msg === 'call adopted');
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    await streamServer.waitForClosedStreams(4);

    const [firstA, resumedA] = streamsOf('CALLER1');
    const [firstB, resumedB] = streamsOf('CALLER2');
    for (const handedOver of [firstA!, firstB!]) {
      expectWellFormed(handedOver);
      expect(handedOver.stop?.reason).toBe('handed over to another instance of the service');
    }
    for (const resumed of [resumedA!, resumedB!]) {
      expectWellFormed(resumed);
      expect(resumed.metadata).toMatchObject({ resumed: true, callId: firstA!.metadata?.callId });
      expect(resumed.stop?.reason).toBe('caller hung up');
    }
    for (const stream of [firstA!, resumedA!]) expectTone(stream, 16000, 440, [CALLEE_HZ]);
    for (const stream of [firstB!, resumedB!]) expectTone(stream, 16000, CALLEE_HZ, [440]);
    for (const label of ['CALLER1', 'CALLER2']) expect(missingMs(streamsOf(label)), `${label}: audio missed`).toBeLessThanOrEqual(1000);

    // The replaced instance asked nothing of Asterisk for the call: no hangup, no teardown.
    const replacedAt = first.stdoutLines.findIndex((line) => line.includes('replaced by another instance of the service'));
    const afterwards = first.stdoutLines.slice(replacedAt).map((line) => JSON.parse(line) as { msg: string });
    for (const message of ['call ending', 'leg tap closed', 'hanging up the party left alone', 'reconciled with Asterisk']) {
      expect(afterwards.map((entry) => entry.msg)).not.toContain(message);
    }
    expect(afterwards.map((entry) => entry.msg)).toContain('leg tap detached');
    // It idles, not ready, until stopped; then it exits 0 at once.
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 60_000);
});
