/**
 * Transfers, hold and re-INVITEs on the real Asterisk with real SIPp peers,
 * each party playing its own tone: the caller, the agent it reaches, the
 * party the agent (or the caller) transfers to, a party that is busy, and,
 * for an attended transfer, the colleague the agent consults from a second
 * dialog. Every stream must carry its own party's tone at least 40 dB above
 * every other party's, before and after a party changes (split at the
 * `participant` event), with one call id throughout, and nothing may be left
 * in Asterisk or the service after each call.
 *
 * The Asterisk is a cell of its own (test/support/asterisk-cell.ts: the test
 * bed's Asterisk and configuration, res_pjsip_refer included, in a network
 * namespace with the SIPp peers); the service runs in the test process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { startAsteriskCell, type AsteriskCell } from '../support/asterisk-cell.js';
import { createLab, type Lab } from '../support/netns.js';
import { receivedResponseCodes, startSipp, type SippPeer, type SippResult } from '../support/sipp.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { replacesParameter, sendSipTrigger } from '../support/sip-trigger.js';
import { expectFrameCountMatchesDuration, expectWellFormed } from '../support/stream-checks.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { toneMarginDb, tonePowerDb } from '../support/tones.js';

const SAMPLE_RATE = 16000;
const CALLER_HZ = 440;
const AGENT_HZ = 1330;
const TARGET_HZ = 880;
const COLLEAGUE_HZ = 660;
/** The agent's phone on its consultation dialog. */
const CONSULTING_HZ = 1500;
/** What the holding party plays while it holds (tone2.ulaw of the hold scenarios). */
const ON_HOLD_HZ = 2000;
/** What the callee plays after it changed codec to PCMA (tone.alaw of callee-reinvite.xml). */
const ALAW_HZ = 1800;
const ALL_HZ = [CALLER_HZ, AGENT_HZ, TARGET_HZ, COLLEAGUE_HZ, CONSULTING_HZ, ON_HOLD_HZ, ALAW_HZ];

let lab: Lab;
let cell: AsteriskCell;
/** The cell's SIP address: where the callers call and the REFERs point. */
let ASTERISK_SIP: string;
let streamServer: StrictStreamServer;
let proxy: ServiceUnderTest | undefined;
const peers: SippPeer[] = [];
/** Where each number of the tests goes: SIPp peers' ports in the cell's namespace. */
let ports: { agent: number; target: number; colleague: number; busy: number };

beforeAll(async () => {
  lab = await createLab();
  cell = await startAsteriskCell(lab.addHost('pbx', 11), { name: 'transfers' });
  ASTERISK_SIP = cell.sip;
  streamServer = await startStrictStreamServer();
});

afterAll(async () => {
  await streamServer?.close();
  await lab?.destroy();
});

// Nothing of a call may be left, in Asterisk or in the service; the next test starts clean either way.
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.kill();
  try {
    await cell.expectNothingLeft();
    proxy?.expectIdle();
  } finally {
    await proxy?.stop();
    proxy = undefined;
    streamServer.streams.length = 0;
  }
});

async function startProxy(settings: Record<string, string> = {}): Promise<ServiceUnderTest> {
  const host = cell.host;
  ports = { agent: host.port(), target: host.port(), colleague: host.port(), busy: host.port() };
  const rules = [
    `DESTINATION_DOMAIN=${host.address}:${ports.agent}`,
    '[rule transfer-target]',
    'callee = 4568',
    `destination = domain:${host.address}:${ports.target}`,
    '[rule colleague]',
    'callee = 4569',
    `destination = domain:${host.address}:${ports.colleague}`,
    '[rule busy]',
    'callee = 4570',
    `destination = domain:${host.address}:${ports.busy}`,
  ].join('\n');
  proxy = await startServiceUnderTest(
    {
      ARI_URL: cell.ariUrl,
      ARI_PASSWORD: cell.ariPassword,
      // The cell's Asterisk sends the tapped audio to the test process over the lab network.
      MEDIA_BIND_HOST: lab.hostAddress,
      STREAM_URL: streamServer.url,
      SAMPLE_RATE: String(SAMPLE_RATE),
      ...settings,
    },
    rules,
  );
  const started = proxy;
  onTestFailed(() => console.log(`--- service log (${started.logFile})\n${started.logTail(150)}\n--- Asterisk log\n${cell.logTail(60)}`));
  return started;
}

/** A SIPp peer in the cell's namespace. */
async function peer(options: Parameters<typeof startSipp>[0]): Promise<SippPeer> {
  const started = await startSipp({ ...options, host: cell.host });
  peers.push(started);
  onTestFailed(() => console.log(`--- SIPp ${options.scenario}\n${started.workdir}`));
  return started;
}

function expectSippOk(result: SippResult, what: string): void {
  expect(result.exitCode, `${what}: ${result.stderr.slice(-800)}`).toBe(0);
}

/** The sipfrag status codes of the NOTIFYs a transferer received, in order. */
function sipfrags(messages: string): number[] {
  const codes: number[] = [];
  for (const match of messages.matchAll(/message received[^\n]*\n+NOTIFY [\s\S]*?\n\s*\n\s*SIP\/2\.0 (\d{3})/g))
    codes.push(Number(match[1]));
  return codes;
}

function byLabel(streams: ReceivedStream[], label: string, callee?: string): ReceivedStream {
  const found = streams.filter((s) => s.metadata?.label === label && (callee === undefined || s.metadata?.callee === callee));
  expect(found, `streams labelled ${label}${callee === undefined ? '' : ` of the call to ${callee}`}`).toHaveLength(1);
  return found[0]!;
}

/** The frames from `from` to `to` (frame indexes), minus `trimMs` at each end. */
function span(stream: ReceivedStream, from: number, to = stream.frames.length, trimMs = 400): Buffer {
  const trim = trimMs / 20;
  return Buffer.concat(stream.frames.slice(from + trim, Math.max(from + trim, to - trim)));
}

/** `audio` carries `ownHz` at least 40 dB above every other tone of the tests. */
function expectOwn(audio: Buffer, ownHz: number, what: string): void {
  expect(audio.length, `${what}: seconds of audio`).toBeGreaterThan(SAMPLE_RATE * 2);
  for (const other of ALL_HZ.filter((hz) => hz !== ownHz)) {
    expect(toneMarginDb(audio, SAMPLE_RATE, ownHz, other), `${what}: ${ownHz} Hz above ${other} Hz (dB)`).toBeGreaterThanOrEqual(40);
  }
}

/**
 * A tone is in a 20 ms frame when its power there is above this (dBFS). The peers' tones
 * measure about -12 dBFS in a frame of their own; another tone of the tests leaks about
 * -40 dBFS into a frame through the 50 Hz-wide filter.
 */
const IN_FRAME_DB = -30;

/** Indexes of the frames from `from` to `to` that carry `hz`. */
function framesWith(stream: ReceivedStream, hz: number, from = 0, to = stream.frames.length): number[] {
  const found: number[] = [];
  for (let index = from; index < Math.min(to, stream.frames.length); index++)
    if (tonePowerDb(stream.frames[index]!, SAMPLE_RATE, hz) > IN_FRAME_DB) found.push(index);
  return found;
}

/**
 * A leg's stream changed party at frame `at` (its participant event) in order and without a
 * gap: not one frame of the new party before it, not one of the old party after it, the new
 * party from the first frames after it on, and no pause in the frames' arrival.
 */
function expectSwitchAt(stream: ReceivedStream, at: number, oldHz: number, newHz: number, what: string): void {
  expect(at, `${what}: frames before the participant event`).toBeGreaterThan(50);
  expect(framesWith(stream, newHz, 0, at), `${what}: frames of the new party (${newHz} Hz) before the switch`).toEqual([]);
  expect(framesWith(stream, oldHz, at), `${what}: frames of the old party (${oldHz} Hz) after the switch`).toEqual([]);
  const fromNew = framesWith(stream, newHz, at);
  // The new party's tap runs from its answer; its first frames can be silence until its media flows.
  const first = fromNew[0] ?? stream.frames.length;
  expect(first, `${what}: the new party's first frame (the switch at ${at})`).toBeLessThan(at + 25);
  for (const hz of ALL_HZ) expect(framesWith(stream, hz, at, first), `${what}: ${hz} Hz before the new party's first frame`).toEqual([]);
  // From its first frame on, the frames carry the new party, but for the call's last moments
  // and a few a starved snoop may flush as silence (the ones without it are named on failure).
  const steadyEnd = stream.frames.length - 25;
  const withNew = new Set(fromNew);
  const without: number[] = [];
  for (let index = first; index < steadyEnd; index++) if (!withNew.has(index)) without.push(index);
  expect(without.length, `${what}: frames after ${first} without the new party: ${without.join(',')}`).toBeLessThanOrEqual(
    Math.ceil((steadyEnd - first) * 0.05),
  );
  expectNoGap(stream, what);
}

/**
 * No pause in a stream's audio: the longest time between two arrivals (the cadence is 20 ms),
 * less the frames that then arrive at once (< 5 ms apart) to catch up. A process that waited
 * for the CPU sends what it held in one burst: its audio had no gap. Audio missing has no burst.
 */
function expectNoGap(stream: ReceivedStream, what: string): void {
  const arrivals = stream.frameArrivalMs;
  let longest = 0;
  for (let i = 1; i < arrivals.length; i++) {
    let caughtUp = 0;
    while (i + caughtUp + 1 < arrivals.length && arrivals[i + caughtUp + 1]! - arrivals[i + caughtUp]! < 5) caughtUp++;
    longest = Math.max(longest, arrivals[i]! - arrivals[i - 1]! - 20 * caughtUp);
  }
  expect(longest, `${what}: longest gap in the audio between frames, less what caught up at once (ms)`).toBeLessThan(250);
}

/** Not one frame of the stream carries any of `hz`. */
function expectNoneOf(stream: ReceivedStream, hz: number[], what: string): void {
  for (const tone of hz) expect(framesWith(stream, tone), `${what}: frames with ${tone} Hz`).toEqual([]);
}

/** The one participant event of a stream; its frames before and after. */
function participantSplit(stream: ReceivedStream): { event: Record<string, unknown>; at: number } {
  const events = stream.events.filter((e) => e.event === 'participant');
  expect(events, `participant events on ${String(stream.metadata?.label)}`).toHaveLength(1);
  return { event: events[0]!, at: Number(events[0]!.framesBefore) };
}

/**
 * The agent (leg B) transferred the call to 4568 and hung up: CALLER1 carried the caller the
 * whole call; CALLER2 the agent until its participant event and the target from then on,
 * frame by frame, with one call id and no break in either stream. Returns the two streams.
 */
async function expectAgentReplacedByTarget(): Promise<ReceivedStream[]> {
  const streams = await streamServer.waitForClosedStreams(2, 10_000);
  expect(streams).toHaveLength(2);
  for (const stream of streams) expectWellFormed(stream);
  const caller1 = byLabel(streams, 'CALLER1');
  const caller2 = byLabel(streams, 'CALLER2');
  expect(caller2.metadata?.callId).toBe(caller1.metadata?.callId);
  expectOwn(span(caller1, 0), CALLER_HZ, 'CALLER1, the whole call');
  expect(caller1.events.filter((e) => e.event === 'participant')).toEqual([]);
  const { event, at } = participantSplit(caller2);
  expect(event).toMatchObject({ label: 'CALLER2', leg: 'B', callee: '4568', caller: '1001', sequence: 2, reason: 'transfer' });
  expect(event.channelId).not.toBe(caller2.metadata?.channelId);
  expect(event.sipCallId).toMatch(/.+/);
  expectOwn(span(caller2, 0, at), AGENT_HZ, 'CALLER2 before the transfer');
  expectOwn(span(caller2, at), TARGET_HZ, 'CALLER2 after the transfer');
  expectSwitchAt(caller2, at, AGENT_HZ, TARGET_HZ, 'CALLER2');
  expectNoneOf(caller1, [AGENT_HZ, TARGET_HZ], 'CALLER1');
  expectNoGap(caller1, 'CALLER1');
  // The call went on without a break on either stream.
  expectFrameCountMatchesDuration(caller1);
  expectFrameCountMatchesDuration(caller2);
  return streams;
}

describe('blind transfer', () => {
  it('by the called party: CALLER1 keeps the caller, CALLER2 carries the third party after its participant event, one call id', async () => {
    await startProxy();
    const target = await peer({ scenario: 'callee.xml', toneHz: TARGET_HZ, sipPort: ports.target });
    const agent = await peer({
      scenario: 'callee-refers.xml',
      toneHz: AGENT_HZ,
      sipPort: ports.agent,
      variables: { refer_to: `4568@${ASTERISK_SIP}`, refer_after_ms: '4000' },
    });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 10_000, target: ASTERISK_SIP });
    const [callerDone, agentDone, targetDone] = await Promise.all([caller.done, agent.done, target.done]);
    expectSippOk(callerDone, 'caller');
    expectSippOk(agentDone, 'agent');
    expectSippOk(targetDone, 'target');
    expect(sipfrags(agentDone.messages)).toEqual([100, 200]);
    await expectAgentReplacedByTarget();
  });

  it('by the feature code: the agent keys ## 4568 # (RFC 4733), and the call is transferred as by a REFER', async () => {
    await startProxy({ STREAM_DTMF: 'yes' });
    const target = await peer({ scenario: 'callee.xml', toneHz: TARGET_HZ, sipPort: ports.target });
    const agent = await peer({
      scenario: 'callee-feature-code.xml',
      toneHz: AGENT_HZ,
      sipPort: ports.agent,
      dtmfDigits: '##4568#',
      variables: { code_after_ms: '3000' },
    });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 10_000, target: ASTERISK_SIP });
    const [callerDone, agentDone, targetDone] = await Promise.all([caller.done, agent.done, target.done]);
    expectSippOk(callerDone, 'caller');
    expectSippOk(agentDone, 'agent');
    expectSippOk(targetDone, 'target');
    // No REFER, so no sipfrag: the service hung the agent up itself.
    expect(sipfrags(agentDone.messages)).toEqual([]);
    expect(agentDone.messages).toMatch(/message received[^\n]*\n+BYE /);
    const streams = await expectAgentReplacedByTarget();
    // The code and the number are the service's: not one digit on the streams, nor in the log.
    for (const stream of streams) expect(stream.events.filter((e) => e.event === 'dtmf')).toEqual([]);
    const log = proxy!.logTail(1000);
    expect(log).toContain('transfer code keyed');
    expect(log).not.toMatch(/"digit":/);
    // "Transfer" was played to the agent in the call bridge, and stopped by its first digit.
    expect(log).toContain('transfer prompt playing');
    expect(log).not.toContain('could not play the transfer prompt');
    const asterisk = cell.logTail(400);
    expect(asterisk).toMatch(/Playing 'pbx-transfer\./);
    expect(asterisk).toContain('Playback stopped for sound:pbx-transfer');
  });

  it('by the caller: CALLER1 carries the third party after its participant event, CALLER2 keeps the agent', async () => {
    await startProxy();
    const target = await peer({ scenario: 'callee.xml', toneHz: TARGET_HZ, sipPort: ports.target });
    const agent = await peer({ scenario: 'callee-hangs-up.xml', toneHz: AGENT_HZ, sipPort: ports.agent, holdMs: 10_000 });
    const caller = await peer({
      scenario: 'caller-refers.xml',
      toneHz: CALLER_HZ,
      service: '4567',
      target: ASTERISK_SIP,
      variables: { refer_to: `4568@${ASTERISK_SIP}`, refer_after_ms: '4000' },
    });
    const [callerDone, agentDone, targetDone] = await Promise.all([caller.done, agent.done, target.done]);
    expectSippOk(callerDone, 'caller');
    expectSippOk(agentDone, 'agent');
    expectSippOk(targetDone, 'target');
    expect(sipfrags(callerDone.messages)).toEqual([100, 200]);

    const streams = await streamServer.waitForClosedStreams(2, 10_000);
    for (const stream of streams) expectWellFormed(stream);
    const caller1 = byLabel(streams, 'CALLER1');
    const caller2 = byLabel(streams, 'CALLER2');
    expect(caller2.metadata?.callId).toBe(caller1.metadata?.callId);
    const { event, at } = participantSplit(caller1);
    expect(event).toMatchObject({ label: 'CALLER1', leg: 'A', caller: '4568', callee: '4567', sequence: 2, reason: 'transfer' });
    expectOwn(span(caller1, 0, at), CALLER_HZ, 'CALLER1 before the transfer');
    expectOwn(span(caller1, at), TARGET_HZ, 'CALLER1 after the transfer');
    expectSwitchAt(caller1, at, CALLER_HZ, TARGET_HZ, 'CALLER1');
    expectOwn(span(caller2, 0), AGENT_HZ, 'CALLER2, the whole call');
    expectNoneOf(caller2, [CALLER_HZ, TARGET_HZ], 'CALLER2');
    expectNoGap(caller2, 'CALLER2');
    expect(caller2.events.filter((e) => e.event === 'participant')).toEqual([]);
    expectFrameCountMatchesDuration(caller1);
    expectFrameCountMatchesDuration(caller2);
  });

  it('to a busy number: the agent is told (603) and stays, the call goes on unchanged', async () => {
    await startProxy();
    const busy = await peer({ scenario: 'callee-busy.xml', sipPort: ports.busy });
    const agent = await peer({
      scenario: 'callee-refers.xml',
      toneHz: AGENT_HZ,
      sipPort: ports.agent,
      variables: { refer_to: `4570@${ASTERISK_SIP}`, refer_after_ms: '3000' },
    });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 8000, target: ASTERISK_SIP });
    const [callerDone, agentDone, busyDone] = await Promise.all([caller.done, agent.done, busy.done]);
    expectSippOk(callerDone, 'caller');
    expectSippOk(agentDone, 'agent');
    expectSippOk(busyDone, 'busy target');
    expect(sipfrags(agentDone.messages)).toEqual([100, 603]);
    // The caller ended the call: the agent was still in it.
    expect(agentDone.messages).toMatch(/message received[^\n]*\n+BYE /);

    const streams = await streamServer.waitForClosedStreams(2, 10_000);
    for (const stream of streams) {
      expectWellFormed(stream);
      expect(stream.events.filter((e) => e.event === 'participant')).toEqual([]);
      expectFrameCountMatchesDuration(stream);
    }
    expectOwn(span(byLabel(streams, 'CALLER1'), 0), CALLER_HZ, 'CALLER1');
    expectOwn(span(byLabel(streams, 'CALLER2'), 0), AGENT_HZ, 'CALLER2, still the agent');
  });
});

describe('attended transfer', () => {
  it('with Replaces after a consultation call: the caller ends up with the colleague in the first call, the consultation ends', async () => {
    await startProxy();
    const colleague = await peer({ scenario: 'callee.xml', toneHz: COLLEAGUE_HZ, sipPort: ports.colleague });
    const agent = await peer({
      scenario: 'callee-attended.xml',
      toneHz: AGENT_HZ,
      sipPort: ports.agent,
      variables: { refer_to: `4569@${ASTERISK_SIP}`, hold_after_ms: '1500' },
    });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 14_000, target: ASTERISK_SIP });
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length > 100).length, { timeout: 10_000 }).toBe(2);
    // The agent's phone calls the colleague from a second dialog: its own call through the app.
    const consulting = await peer({
      scenario: 'caller-waits-bye.xml',
      toneHz: CONSULTING_HZ,
      service: '4569',
      callerId: '2001',
      target: ASTERISK_SIP,
    });
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length > 100).length, { timeout: 10_000 }).toBe(4);
    const first = byLabel(streamServer.streams, 'CALLER2', '4567').metadata!;
    const consultation = byLabel(streamServer.streams, 'CALLER1', '4569').metadata!;
    const consultChannel = encodeURIComponent(String(consultation.channelId));
    const tag = async (name: string) =>
      (
        await cell.ari<{ value: string }>(
          'GET',
          `/channels/${consultChannel}/variable?variable=${encodeURIComponent(`CHANNEL(pjsip,${name})`)}`,
        )
      ).value;
    const replaces = replacesParameter({
      callId: String(consultation.sipCallId),
      toTag: await tag('local_tag'),
      fromTag: await tag('remote_tag'),
    });
    await sendSipTrigger(
      { host: cell.host.address, port: ports.agent },
      String(first.sipCallId),
      { 'X-Replaces': replaces },
      { localHost: lab.hostAddress },
    );

    const [callerDone, agentDone, consultingDone, colleagueDone] = await Promise.all([
      caller.done,
      agent.done,
      consulting.done,
      colleague.done,
    ]);
    expectSippOk(callerDone, 'caller');
    expectSippOk(agentDone, 'agent');
    expectSippOk(consultingDone, 'the agent’s consultation dialog');
    expectSippOk(colleagueDone, 'colleague');
    expect(sipfrags(agentDone.messages)).toEqual([100, 200]);

    const streams = await streamServer.waitForClosedStreams(4, 10_000);
    for (const stream of streams) expectWellFormed(stream);
    const caller1 = byLabel(streams, 'CALLER1', '4567');
    const caller2 = byLabel(streams, 'CALLER2', '4567');
    expectOwn(span(caller1, 0), CALLER_HZ, 'CALLER1 of the first call, the whole call');
    const { event, at } = participantSplit(caller2);
    expect(event).toMatchObject({ label: 'CALLER2', leg: 'B', callee: '4569', sequence: 2, reason: 'attended-transfer' });
    expect(event.channelId).toBe(byLabel(streams, 'CALLER2', '4569').metadata?.channelId);
    expectOwn(span(caller2, 0, at), AGENT_HZ, 'CALLER2 before the transfer');
    expectOwn(span(caller2, at), COLLEAGUE_HZ, 'CALLER2 after the transfer');
    expectSwitchAt(caller2, at, AGENT_HZ, COLLEAGUE_HZ, 'CALLER2');
    expectNoneOf(caller2, [CONSULTING_HZ], 'CALLER2 of the first call');
    expectNoneOf(caller1, [AGENT_HZ, COLLEAGUE_HZ, CONSULTING_HZ], 'CALLER1 of the first call');
    expectFrameCountMatchesDuration(caller1);
    expectFrameCountMatchesDuration(caller2);
    // The consultation was a call of its own, with its own id; it ended when the two became one.
    const consultStreams = [byLabel(streams, 'CALLER1', '4569'), byLabel(streams, 'CALLER2', '4569')];
    for (const stream of consultStreams) {
      expect(stream.metadata?.callId).not.toBe(caller1.metadata?.callId);
      expect(stream.stop?.reason).toBe(`merged into call ${String(caller1.metadata?.callId)} by an attended transfer`);
    }
    expectOwn(span(consultStreams[0]!, 0), CONSULTING_HZ, 'the consultation’s CALLER1');
    expectOwn(span(consultStreams[1]!, 0), COLLEAGUE_HZ, 'the consultation’s CALLER2');
  });
});

describe('hold and re-INVITEs', () => {
  async function holdCall(holder: 'A' | 'B', settings: Record<string, string> = {}) {
    await startProxy(settings);
    const hold = { hold_after_ms: '3000', hold_ms: '3000', hold_direction: 'sendonly' };
    const agent = await peer({
      scenario: holder === 'B' ? 'callee-hold.xml' : 'callee.xml',
      toneHz: AGENT_HZ,
      extraTonesHz: [ON_HOLD_HZ],
      sipPort: ports.agent,
      variables: holder === 'B' ? hold : {},
    });
    const caller = await peer({
      scenario: holder === 'A' ? 'caller-hold.xml' : 'caller.xml',
      toneHz: CALLER_HZ,
      extraTonesHz: [ON_HOLD_HZ],
      service: '4567',
      holdMs: holder === 'A' ? 3000 : 10_000,
      target: ASTERISK_SIP,
      variables: holder === 'A' ? hold : {},
    });
    for (const [result, what] of [
      [await caller.done, 'caller'],
      [await agent.done, 'agent'],
    ] as const)
      expectSippOk(result, what);
    const streams = await streamServer.waitForClosedStreams(2, 10_000);
    for (const stream of streams) {
      expectWellFormed(stream);
      // The streams stayed open and kept their cadence through the hold.
      expectFrameCountMatchesDuration(stream);
    }
    return { caller1: byLabel(streams, 'CALLER1'), caller2: byLabel(streams, 'CALLER2') };
  }

  const eventsOf = (stream: ReceivedStream) => stream.events.map((e) => `${String(e.event)}:${String(e.by ?? e.reason)}`);

  it.each([
    ['the called party', 'B', 'CALLER2'],
    ['the caller', 'A', 'CALLER1'],
  ] as const)('by %s: hold and unhold events on both streams, audio throughout', async (_who, holder, by) => {
    const { caller1, caller2 } = await holdCall(holder);
    for (const stream of [caller1, caller2]) expect(eventsOf(stream)).toEqual([`hold:${by}`, `unhold:${by}`]);
    const holding = holder === 'A' ? caller1 : caller2;
    const held = holder === 'A' ? caller2 : caller1;
    const [holdAt, unholdAt] = holding.events.map((e) => Number(e.framesBefore));
    // The holding party's stream carries what it sends while holding; the held party's, its own voice (no music on hold).
    expectOwn(span(holding, holdAt!, unholdAt), ON_HOLD_HZ, 'the holding party while it holds');
    expectOwn(span(holding, unholdAt!), holder === 'A' ? CALLER_HZ : AGENT_HZ, 'the holding party after it resumed');
    expectOwn(span(held, 0), holder === 'A' ? AGENT_HZ : CALLER_HZ, 'the held party, the whole call');
  });

  it('with PAUSE_ON_HOLD: no audio of the held span is sent, paused and resumed events, the stream keeps its time', async () => {
    const { caller1, caller2 } = await holdCall('B', { PAUSE_ON_HOLD: 'yes' });
    for (const stream of [caller1, caller2]) {
      expect(eventsOf(stream)).toEqual(['hold:CALLER2', 'paused:hold', 'unhold:CALLER2', 'resumed:hold']);
      const paused = Number(stream.events[1]!.framesBefore);
      const resumed = Number(stream.events[3]!.framesBefore);
      const held = stream.frames.slice(paused, resumed);
      expect(held.length, 'frames of the held span').toBeGreaterThan(100);
      expect(held.every((frame) => frame.every((byte) => byte === 0))).toBe(true);
      const leaked = stream.frames.flatMap((frame, index) => (tonePowerDb(frame, SAMPLE_RATE, ON_HOLD_HZ) > -40 ? [index] : []));
      expect(leaked, `frames with what the holder sent while holding (held span: ${paused}..${resumed})`).toEqual([]);
    }
    expectOwn(span(caller1, 0, Number(caller1.events[1]!.framesBefore)), CALLER_HZ, 'CALLER1 before the hold');
    expectOwn(span(caller2, Number(caller2.events[3]!.framesBefore)), AGENT_HZ, 'CALLER2 after the hold');
  });

  it('a session refresh and a codec change mid-call: no interruption, no event', async () => {
    await startProxy();
    const agent = await peer({
      scenario: 'callee-reinvite.xml',
      toneHz: AGENT_HZ,
      alawToneHz: ALAW_HZ,
      sipPort: ports.agent,
      variables: { reinvite_after_ms: '2500' },
    });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 9000, target: ASTERISK_SIP });
    expectSippOk(await caller.done, 'caller');
    expectSippOk(await agent.done, 'agent');
    // Both re-INVITEs answered 200.
    expect(receivedResponseCodes((await agent.done).messages).filter((code) => code === 200)).toHaveLength(2);
    const streams = await streamServer.waitForClosedStreams(2, 10_000);
    for (const stream of streams) {
      expectWellFormed(stream);
      expect(stream.events).toEqual([]);
      expectFrameCountMatchesDuration(stream);
      const gaps = stream.frameArrivalMs.slice(1).map((ms, i) => ms - stream.frameArrivalMs[i]!);
      expect(Math.max(...gaps), 'longest gap between frames (ms)').toBeLessThan(250);
    }
    expectOwn(span(byLabel(streams, 'CALLER1'), 0), CALLER_HZ, 'CALLER1');
    const caller2 = byLabel(streams, 'CALLER2');
    // PCMA from 3.5 s on (the refresh at 2.5 s, the codec change 1 s later).
    expectOwn(span(caller2, 0, 2500 / 20), AGENT_HZ, 'CALLER2 before the codec change');
    expectOwn(span(caller2, 4000 / 20), ALAW_HZ, 'CALLER2 after the codec change');
  });
});
