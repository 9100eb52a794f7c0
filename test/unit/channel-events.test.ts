import { afterEach, describe, expect, it, vi } from 'vitest';
import type { AriChannel, AriEvent } from '../../app/ari/ari-port.js';
import { ChannelEvents, eventChannelId } from '../../app/calls/channel-events.js';

function channel(id: string): AriChannel {
  return {
    id,
    name: `PJSIP/${id}`,
    state: 'Up',
    caller: { name: '', number: '1001' },
    connected: { name: '', number: '1002' },
    dialplan: { context: 'from-internal', exten: '1002', priority: 1 },
  };
}

const stasisStart = (id: string): AriEvent => ({ type: 'StasisStart', channel: channel(id), args: [] });
const stateChange = (id: string): AriEvent => ({ type: 'ChannelStateChange', channel: channel(id) });
const destroyed = (id: string): AriEvent => ({ type: 'ChannelDestroyed', channel: channel(id), cause: 16, cause_txt: 'Normal Clearing' });
const dial = (peerId: string, callerId: string): AriEvent => ({
  type: 'Dial',
  peer: channel(peerId),
  caller: channel(callerId),
  dialstatus: 'RINGING',
});

/** Settles `promise` into a value we can inspect without awaiting it forever. */
function track<T>(promise: Promise<T>): { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } {
  const tracked: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(tracked, { state: 'resolved', value }),
    (error: unknown) => Object.assign(tracked, { state: 'rejected', error }),
  );
  return tracked;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ChannelEvents', () => {
  it('routes a channel’s events to its owner only', () => {
    const events = new ChannelEvents();
    const seenA: AriEvent[] = [];
    const seenB: AriEvent[] = [];
    events.own('chan-a', (event) => seenA.push(event));
    events.own('chan-b', (event) => seenB.push(event));

    const forA = stasisStart('chan-a');
    const forB = destroyed('chan-b');
    expect(events.route(forA)).toBe(true);
    expect(events.route(forB)).toBe(true);
    expect(seenA).toEqual([forA]);
    expect(seenA[0]).toBe(forA);
    expect(seenB).toEqual([forB]);
    expect(events.isOwned('chan-a')).toBe(true);
  });

  it('returns false for an event of a channel no one owns or waits for', () => {
    const events = new ChannelEvents();
    events.own('chan-a', () => undefined);
    expect(events.route(stasisStart('chan-x'))).toBe(false);
    expect(events.isOwned('chan-x')).toBe(false);
  });

  it('expect() resolves with the first event of the matching type routed after it', async () => {
    const events = new ChannelEvents();
    const waiting = events.expect('chan-a', 'StasisStart', 5000);
    expect(events.isOwned('chan-a')).toBe(true);

    expect(events.route(stateChange('chan-a'))).toBe(false); // other type: not for this wait
    expect(events.route(stasisStart('chan-b'))).toBe(false); // other channel
    const wanted = stasisStart('chan-a');
    expect(events.route(wanted)).toBe(true);
    expect(await waiting).toBe(wanted);

    // the wait is used up
    expect(events.isOwned('chan-a')).toBe(false);
    expect(events.route(stasisStart('chan-a'))).toBe(false);
  });

  it('resolves every wait for the same channel and type with one event, and leaves other types waiting', async () => {
    const events = new ChannelEvents();
    const first = events.expect('chan-a', 'ChannelStateChange', 5000);
    const second = events.expect('chan-a', 'ChannelStateChange', 5000);
    const other = track(events.expect('chan-a', 'ChannelDestroyed', 5000));
    const change = stateChange('chan-a');
    expect(events.route(change)).toBe(true);
    expect(await first).toBe(change);
    expect(await second).toBe(change);
    await Promise.resolve();
    expect(other.state).toBe('pending');
    expect(events.isOwned('chan-a')).toBe(true);
    const end = destroyed('chan-a');
    expect(events.route(end)).toBe(true);
    await Promise.resolve();
    expect(other).toMatchObject({ state: 'resolved', value: end });
  });

  it('delivers one event to both a wait and the owner', async () => {
    const events = new ChannelEvents();
    const seen: AriEvent[] = [];
    events.own('chan-a', (event) => seen.push(event));
    const waiting = events.expect('chan-a', 'StasisStart', 5000);
    const start = stasisStart('chan-a');
    expect(events.route(start)).toBe(true);
    expect(await waiting).toBe(start);
    expect(seen).toEqual([start]);
  });

  it('rejects a wait when nothing arrives within timeoutMs, and forgets it', async () => {
    const events = new ChannelEvents();
    await expect(events.expect('chan-a', 'StasisStart', 20)).rejects.toBeInstanceOf(Error);
    expect(events.isOwned('chan-a')).toBe(false);
    expect(events.route(stasisStart('chan-a'))).toBe(false);
  });

  it('does not time out before timeoutMs', async () => {
    vi.useFakeTimers();
    const events = new ChannelEvents();
    const waiting = track(events.expect('chan-a', 'StasisStart', 1000));
    await vi.advanceTimersByTimeAsync(999);
    expect(waiting.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(waiting.state).toBe('rejected');
    expect(waiting.error).toBeInstanceOf(Error);
  });

  it('does not reject a wait that was resolved, when its timeout would have passed', async () => {
    vi.useFakeTimers();
    const events = new ChannelEvents();
    const waiting = track(events.expect('chan-a', 'StasisStart', 100));
    const start = stasisStart('chan-a');
    events.route(start);
    await vi.advanceTimersByTimeAsync(500);
    expect(waiting).toMatchObject({ state: 'resolved', value: start });
    expect(vi.getTimerCount()).toBe(0);
  });

  it('cancel() rejects every pending wait of the channel and leaves others alone', async () => {
    const events = new ChannelEvents();
    const start = events.expect('chan-a', 'StasisStart', 5000);
    const end = events.expect('chan-a', 'ChannelDestroyed', 5000);
    const elsewhere = track(events.expect('chan-b', 'StasisStart', 5000));
    events.cancel('chan-a');
    await expect(start).rejects.toBeInstanceOf(Error);
    await expect(end).rejects.toBeInstanceOf(Error);
    expect(events.isOwned('chan-a')).toBe(false);
    expect(events.route(stasisStart('chan-a'))).toBe(false);

    expect(elsewhere.state).toBe('pending');
    const forB = stasisStart('chan-b');
    expect(events.route(forB)).toBe(true);
    await Promise.resolve();
    expect(elsewhere).toMatchObject({ state: 'resolved', value: forB });
  });

  it('cancel() clears the timers of the waits it rejects', async () => {
    vi.useFakeTimers();
    const events = new ChannelEvents();
    const waiting = track(events.expect('chan-a', 'StasisStart', 100));
    events.cancel('chan-a');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect(waiting.state).toBe('rejected');
  });

  it('cancel() does not release the owner', () => {
    const events = new ChannelEvents();
    const seen: AriEvent[] = [];
    events.own('chan-a', (event) => seen.push(event));
    events.cancel('chan-a');
    expect(events.route(destroyed('chan-a'))).toBe(true);
    expect(seen).toHaveLength(1);
  });

  it('stops delivering to an owner once it is released', () => {
    const events = new ChannelEvents();
    const seen: AriEvent[] = [];
    const release = events.own('chan-a', (event) => seen.push(event));
    expect(events.route(stasisStart('chan-a'))).toBe(true);
    release();
    expect(events.isOwned('chan-a')).toBe(false);
    expect(events.route(destroyed('chan-a'))).toBe(false);
    expect(seen).toHaveLength(1);
    release(); // twice is harmless
    expect(events.isOwned('chan-a')).toBe(false);
  });

  it('a stale release does not remove a newer owner of the same channel', () => {
    const events = new ChannelEvents();
    const first: AriEvent[] = [];
    const second: AriEvent[] = [];
    const releaseFirst = events.own('chan-a', (event) => first.push(event));
    events.own('chan-a', (event) => second.push(event));
    releaseFirst();
    expect(events.route(stasisStart('chan-a'))).toBe(true);
    expect(first).toHaveLength(0);
    expect(second).toHaveLength(1);
  });

  it('routes Dial events by the dialled peer, not the caller', async () => {
    const events = new ChannelEvents();
    const peerSeen: AriEvent[] = [];
    const callerSeen: AriEvent[] = [];
    events.own('peer-1', (event) => peerSeen.push(event));
    events.own('caller-1', (event) => callerSeen.push(event));
    const event = dial('peer-1', 'caller-1');
    expect(eventChannelId(event)).toBe('peer-1');
    expect(events.route(event)).toBe(true);
    expect(peerSeen).toEqual([event]);
    expect(callerSeen).toEqual([]);

    const waiting = events.expect('peer-2', 'Dial', 5000);
    const second = dial('peer-2', 'caller-1');
    expect(events.route(second)).toBe(true);
    expect(await waiting).toBe(second);
    expect(callerSeen).toEqual([]);
  });

  it('eventChannelId is the channel id for non-Dial events', () => {
    expect(eventChannelId(stasisStart('chan-a'))).toBe('chan-a');
    expect(eventChannelId(destroyed('chan-b'))).toBe('chan-b');
  });
});
