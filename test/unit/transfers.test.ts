/**
 * Transfers and hold in the call flow, without Asterisk: the StasisApp driven
 * through the in-memory ARI (test/support/fake-ari.ts) while parties send
 * REFER (as Asterisk reports it with PJSIP_TRANSFER_HANDLING ari-only) and put
 * the call on hold. What Asterisk really does is proven end to end
 * (test/e2e/transfers.test.ts); this pins the state machine: who is bridged
 * with whom, what the transferer's phone is told, what the streams say, what
 * the record says, and that nothing is left behind on any path.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CALL_RECORD_VARIABLE, decodeCallRecord, encodeCallRecord } from '../../app/calls/call-record.js';
import { HOLD_RESUME_DELAY_MS } from '../../app/calls/call-session.js';
import { TRANSFER_HANDLING_VARIABLE, transferArgs } from '../../app/calls/inbound-plan.js';
import { StasisApp } from '../../app/calls/stasis-app.js';
import { TRANSFERER_GRACE_MS } from '../../app/calls/transfer.js';
import { loadConfig } from '../../app/config/load-config.js';
import { FakeAri, FakeStreams, FakeTransports, settle } from '../support/fake-ari.js';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const configWith = (env: Record<string, string> = {}) =>
  loadConfig({ env: { ARI_PASSWORD: 'x', DESTINATION_DOMAIN: '127.0.0.1:5070', ...env }, cwd: '/nonexistent' }).config;

let app: StasisApp | undefined;
afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await app?.stop();
  app = undefined;
});

/** From now on performance.now() reads `ms` later than it would. */
function later(ms: number): void {
  const now = performance.now.bind(performance);
  vi.spyOn(performance, 'now').mockImplementation(() => now() + ms);
}

async function startApp(env: Record<string, string> = {}) {
  const ari = new FakeAri();
  const streams = new FakeStreams();
  const transports = new FakeTransports();
  app = new StasisApp({ ari, config: configWith(env), logger, transports, createStreams: streams.factory, reconcileIntervalMs: 3_600_000 });
  await app.start();
  return { ari, streams, transports };
}

/** A caller enters, its leg B answers; returns once both legs are tapped. */
async function connectedCall(ari: FakeAri, number = '4567', caller = '1001') {
  const before = ari.ops('createChannel').length;
  const legA = ari.callerEnters({ number: caller, args: [`number=${number}`] });
  await settle();
  const legB = ari.ops('createChannel')[before]!.args.channelId as string;
  ari.calleeAnswers(legB);
  await settle(20);
  return { legA: legA.id, legB };
}

/** A party's phone sends a blind REFER; returns the target the service creates. */
async function refer(ari: FakeAri, from: string, number: string): Promise<string> {
  ari.partyRefers(from, number);
  await settle();
  return lastCreated(ari).channelId as string;
}

/** The last party hangs up: nothing of the call may be left. */
async function endCall(ari: FakeAri, lastParty: string): Promise<void> {
  ari.partyHangsUp(lastParty);
  await settle(30);
  expect([...ari.channels.keys()]).toEqual([]);
  expect(ari.bridges.size).toBe(0);
  expect(app!.activeCalls).toBe(0);
}

const callBridge = (ari: FakeAri) => [...ari.bridges.values()].filter((b) => b.id.startsWith('call-'));
const lastCreated = (ari: FakeAri) => ari.ops('createChannel').at(-1)!.args;
const recordOn = (ari: FakeAri, channelId: string) => decodeCallRecord(ari.channels.get(channelId)?.variables.get(CALL_RECORD_VARIABLE));

describe('toll fraud through a transfer', () => {
  const GATEWAY = {
    OUT_SIP_GATEWAY_IP: '10.1.0.4:5060',
    OUTBOUND_CALL_EXT: '1000',
    OUTBOUND_CALLS_SECRET: 's3cret',
    INTERNAL_CONTEXTS: 'from-internal',
  };

  it('a party off the agents’ side of an outbound call cannot send its transfer out through the gateway', async () => {
    const { ari } = await startApp(GATEWAY);
    const legA = ari.callerEnters({ number: '2001', args: ['number=33612345678', 'direction=outbound'] });
    await settle();
    const legB = lastCreated(ari).channelId as string;
    expect(String(lastCreated(ari).endpoint), 'the agent’s own call goes out').toContain('transcription-proxy-gateway');
    ari.calleeAnswers(legB);
    await settle(20);
    // The customer on leg B (from-test: not an internal context) transfers to an international number.
    await refer(ari, legB, '33699999999');
    expect(String(lastCreated(ari).endpoint)).not.toContain('transcription-proxy-gateway');
    expect(String(lastCreated(ari).endpoint)).toContain('127.0.0.1:5070');
    await endCall(ari, legA.id);
  });

  it('keeps what sends a call out for a party on the agents’ side, and drops it for any other', () => {
    const args = { number: '33612345678', direction: 'outbound', destination: { kind: 'gateway' }, ruleSet: 'sales' } as const;
    expect(transferArgs(args, true)).toEqual(args);
    expect(transferArgs(args, false)).toEqual({ number: '33612345678', ruleSet: 'sales' });
    expect(transferArgs({ direction: 'inbound' }, false)).toEqual({ direction: 'inbound' });
  });
});

describe('blind transfer by the called party', () => {
  it('dials the number as routed, bridges the target in the agent’s place, switches CALLER2, keeps the call id', async () => {
    const { ari, streams, transports } = await startApp({ DIALED_NUMBER_MAPPING: '8000:4568' });
    const { legA, legB } = await connectedCall(ari);
    expect(ari.channels.get(legA)!.variables.get(TRANSFER_HANDLING_VARIABLE)).toBe('ari-only');
    expect(ari.ops('createChannel')[0]!.args.variables).toMatchObject({ [TRANSFER_HANDLING_VARIABLE]: 'ari-only' });

    ari.partyRefers(legB, '8000');
    await settle();
    const target = lastCreated(ari);
    expect(target.endpoint).toBe('PJSIP/transcription-proxy-out/sip:4568@127.0.0.1:5070');
    expect(target.channelId).toMatch(/^leg-b-/);
    expect(target.originator).toBe(legA);
    expect(target.variables).toMatchObject({ [TRANSFER_HANDLING_VARIABLE]: 'ari-only' });
    expect(ari.transferStates(legB)).toEqual(['channel_progress']);
    const targetId = target.channelId as string;

    ari.calleeRings(targetId);
    await settle();
    expect(ari.ops('ring').map((r) => r.args.channelId)).toContain(legA);
    ari.calleeAnswers(targetId);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, targetId].sort());
    expect(ari.transferStates(legB)).toEqual(['channel_progress', 'channel_answered']);
    expect(ari.ops('ringStop').map((r) => r.args.channelId)).toContain(legA);
    expect(ari.ops('snoop').map((r) => r.args.channelId)).toContain(targetId);

    // The old tap feeds CALLER2 until the target's tap delivers; then the stream is told.
    const call = streams.created[0]!;
    expect(call.participants).toEqual([]);
    transports.opened[2]!.deliver(Buffer.alloc(640), 0);
    // What the new tap delivered before it took over went nowhere: its first frame on the stream counts nothing lost.
    expect(call.lostBefore.B.at(-1)).toBeUndefined();
    expect(call.participants).toHaveLength(1);
    expect(call.participants[0]).toMatchObject({ leg: 'B', reason: 'transfer' });
    expect(call.participants[0]!.identity).toMatchObject({ label: 'CALLER2', channelId: targetId, callee: '4568', sequence: 2 });
    expect(call.identities[1].callId).toBe(call.identities[0].callId);
    transports.opened[1]!.deliver(Buffer.alloc(640));
    expect(call.framesSinceParticipant.B).toBe(1);

    const record = recordOn(ari, legA);
    expect(record).toMatchObject({ legA, legB: targetId, callee: '4568', sequences: [1, 2] });
    expect(recordOn(ari, targetId)).toEqual(record);

    // The agent's phone hangs up on the 200 sipfrag: the call goes on.
    ari.partyHangsUp(legB);
    await settle(20);
    expect(app!.activeCalls).toBe(1);
    expect(call.finishedWith).toBeUndefined();
    ari.partyHangsUp(targetId);
    await settle(30);
    expect(call.finishedWith).toBe('callee hung up');
    expect([...ari.channels.keys()]).toEqual([]);
    expect(ari.bridges.size).toBe(0);
  });

  it('hangs up a transferer that stays after the transfer', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { ari } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const targetId = await refer(ari, legB, '4568');
    ari.calleeAnswers(targetId);
    await settle(30);
    await vi.advanceTimersByTimeAsync(TRANSFERER_GRACE_MS - 100);
    expect(ari.channels.has(legB)).toBe(true);
    await vi.advanceTimersByTimeAsync(100);
    await settle(10);
    vi.useRealTimers();
    expect(ari.channels.has(legB)).toBe(false);
    expect(app!.activeCalls).toBe(1);
    await endCall(ari, legA);
  });

  it('tells the transferer when the target is busy, and the call goes on between the first two', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const targetId = await refer(ari, legB, '4568');
    ari.partyHangsUp(targetId, 17);
    await settle(20);
    expect(ari.transferStates(legB)).toEqual(['channel_progress', 'channel_declined']);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, legB].sort());
    expect(streams.created[0]!.participants).toEqual([]);
    expect(app!.activeCalls).toBe(1);
    // ... and a second transfer works.
    const second = await refer(ari, legB, '4569');
    expect(second).not.toBe(targetId);
    ari.calleeAnswers(second);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, second].sort());
    await endCall(ari, legA);
  });

  it('ends the call as a direct call to the target would when the transferer has left: busy', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const targetId = await refer(ari, legB, '4568');
    ari.partyHangsUp(legB);
    await settle(20);
    expect(app!.activeCalls).toBe(1);
    ari.partyHangsUp(targetId, 17);
    await settle(30);
    expect(ari.ops('hangup').find((r) => r.args.channelId === legA)?.args.reason).toBe('busy');
    expect(streams.created[0]!.finishedWith).toMatch(/transfer target busy/);
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
  });

  it('a target that does not answer: 503 to the transferer, the call goes on; once the transferer has left, it ends as unanswered', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const first = await refer(ari, legB, '4568');
    ari.calleeRings(first);
    await settle();
    // Dial's timeout (DIAL_TIMEOUT_MS) ran out: Asterisk hangs the target up with cause 19.
    ari.partyHangsUp(first, 19);
    await settle(20);
    expect(ari.transferStates(legB)).toEqual(['channel_progress', 'channel_unavailable']);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, legB].sort());
    expect(app!.activeCalls).toBe(1);
    const second = await refer(ari, legB, '4568');
    ari.partyHangsUp(legB);
    await settle(20);
    ari.partyHangsUp(second, 19);
    await settle(30);
    expect(ari.ops('hangup').find((r) => r.args.channelId === legA)?.args.reason).toBe('no_answer');
    expect(streams.created[0]!.finishedWith).toMatch(/transfer target no answer/);
    expect(streams.created[0]!.participants).toEqual([]);
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
    expect(app!.activeCalls).toBe(0);
  });

  it('connects the target when the transferer left before it answered', async () => {
    const { ari } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const targetId = await refer(ari, legB, '4568');
    ari.partyHangsUp(legB);
    await settle(20);
    ari.calleeAnswers(targetId);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, targetId].sort());
    await endCall(ari, legA);
  });

  it('hangs up a ringing target when the caller hangs up', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const targetId = await refer(ari, legB, '4568');
    ari.calleeRings(targetId);
    await settle();
    ari.partyHangsUp(legA);
    await settle(30);
    expect(streams.created[0]!.finishedWith).toBe('caller hung up');
    expect(ari.ops('hangup').map((r) => r.args.channelId)).toContain(targetId);
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
    expect(app!.activeCalls).toBe(0);
  });
});

describe('refusals', () => {
  it('a number the routing cannot place: 503 to the transferer, the call unchanged', async () => {
    const { ari } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    ari.partyRefers(legB, '4&5');
    await settle(10);
    expect(ari.transferStates(legB)).toEqual(['channel_unavailable']);
    expect(ari.ops('createChannel')).toHaveLength(1);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, legB].sort());
  });

  it('a REFER while a transfer is under way', async () => {
    const { ari } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    ari.partyRefers(legB, '4568');
    await settle();
    ari.partyRefers(legA, '4569');
    await settle();
    expect(ari.transferStates(legA)).toEqual(['channel_unavailable']);
    expect(ari.ops('createChannel')).toHaveLength(2);
  });

  it('an attended transfer whose consultation is not a call of the service', async () => {
    const { ari } = await startApp();
    const { legB } = await connectedCall(ari);
    const stranger = ari.seedChannel('1800.1', { inApp: false });
    ari.partyRefers(legB, '4569', stranger.id);
    await settle(10);
    expect(ari.transferStates(legB)).toEqual(['channel_unavailable']);
    expect(app!.activeCalls).toBe(1);
  });
});

describe('blind transfer by the caller', () => {
  it('puts the target on the caller’s side: CALLER1 switches, leg A is the target, the record follows', async () => {
    const { ari, streams, transports } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    ari.partyRefers(legA, '4568');
    await settle();
    const target = lastCreated(ari);
    const targetId = target.channelId as string;
    expect(targetId).toMatch(/^leg-a-/);
    expect(target.originator).toBe(legB);
    ari.calleeAnswers(targetId);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legB, targetId].sort());
    expect(ari.transferStates(legA)).toEqual(['channel_progress', 'channel_answered']);
    transports.opened[2]!.deliver(Buffer.alloc(640));
    const call = streams.created[0]!;
    expect(call.participants[0]).toMatchObject({ leg: 'A', reason: 'transfer' });
    expect(call.participants[0]!.identity).toMatchObject({ label: 'CALLER1', channelId: targetId, caller: '4568', sequence: 2 });
    expect(recordOn(ari, targetId)).toMatchObject({ legA: targetId, legB, caller: '4568', sequences: [2, 1] });
    ari.partyHangsUp(legA);
    await settle(20);
    expect(app!.activeCalls).toBe(1);
    ari.partyHangsUp(targetId);
    await settle(30);
    expect(call.finishedWith).toBe('caller hung up');
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
  });
});

describe('attended transfer', () => {
  it('joins the caller to the consulted party in the first call; the consultation ends, its party handed over', async () => {
    const { ari, streams, transports } = await startApp();
    const first = await connectedCall(ari, '4567', '1001');
    const consultation = await connectedCall(ari, '4569', '2001');
    // The agent (first call's leg B) refers, replacing its consultation dialog (the second call's leg A).
    ari.partyRefers(first.legB, '4569', consultation.legA);
    await settle(30);
    const [firstStreams, consultStreams] = streams.created;
    expect(callBridge(ari).map((b) => b.channels.sort())).toEqual([[first.legA, consultation.legB].sort()]);
    expect(ari.transferStates(first.legB)).toEqual(['channel_progress', 'channel_answered']);
    expect(consultStreams!.finishedWith).toMatch(/^merged into call .* by an attended transfer$/);
    expect(ari.channels.has(consultation.legA)).toBe(false);
    expect(ari.channels.has(consultation.legB)).toBe(true);
    expect(app!.activeCalls).toBe(1);
    transports.opened.at(-1)!.deliver(Buffer.alloc(640));
    expect(firstStreams!.participants[0]).toMatchObject({ leg: 'B', reason: 'attended-transfer' });
    expect(firstStreams!.participants[0]!.identity).toMatchObject({ channelId: consultation.legB, callee: '4569', sequence: 2 });
    expect(recordOn(ari, consultation.legB)).toMatchObject({ legA: first.legA, legB: consultation.legB });
    ari.partyHangsUp(first.legB);
    await settle(20);
    await endCall(ari, first.legA);
    expect(app!.activeCalls).toBe(0);
  });

  it('the same when the REFER comes on the consultation dialog, replacing the first call’s agent', async () => {
    const { ari, streams } = await startApp();
    const first = await connectedCall(ari, '4567', '1001');
    const consultation = await connectedCall(ari, '4569', '2001');
    ari.partyRefers(consultation.legA, '4567', first.legB);
    await settle(30);
    expect(callBridge(ari).map((b) => b.channels.sort())).toEqual([[first.legA, consultation.legB].sort()]);
    expect(ari.transferStates(consultation.legA)).toEqual(['channel_progress', 'channel_answered']);
    expect(ari.channels.has(first.legB)).toBe(false);
    expect(streams.created[1]!.finishedWith).toMatch(/^merged into call/);
    expect(streams.created[0]!.finishedWith).toBeUndefined();
    await endCall(ari, first.legA);
  });
});

describe('hold', () => {
  it('tells the streams who holds; the audio goes on', async () => {
    const { ari, streams, transports } = await startApp();
    const { legB } = await connectedCall(ari);
    ari.partyHolds(legB);
    await settle();
    transports.opened[0]!.deliver(Buffer.alloc(640, 1));
    ari.partyUnholds(legB);
    await settle();
    const call = streams.created[0]!;
    expect(call.events).toEqual([
      { event: 'hold', by: 'CALLER2' },
      { event: 'unhold', by: 'CALLER2' },
    ]);
    expect(call.silentFrames.A).toBe(0);
  });

  it('PAUSE_ON_HOLD: silence while any party holds, paused and resumed events, the record knows', async () => {
    const { ari, streams, transports } = await startApp({ PAUSE_ON_HOLD: 'yes' });
    const { legA, legB } = await connectedCall(ari);
    const call = streams.created[0]!;
    ari.partyHolds(legA);
    await settle();
    expect(recordOn(ari, legA)?.onHold).toEqual(['A']);
    ari.partyHolds(legB);
    ari.partyUnholds(legA);
    await settle();
    transports.opened[0]!.deliver(Buffer.alloc(640, 1));
    transports.opened[1]!.deliver(Buffer.alloc(640, 1));
    expect(call.silentFrames).toEqual({ A: 1, B: 1 });
    ari.partyUnholds(legB);
    await settle();
    // What the phone sent just before its unhold is still on its way: silent too.
    transports.opened[1]!.deliver(Buffer.alloc(640, 1));
    expect(call.silentFrames.B).toBe(2);
    expect(call.events.at(-1)).toEqual({ event: 'unhold', by: 'CALLER2' });
    later(HOLD_RESUME_DELAY_MS);
    transports.opened[1]!.deliver(Buffer.alloc(640, 1));
    expect(call.silentFrames.B).toBe(2);
    expect(call.frames.B).toBe(3);
    expect(call.events.map((e) => `${String(e.event)}:${String(e.by ?? e.reason)}`)).toEqual([
      'hold:CALLER1',
      'paused:hold',
      'hold:CALLER2',
      'unhold:CALLER1',
      'unhold:CALLER2',
      'resumed:hold',
    ]);
  });

  it('PAUSE_ON_HOLD: a hold again before the resume delay has passed keeps the pause, with no resumed between', async () => {
    const { ari, streams, transports } = await startApp({ PAUSE_ON_HOLD: 'yes' });
    const { legB } = await connectedCall(ari);
    ari.partyHolds(legB);
    ari.partyUnholds(legB);
    ari.partyHolds(legB);
    await settle();
    later(HOLD_RESUME_DELAY_MS);
    transports.opened[0]!.deliver(Buffer.alloc(640, 1));
    expect(streams.created[0]!.silentFrames.A).toBe(1);
    expect(streams.created[0]!.events.map((e) => e.event)).toEqual(['hold', 'paused', 'unhold', 'hold']);
  });

  it('an operator’s pause outlasts a hold, and a hold outlasts an operator’s resume', async () => {
    const { ari, streams, transports } = await startApp({ PAUSE_ON_HOLD: 'yes' });
    const { legB } = await connectedCall(ari);
    const session = app!.calls[0]!;
    ari.partyHolds(legB);
    await settle();
    session.pause('api');
    ari.partyUnholds(legB);
    await settle();
    transports.opened[1]!.deliver(Buffer.alloc(640, 1));
    expect(streams.created[0]!.silentFrames.B).toBe(1);
    session.resume('api');
    later(HOLD_RESUME_DELAY_MS);
    transports.opened[1]!.deliver(Buffer.alloc(640, 1));
    expect(streams.created[0]!.silentFrames.B).toBe(1);
    expect(streams.created[0]!.events.map((e) => e.event)).toEqual(['hold', 'paused', 'unhold', 'resumed']);
  });
});

describe('adoption after a transfer', () => {
  const CALL_ID = '0b0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55';

  it('finds the legs from the record even when neither is the channel the call began with', async () => {
    const ari = new FakeAri();
    // A caller-side attended transfer left two channels of ours in the bridge.
    const legA = `leg-b-${CALL_ID.replace('0b0e', '1111')}`;
    const legB = `leg-b-${CALL_ID.replace('0b0e', '2222')}`;
    const record = encodeCallRecord({
      version: 1,
      callId: CALL_ID,
      state: 'answered',
      args: ['number=4567'],
      legA,
      legB,
      callee: '4567',
      caller: '4569',
      sequences: [2, 1],
      labels: ['CALLER1', 'CALLER2'],
      answeredAt: Date.now() - 5000,
    });
    ari.seedChannel(legA, { variables: { [CALL_RECORD_VARIABLE]: record } });
    ari.seedChannel(legB, { variables: { [CALL_RECORD_VARIABLE]: record } });
    ari.seedBridge(`call-${CALL_ID}`, [legB, legA]);
    const streams = new FakeStreams();
    app = new StasisApp({
      ari,
      config: configWith(),
      logger,
      transports: new FakeTransports(),
      createStreams: streams.factory,
      reconcileIntervalMs: 3_600_000,
    });
    await app.start();
    await settle(20);
    expect(app.activeCalls).toBe(1);
    expect(ari.ops('hangup')).toEqual([]);
    const [a, b] = streams.created[0]!.identities;
    expect([a.channelId, a.caller, a.sequence, b.channelId, b.sequence]).toEqual([legA, '4569', 2, legB, undefined]);
  });
});

/** A party keys `digits` on its phone, one ARI ChannelDtmfReceived each. */
async function keys(ari: FakeAri, channelId: string, digits: string): Promise<void> {
  for (const digit of digits) {
    ari.pressDigit(channelId, digit);
    await settle(2);
  }
  await settle();
}

describe('blind transfer by the feature code (BLIND_TRANSFER_CODE)', () => {
  it('## 4568 # by the agent: the same transfer as a REFER, no sipfrag, the agent hung up at once, no digit of it streamed', async () => {
    const { ari, streams, transports } = await startApp({ STREAM_DTMF: 'yes' });
    const { legA, legB } = await connectedCall(ari);
    await keys(ari, legB, '1##');
    // "Transfer" to the agent alone, stopped by its first digit.
    const prompt = ari.ops('play').at(-1)!.args;
    expect(prompt).toMatchObject({ channelId: legB, media: 'sound:pbx-transfer' });
    expect(ari.ops('stopPlayback')).toEqual([]);
    await keys(ari, legB, '4568#');
    expect(ari.ops('stopPlayback').map((r) => r.args.playbackId)).toEqual([prompt.playbackId]);
    const target = lastCreated(ari);
    expect(target.endpoint).toBe('PJSIP/transcription-proxy-out/sip:4568@127.0.0.1:5070');
    expect(target.channelId).toMatch(/^leg-b-/);
    expect(target.originator).toBe(legA);
    const targetId = target.channelId as string;
    ari.calleeRings(targetId);
    await settle();
    expect(ari.ops('ring').map((r) => r.args.channelId)).toContain(legA);
    ari.calleeAnswers(targetId);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, targetId].sort());
    expect(ari.ops('transferProgress')).toEqual([]);
    expect(ari.channels.has(legB), 'the agent hung up without a grace period').toBe(false);
    const call = streams.created[0]!;
    transports.opened[2]!.deliver(Buffer.alloc(640));
    expect(call.participants).toHaveLength(1);
    expect(call.participants[0]).toMatchObject({ leg: 'B', reason: 'transfer' });
    expect(call.participants[0]!.identity).toMatchObject({ label: 'CALLER2', channelId: targetId, callee: '4568', sequence: 2 });
    expect(call.digits, 'only the digit before the code').toEqual(['1']);
    expect(app!.activeCalls).toBe(1);
    await endCall(ari, legA);
  });

  it('by the caller, the number ended by the digit timeout; a # that began no code is streamed late, in order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const { ari, streams } = await startApp({ STREAM_DTMF: 'yes', TRANSFER_DIGIT_TIMEOUT_MS: '3000' });
    const { legA, legB } = await connectedCall(ari);
    const created = ari.ops('createChannel').length;
    await keys(ari, legA, '#5');
    await keys(ari, legA, '#');
    await vi.advanceTimersByTimeAsync(2000);
    expect(streams.created[0]!.digits).toEqual(['#', '5', '#']);
    await keys(ari, legA, '##45');
    await vi.advanceTimersByTimeAsync(2900);
    expect(ari.ops('createChannel')).toHaveLength(created);
    await vi.advanceTimersByTimeAsync(100);
    await settle();
    vi.useRealTimers();
    const target = lastCreated(ari);
    expect(target.endpoint).toBe('PJSIP/transcription-proxy-out/sip:45@127.0.0.1:5070');
    expect(target.channelId).toMatch(/^leg-a-/);
    expect(target.originator).toBe(legB);
    ari.calleeAnswers(target.channelId as string);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([target.channelId as string, legB].sort());
    expect(ari.channels.has(legA)).toBe(false);
    expect(streams.created[0]!.digits).toEqual(['#', '5', '#']);
    await endCall(ari, legB);
  });

  it('a busy target leaves the call as it was; the code works again after; while paused it still works and streams nothing', async () => {
    const { ari, streams } = await startApp({ STREAM_DTMF: 'yes' });
    const { legA, legB } = await connectedCall(ari);
    await keys(ari, legB, '##4570#');
    const busy = lastCreated(ari).channelId as string;
    ari.partyHangsUp(busy, 17);
    await settle(20);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, legB].sort());
    expect(streams.created[0]!.participants).toEqual([]);
    expect(ari.ops('transferProgress')).toEqual([]);
    await keys(ari, legB, '*81');
    expect(streams.created[0]!.events.map((e) => e.event)).toEqual(['paused']);
    await keys(ari, legB, '##4568#');
    const target = lastCreated(ari).channelId as string;
    expect(target).not.toBe(busy);
    ari.calleeAnswers(target);
    await settle(30);
    expect(callBridge(ari)[0]!.channels.sort()).toEqual([legA, target].sort());
    // The pause code's first digits go out before it pauses (docs/operations.md); nothing after.
    expect(streams.created[0]!.digits).toEqual(['*', '8']);
    await endCall(ari, legA);
  });

  it('empty: the digits are ordinary DTMF, streamed, and nothing is dialled', async () => {
    const { ari, streams } = await startApp({ STREAM_DTMF: 'yes', BLIND_TRANSFER_CODE: '' });
    const { legA, legB } = await connectedCall(ari);
    const created = ari.ops('createChannel').length;
    await keys(ari, legB, '##4568#');
    expect(ari.ops('createChannel')).toHaveLength(created);
    expect(streams.created[0]!.digits).toEqual([...'##4568#']);
    await endCall(ari, legA);
    expect(ari.channels.has(legB)).toBe(false);
  });

  it('the call ending while the number is keyed leaves nothing behind', async () => {
    const { ari } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    await keys(ari, legB, '##45');
    await endCall(ari, legA);
  });
});
