/**
 * The call flow without Asterisk: StasisApp, CallSession and LegTap driven
 * through an in-memory AriPort (test/support/fake-ari.ts) through a call's
 * life, adoption of calls another instance left, drain, replacement and
 * reconciliation. What Asterisk really does is proven end to end; this pins
 * the state machines, in milliseconds.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CALL_RECORD_VARIABLE, decodeCallRecord, encodeCallRecord } from '../../app/calls/call-record.js';
import { FALLBACK_VARIABLE } from '../../app/calls/call-session.js';
import { StasisApp } from '../../app/calls/stasis-app.js';
import { loadConfig } from '../../app/config/load-config.js';
import { FakeAri, FakeStreams, FakeTransports, settle } from '../support/fake-ari.js';

const CALL_ID = '0b0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55';
const logger = pino({ level: 'silent' });
const config = loadConfig({
  env: { ARI_PASSWORD: 'x', DESTINATION_DOMAIN: '127.0.0.1:5070', NODE_NAME: 'cell-1' },
  cwd: '/nonexistent',
}).config;

let app: StasisApp | undefined;
afterEach(async () => {
  await app?.stop();
  app = undefined;
});

async function startApp(ari = new FakeAri()) {
  const streams = new FakeStreams();
  const transports = new FakeTransports();
  app = new StasisApp({ ari, config, logger, transports, createStreams: streams.factory, reconcileIntervalMs: 3_600_000 });
  await app.start();
  return { ari, app, streams, transports };
}

const legBOf = (ari: FakeAri) => ari.ops('createChannel')[0]?.args.channelId as string;

/** A caller enters, B rings and answers; returns once both legs are tapped. */
async function connectedCall(ari: FakeAri) {
  const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
  await settle();
  const legB = legBOf(ari);
  ari.calleeRings(legB);
  ari.calleeAnswers(legB);
  await settle(20);
  return { legA: legA.id, legB };
}

describe('a call through the app', () => {
  it('dials B, bridges both legs once B answers, taps each, and records what a new instance needs', async () => {
    const { ari, streams, transports } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const bridge = [...ari.bridges.values()].find((b) => b.id.startsWith('call-'))!;
    expect(bridge.channels.sort()).toEqual([legA, legB].sort());
    expect(bridge.name).toBe(ari.app);
    expect(
      ari
        .ops('snoop')
        .map((r) => r.args.channelId)
        .sort(),
    ).toEqual([legA, legB].sort());
    expect(transports.opened).toHaveLength(2);
    expect(streams.created).toHaveLength(1);
    expect(streams.created[0]!.resumedAtMs).toBeUndefined();
    expect(streams.created[0]!.identities.map((i) => [i.label, i.leg, i.node])).toEqual([
      ['CALLER1', 'A', 'cell-1'],
      ['CALLER2', 'B', 'cell-1'],
    ]);
    const record = decodeCallRecord(ari.channels.get(legA)!.variables.get(CALL_RECORD_VARIABLE));
    expect(record).toMatchObject({
      state: 'answered',
      legB,
      callee: '4567',
      direction: 'inbound',
      transport: 'rtp',
      labels: ['CALLER1', 'CALLER2'],
    });
    expect(record!.callId).toBe(streams.created[0]!.identities[0].callId);
    expect(record!.answeredAt).toBeGreaterThan(0);

    transports.opened[0]!.deliver(Buffer.alloc(640));
    transports.opened[1]!.deliver(Buffer.alloc(640));
    expect(streams.created[0]!.frames).toEqual({ A: 1, B: 1 });

    ari.partyHangsUp(legA);
    await settle(20);
    expect(ari.channels.size, [...ari.channels.keys()].join()).toBe(0);
    expect(ari.bridges.size).toBe(0);
    expect(streams.created[0]!.finishedWith).toBe('caller hung up');
    expect(app!.activeCalls).toBe(0);
  });
});

/** Answers of a channel (leg A) wait until the returned function is called: a slow Asterisk. */
function holdAnswers(ari: FakeAri): () => void {
  let release!: () => void;
  const answering = new Promise<void>((resolve) => (release = resolve));
  const answer = ari.answer.bind(ari);
  ari.answer = async (channelId) => {
    await answering;
    await answer(channelId);
  };
  return release;
}

describe('taps built while B rings', () => {
  const tapChannels = (ari: FakeAri) => [...ari.channels.keys()].filter((id) => id.startsWith('snoop-') || id.startsWith('media-'));
  const tapBridges = (ari: FakeAri) => [...ari.bridges.keys()].filter((id) => id.startsWith('tap-'));

  it('taps both legs before the answer, streams nothing until it, and taps no leg twice', async () => {
    const { ari, streams, transports } = await startApp();
    const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    const legB = legBOf(ari);
    ari.calleeRings(legB);
    await settle(20);
    // Both snoops, both media channels and both tap bridges exist while B rings.
    expect(
      ari
        .ops('snoop')
        .map((r) => r.args.channelId)
        .sort(),
    ).toEqual([legA.id, legB].sort());
    expect(tapChannels(ari)).toHaveLength(4);
    expect(tapBridges(ari)).toHaveLength(2);
    for (const bridge of tapBridges(ari)) expect(ari.bridges.get(bridge)!.channels).toHaveLength(2);
    expect(streams.created).toHaveLength(0);
    // What a leg sends before the answer (an already answered caller, early media) is not streamed.
    transports.opened[0]!.deliver(Buffer.alloc(640));

    ari.calleeAnswers(legB);
    await settle(20);
    expect(streams.created).toHaveLength(1);
    expect(streams.created[0]!.opened).toBe(true);
    expect(ari.ops('snoop')).toHaveLength(2);
    expect(transports.opened).toHaveLength(2);
    transports.opened[0]!.deliver(Buffer.alloc(640));
    transports.opened[1]!.deliver(Buffer.alloc(640));
    expect(streams.created[0]!.frames).toEqual({ A: 1, B: 1 });
  });

  it('does not replace a silent tap while the answer is still answering A and bridging the legs', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const ari = new FakeAri();
      const { transports } = await startApp(ari);
      const release = holdAnswers(ari);
      ari.callerEnters({ number: '1001', args: ['number=4567'] });
      await settle();
      const legB = legBOf(ari);
      ari.calleeRings(legB);
      ari.calleeAnswers(legB);
      await settle(20);
      // Answering A takes 5 s (a loaded Asterisk): no tap is replaced meanwhile.
      await vi.advanceTimersByTimeAsync(5_000);
      await settle(20);
      expect(transports.opened).toHaveLength(2);
      release();
      await settle(20);
      await vi.advanceTimersByTimeAsync(1_000);
      await settle(20);
      // Bridged, and a second later still no frame on either leg: both are replaced.
      expect(transports.opened).toHaveLength(4);
    } finally {
      vi.useRealTimers();
    }
  });

  it('at the answer, opens the streams, makes the bridge and joins B while A is still being answered', async () => {
    const ari = new FakeAri();
    const { streams } = await startApp(ari);
    const release = holdAnswers(ari);
    const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    const legB = legBOf(ari);
    ari.calleeRings(legB);
    ari.calleeAnswers(legB);
    await settle(20);
    const bridge = [...ari.bridges.values()].find((b) => b.id.startsWith('call-'))!;
    expect(bridge.channels).toEqual([legB]);
    expect(streams.created).toHaveLength(1);
    release();
    await settle(20);
    expect(bridge.channels.sort()).toEqual([legA.id, legB].sort());
  });

  it('removes the taps of a call whose callee is busy', async () => {
    const { ari, streams } = await startApp();
    const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    const legB = legBOf(ari);
    ari.calleeRings(legB);
    await settle(20);
    expect(tapChannels(ari)).toHaveLength(4);
    ari.partyHangsUp(legB, 17);
    await settle(20);
    expect(ari.channels.has(legA.id)).toBe(false);
    expect(tapChannels(ari)).toEqual([]);
    expect(ari.bridges.size).toBe(0);
    expect(streams.created).toHaveLength(0);
    expect(app!.activeCalls).toBe(0);
  });

  it('removes the taps of a ringing call it hands back to the dialplan at the end of a drain', async () => {
    const { ari } = await startApp();
    const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    ari.calleeRings(legBOf(ari));
    await settle(20);
    expect(tapChannels(ari)).toHaveLength(4);
    await app!.stop('drain over');
    await settle(20);
    expect(ari.ops('continueInDialplan').map((r) => r.args.channelId)).toEqual([legA.id]);
    expect(tapChannels(ari)).toEqual([]);
    expect(ari.bridges.size).toBe(0);
  });

  it('does not replace a silent tap while B rings, and does once the answer finds it silent', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    try {
      const { ari, transports } = await startApp();
      ari.callerEnters({ number: '1001', args: ['number=4567'] });
      await settle();
      const legB = legBOf(ari);
      ari.calleeRings(legB);
      await settle(20);
      // A long ring without a frame (a leg that is not up sends none): nothing is replaced.
      await vi.advanceTimersByTimeAsync(10_000);
      await settle(20);
      expect(transports.opened).toHaveLength(2);

      ari.calleeAnswers(legB);
      await settle(20);
      transports.opened[1]!.deliver(Buffer.alloc(640));
      await vi.advanceTimersByTimeAsync(1_000);
      await settle(20);
      // Leg A's tap brought no first frame within its time after the answer; leg B's did.
      expect(transports.opened).toHaveLength(3);
      expect(transports.opened[0]!.closed).toBe(true);
      expect(transports.opened[1]!.closed).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('an overloaded Asterisk at the answer', () => {
  /** A caller enters and B rings (its taps built); the answer is the test's to give. */
  async function ringingCall(ari: FakeAri) {
    const legA = ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    const legB = legBOf(ari);
    ari.calleeRings(legB);
    await settle(20);
    return { legA: legA.id, legB };
  }
  const callBridge = (ari: FakeAri) => [...ari.bridges.values()].find((b) => b.id.startsWith('call-'));

  it('bridges the call although each step of the answer was answered too late once: each is asked again', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await ringingCall(ari);
    for (const op of ['createBridge', 'answer', 'addToBridge']) ari.answeringLate.set(op, 1);
    ari.calleeAnswers(legB);
    await settle(40);
    expect(callBridge(ari)?.channels.sort()).toEqual([legA, legB].sort());
    expect(ari.ops('createBridge').filter((r) => String(r.args.bridgeId).startsWith('call-'))).toHaveLength(2);
    expect(ari.ops('answer').filter((r) => r.args.channelId === legA)).toHaveLength(2);
    expect(ari.ops('hangup')).toEqual([]);
    expect(streams.created).toHaveLength(1);
    expect(streams.created[0]!.finishedWith).toBeUndefined();
    expect(app!.activeCalls).toBe(1);
  });

  it(`gives up when Asterisk answers none of three requests in time: the call ends as congestion, nothing left`, async () => {
    const { ari } = await startApp();
    const { legA } = await ringingCall(ari);
    ari.answeringLate.set('answer', 3);
    ari.calleeAnswers(legBOf(ari));
    await settle(40);
    expect(ari.ops('answer').filter((r) => r.args.channelId === legA)).toHaveLength(3);
    expect(ari.ops('hangup').map((r) => r.args.reason)).toContain('congestion');
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
    expect(app!.activeCalls).toBe(0);
  });
});

describe('drain', () => {
  it('hands new calls back to the dialplan with the fallback variable, and waits for calls in progress', async () => {
    const { ari } = await startApp();
    const { legA } = await connectedCall(ari);
    let drained = false;
    void app!.drain().then(() => {
      drained = true;
    });
    const late = ari.callerEnters({ args: ['number=4567'] });
    await settle(10);
    expect(
      ari.ops('setVariable').some((r) => r.args.channelId === late.id && r.args.name === FALLBACK_VARIABLE && r.args.value === 'draining'),
    ).toBe(true);
    expect(ari.ops('continueInDialplan').map((r) => r.args.channelId)).toEqual([late.id]);
    expect(ari.ops('createChannel')).toHaveLength(1);
    expect(drained).toBe(false);
    ari.partyHangsUp(legA);
    await settle(20);
    expect(drained).toBe(true);
  });

  it('at its end lets an answered call go on: streams closed with the reason, taps removed, the legs and bridge left up', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    const hangupsBefore = ari.ops('hangup').length;
    await app!.stop('drain over');
    expect(streams.created[0]!.finishedWith).toBe('drain over');
    const hungUp = ari
      .ops('hangup')
      .slice(hangupsBefore)
      .map((r) => r.args.channelId as string);
    expect(hungUp).not.toContain(legA);
    expect(hungUp).not.toContain(legB);
    expect([...ari.channels.keys()].sort()).toEqual([legA, legB].sort());
    expect([...ari.bridges.keys()]).toEqual([expect.stringMatching(/^call-/)]);
  });

  it('at its end hands an unanswered call back to the dialplan and hangs up its ringing leg B', async () => {
    const { ari } = await startApp();
    const legA = ari.callerEnters({ args: ['number=4567'] });
    await settle();
    const legB = legBOf(ari);
    ari.calleeRings(legB);
    await settle();
    await app!.stop('drain over');
    expect(ari.channels.has(legB)).toBe(false);
    expect(ari.ops('continueInDialplan').map((r) => r.args.channelId)).toEqual([legA.id]);
    expect(ari.channels.get(legA.id)!.variables.get(FALLBACK_VARIABLE)).toBe('draining');
  });
});

describe('replaced by another instance', () => {
  it('closes its streams and asks nothing more of Asterisk', async () => {
    const { ari, streams } = await startApp();
    await connectedCall(ari);
    const before = ari.requests.length;
    ari.replaceApp();
    await settle(20);
    await app!.stop();
    expect(streams.created[0]!.finishedWith).toBe('handed over to another instance of the service');
    expect(ari.requests.slice(before)).toEqual([]);
    expect(app!.activeCalls).toBe(0);
  });
});

describe('adoption at start', () => {
  function seedAnsweredCall(ari: FakeAri, answeredAt = Date.now() - 7000) {
    const legB = `leg-b-${CALL_ID}`;
    const record = encodeCallRecord({
      version: 1,
      callId: CALL_ID,
      state: 'answered',
      args: ['number=4567'],
      legB,
      direction: 'outbound',
      transport: 'audiosocket',
      callee: '4567',
      linkedId: '1699.1',
      labels: ['AGENT', 'CUSTOMER'],
      answeredAt,
    });
    const legA = ari.seedChannel('1699.1', { variables: { [CALL_RECORD_VARIABLE]: record } });
    ari.seedChannel(legB);
    ari.seedBridge(`call-${CALL_ID}`, [legA.id, legB]);
    // The earlier instance's taps: dead now.
    ari.seedChannel('snoop-old-a');
    ari.seedChannel('media-old-a');
    ari.seedBridge('tap-old-a', ['snoop-old-a', 'media-old-a']);
    return { legA: legA.id, legB };
  }

  /** A caller whose leg B was dialled by an instance that is gone; B is in `legBState`. */
  function seedDiallingCall(ari: FakeAri, legBState: 'Down' | 'Up') {
    const legBId = `leg-b-${CALL_ID}`;
    const record = encodeCallRecord({
      version: 1,
      callId: CALL_ID,
      state: 'dialling',
      args: ['number=4567'],
      legB: legBId,
      callee: '4567',
    });
    const legA = ari.seedChannel('1699.9', { state: 'Ring', variables: { [CALL_RECORD_VARIABLE]: record } });
    ari.seedChannel(legBId, { state: legBState });
    return { legA, legBId };
  }

  it('takes over a bridged call: same call id, labels and direction, new taps, streams resumed; the old taps go', async () => {
    const ari = new FakeAri();
    const { legA, legB } = seedAnsweredCall(ari);
    const { streams, transports } = await startApp(ari);
    await settle(20);
    expect(app!.activeCalls).toBe(1);
    expect(ari.ops('createChannel')).toEqual([]);
    expect(ari.ops('dial')).toEqual([]);
    expect(streams.created).toHaveLength(1);
    const [a, b] = streams.created[0]!.identities;
    expect([a.callId, a.label, b.label, a.direction, a.callee]).toEqual([CALL_ID, 'AGENT', 'CUSTOMER', 'outbound', '4567']);
    expect(streams.created[0]!.resumedAtMs).toBeGreaterThanOrEqual(7000);
    expect(streams.created[0]!.resumedAtMs).toBeLessThan(9000);
    expect(
      ari
        .ops('snoop')
        .map((r) => r.args.channelId)
        .sort(),
    ).toEqual([legA, legB].sort());
    expect(transports.opened).toHaveLength(2);
    const hungUp = ari.ops('hangup').map((r) => r.args.channelId);
    expect(hungUp.sort()).toEqual(['media-old-a', 'snoop-old-a']);
    expect(ari.ops('destroyBridge').map((r) => r.args.bridgeId)).toEqual(['tap-old-a']);
    expect(ari.bridges.get(`call-${CALL_ID}`)?.channels.sort()).toEqual([legA, legB].sort());
    // ... and then it is an ordinary call.
    ari.partyHangsUp(legB);
    await settle(20);
    expect(ari.channels.size).toBe(0);
    expect(ari.bridges.size).toBe(0);
  });

  it('hangs up the party left alone when the other hung up while no instance ran, and removes the bridge', async () => {
    const ari = new FakeAri();
    const legB = ari.seedChannel(`leg-b-${CALL_ID}`);
    ari.seedBridge(`call-${CALL_ID}`, [legB.id]);
    await startApp(ari);
    await settle(10);
    expect(ari.ops('hangup').map((r) => r.args.channelId)).toEqual([legB.id]);
    expect(ari.bridges.size).toBe(0);
    expect(app!.activeCalls).toBe(0);
  });

  it('routes again a caller whose call never got a leg B, with the same call id', async () => {
    const ari = new FakeAri();
    const record = encodeCallRecord({ version: 1, callId: CALL_ID, state: 'routing', args: ['number=4567'] });
    ari.seedChannel('1699.7', { state: 'Ring', variables: { [CALL_RECORD_VARIABLE]: record } });
    const { streams } = await startApp(ari);
    await settle();
    const legB = legBOf(ari);
    expect(legB).toMatch(/^leg-b-/);
    ari.calleeAnswers(legB);
    await settle(20);
    expect(streams.created[0]!.identities[0].callId).toBe(CALL_ID);
    expect(streams.created[0]!.resumedAtMs).toBeUndefined();
  });

  it('routes a caller left in the app with no record at all, from the Stasis arguments of its dialplan', async () => {
    const ari = new FakeAri();
    ari.seedChannel('1699.8', { state: 'Ring', appData: `${ari.app},number=7777` });
    await startApp(ari);
    await settle();
    expect(ari.ops('createChannel')[0]?.args.endpoint).toContain('sip:7777@');
  });

  it('bridges a call whose leg B answered while no instance ran', async () => {
    const ari = new FakeAri();
    const { legA, legBId } = seedDiallingCall(ari, 'Up');
    const { streams } = await startApp(ari);
    await settle(20);
    expect(ari.bridges.get(`call-${CALL_ID}`)?.channels.sort()).toEqual([legA.id, legBId].sort());
    expect(ari.ops('answer').map((r) => r.args.channelId)).toEqual([legA.id]);
    expect(streams.created).toHaveLength(1);
  });

  it('writes the dialling record before it dials B, so a crash while B rings leaves a call to adopt, not to route again', async () => {
    const { ari } = await startApp();
    ari.callerEnters({ number: '1001', args: ['number=4567'] });
    await settle();
    const dialAt = ari.requests.findIndex((r) => r.op === 'dial');
    const recordAt = ari.requests.findIndex(
      (r) => r.op === 'setVariable' && r.args.name === CALL_RECORD_VARIABLE && decodeCallRecord(String(r.args.value))?.state === 'dialling',
    );
    expect(dialAt).toBeGreaterThan(0);
    expect(recordAt).toBeGreaterThanOrEqual(0);
    expect(recordAt).toBeLessThan(dialAt);
  });

  it('ends an adopted call whose leg B was never dialled once DIAL_TIMEOUT_MS has passed', async () => {
    const ari = new FakeAri();
    const { legA, legBId } = seedDiallingCall(ari, 'Down');
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      await startApp(ari);
      await vi.advanceTimersByTimeAsync(config.DIAL_TIMEOUT_MS - 100);
      expect(app!.activeCalls).toBe(1);
      await vi.advanceTimersByTimeAsync(200);
    } finally {
      vi.useRealTimers();
    }
    await settle(20);
    expect(app!.activeCalls).toBe(0);
    expect(
      ari
        .ops('hangup')
        .map((r) => r.args.channelId)
        .sort(),
    ).toEqual([legA.id, legBId].sort());
    expect(ari.ops('dial')).toEqual([]);
  });

  it('leaves alone what belongs to another app or tenant on the same Asterisk', async () => {
    const ari = new FakeAri();
    ari.seedChannel('leg-b-other', { inApp: false });
    ari.seedChannel('1699.10', { inApp: false });
    ari.seedBridge('call-other', ['1699.10', 'leg-b-other'], 'other-app');
    ari.seedBridge('tap-other', [], 'other-app');
    await startApp(ari);
    await settle(10);
    expect(ari.ops('hangup')).toEqual([]);
    expect(ari.ops('destroyBridge')).toEqual([]);
    expect(app!.activeCalls).toBe(0);
  });

  it('hangs up a leftover snoop whose StasisStart no call expects', async () => {
    const { ari } = await startApp();
    const stray = ari.seedChannel('snoop-stray', { inApp: false });
    await ari.snoop({ channelId: stray.id, snoopId: 'snoop-late', spy: 'in', appArgs: 'tap' });
    await settle(10);
    expect(ari.ops('hangup').map((r) => r.args.channelId)).toEqual(['snoop-late']);
  });
});

describe('reconciliation after an ARI outage', () => {
  it('ends a call whose caller vanished during the outage, hanging up leg B', async () => {
    const { ari, streams } = await startApp();
    const { legA, legB } = await connectedCall(ari);
    ari.dropConnection();
    ari.vanish(legA);
    ari.restoreConnection();
    await settle(30);
    expect(ari.channels.has(legB)).toBe(false);
    expect(streams.created[0]!.finishedWith).toBe('caller gone from Asterisk while ARI was disconnected');
    expect(app!.activeCalls).toBe(0);
  });

  it('keeps calls going when Asterisk cannot be listed, and tries again later', async () => {
    const { ari } = await startApp();
    await connectedCall(ari);
    ari.failing.set('listChannels', new Error('ARI channels.list failed: socket hang up'));
    await app!.reconcile('test');
    expect(app!.activeCalls).toBe(1);
    ari.failing.clear();
  });
});
