/**
 * The call record on leg A: what one instance writes, another reads back
 * whole, and anything malformed (or written by someone else) counts as no
 * record at all, never as half of one.
 */
import { describe, expect, it } from 'vitest';
import { decodeCallRecord, encodeCallRecord, type CallRecord } from '../../app/calls/call-record.js';
import { planReconcile, recordsToRead, stasisArgsOf } from '../../app/calls/reconcile-plan.js';
import type { AriChannel } from '../../app/ari/ari-port.js';

const full: CallRecord = {
  version: 1,
  callId: '0b0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55',
  state: 'answered',
  args: ['number=4567', 'rules=sales'],
  legB: 'leg-b-1f0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55',
  direction: 'inbound',
  transport: 'websocket',
  callee: '4567',
  linkedId: '1700000000.12',
  labels: ['CALLER1', 'CALLER2'],
  answeredAt: 1_764_000_000_000,
};

describe('call record', () => {
  it('round-trips every field', () => {
    expect(decodeCallRecord(encodeCallRecord(full))).toEqual(full);
    const transferred: CallRecord = { ...full, legA: 'leg-a-x', caller: '4568', sequences: [2, 1], onHold: ['B'] };
    expect(decodeCallRecord(encodeCallRecord(transferred))).toEqual(transferred);
    const minimal: CallRecord = { version: 1, callId: full.callId, state: 'routing', args: [] };
    expect(decodeCallRecord(encodeCallRecord(minimal))).toEqual(minimal);
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['not JSON', '{"version":1,'],
    ['an array', '[]'],
    ['another version', JSON.stringify({ ...full, version: 2 })],
    ['a call id that is not a UUID', JSON.stringify({ ...full, callId: 'x;y' })],
    ['an unknown state', JSON.stringify({ ...full, state: 'held' })],
    ['args that are not strings', JSON.stringify({ ...full, args: [1] })],
    ['a leg B id with a separator in it', JSON.stringify({ ...full, legB: 'leg-b-1,PJSIP/x' })],
    ['an unknown transport', JSON.stringify({ ...full, transport: 'carrier-pigeon' })],
    ['labels that are not labels', JSON.stringify({ ...full, labels: ['CALLER1', 'a b'] })],
    ['three labels', JSON.stringify({ ...full, labels: ['A', 'B', 'C'] })],
    ['a negative answer time', JSON.stringify({ ...full, answeredAt: -5 })],
    ['an oversized value', JSON.stringify({ ...full, callee: 'x'.repeat(5000) })],
    ['a leg A id with a separator in it', JSON.stringify({ ...full, legA: 'a b' })],
    ['three sequences', JSON.stringify({ ...full, sequences: [1, 2, 3] })],
    ['a sequence of 0', JSON.stringify({ ...full, sequences: [0, 1] })],
    ['a hold by an unknown leg', JSON.stringify({ ...full, onHold: ['C'] })],
  ])('is no record when %s', (_what, text) => {
    expect(decodeCallRecord(text)).toBeUndefined();
  });
});

const channel = (id: string, appData = 'transcription-proxy'): AriChannel => ({
  id,
  name: `PJSIP/${id}`,
  state: 'Up',
  caller: { name: '', number: '1001' },
  connected: { name: '', number: '' },
  dialplan: { context: 'c', exten: 's', priority: 1, app_name: 'Stasis', app_data: appData },
});

describe('reconcile plan', () => {
  const none = { channels: new Set<string>(), bridges: new Set<string>() };

  it('reads records only of callers nobody owns', () => {
    const view = { channels: [], bridges: [], appChannelIds: new Set(['1.1', '1.2', 'snoop-x', 'leg-b-y']) };
    expect(recordsToRead(view, { channels: new Set(['1.2']), bridges: new Set() }, 'transcription-proxy')).toEqual(['1.1']);
  });

  it('takes the Stasis arguments from the dialplan application data', () => {
    expect(stasisArgsOf(channel('1.1', 'transcription-proxy,number=4567,rules=sales'))).toEqual(['number=4567', 'rules=sales']);
    expect(
      stasisArgsOf({ ...channel('1.1'), dialplan: { context: 'c', exten: 's', priority: 1, app_name: 'Dial', app_data: 'PJSIP/x' } }),
    ).toEqual([]);
  });

  it('adopts a bridged call, hangs up a lone party, routes a lone caller, removes what nobody claims', () => {
    const view = {
      channels: [channel('1.1'), channel('leg-b-1'), channel('1.2'), channel('1.3'), channel('snoop-old'), channel('leg-b-stray')],
      appChannelIds: new Set(['1.1', 'leg-b-1', '1.2', '1.3', 'snoop-old', 'leg-b-stray']),
      bridges: [
        { id: 'call-a', name: 'transcription-proxy', channels: ['1.1', 'leg-b-1'] },
        { id: 'call-b', name: 'transcription-proxy', channels: ['1.2'] },
        { id: 'call-gone', name: 'call-gone', channels: [] },
        { id: 'tap-old', name: 'transcription-proxy', channels: ['snoop-old'] },
        { id: 'tap-theirs', name: 'another-app', channels: [] },
      ],
    };
    const actions = planReconcile(view, new Map(), none, 'transcription-proxy');
    expect(
      actions.map((a) => [
        a.kind,
        'legA' in a ? a.legA.id : 'channelId' in a ? a.channelId : a.kind === 'destroy-bridge' ? a.bridgeId : '',
      ]),
    ).toEqual([
      ['adopt-bridged', '1.1'],
      ['hang-up', '1.2'],
      ['destroy-bridge', 'call-b'],
      ['destroy-bridge', 'call-gone'],
      ['route', '1.3'],
      ['remove-channel', 'snoop-old'],
      ['remove-channel', 'leg-b-stray'],
      ['destroy-bridge', 'tap-old'],
    ]);
  });

  it('reads the records of the members of call bridges nobody owns, whatever their ids', () => {
    const view = {
      channels: [],
      bridges: [{ id: 'call-a', name: 'transcription-proxy', channels: ['leg-b-1', 'leg-b-2'] }],
      appChannelIds: new Set(['leg-b-1', 'leg-b-2', '1.1']),
    };
    expect(recordsToRead(view, none, 'transcription-proxy').sort()).toEqual(['1.1', 'leg-b-1', 'leg-b-2']);
  });

  it('takes the legs of a bridged call from the record on them after a transfer changed them', () => {
    // A caller-side transfer: leg A is a target of ours (leg-a-), and an attended one can leave two leg-b- channels.
    const record: CallRecord = { ...full, legA: 'leg-b-consulted', legB: 'leg-b-1' };
    const view = {
      channels: [channel('leg-b-1'), channel('leg-b-consulted'), channel('leg-a-x'), channel('leg-b-2')],
      appChannelIds: new Set(['leg-b-1', 'leg-b-consulted', 'leg-a-x', 'leg-b-2']),
      bridges: [
        { id: 'call-a', name: 'transcription-proxy', channels: ['leg-b-1', 'leg-b-consulted'] },
        { id: 'call-b', name: 'transcription-proxy', channels: ['leg-b-2', 'leg-a-x'] },
      ],
    };
    const actions = planReconcile(view, new Map([['leg-b-1', record]]), none, 'transcription-proxy');
    expect(actions.map((a) => ('legA' in a && 'legB' in a ? [a.kind, a.legA.id, a.legB.id] : [a.kind]))).toEqual([
      ['adopt-bridged', 'leg-b-consulted', 'leg-b-1'],
      // No record: leg B is the leg-b- channel, leg A the other.
      ['adopt-bridged', 'leg-a-x', 'leg-b-2'],
    ]);
  });

  it('removes a transfer target left ringing outside any call bridge', () => {
    const view = { channels: [channel('leg-a-x')], appChannelIds: new Set(['leg-a-x']), bridges: [] };
    expect(planReconcile(view, new Map(), none, 'transcription-proxy')).toEqual([{ kind: 'remove-channel', channelId: 'leg-a-x' }]);
  });

  it('spares everything a live call owns', () => {
    const view = {
      channels: [channel('1.1'), channel('leg-b-1'), channel('snoop-1')],
      appChannelIds: new Set(['1.1', 'leg-b-1', 'snoop-1']),
      bridges: [
        { id: 'call-a', name: 'transcription-proxy', channels: ['1.1', 'leg-b-1'] },
        { id: 'tap-1', name: 'transcription-proxy', channels: ['snoop-1'] },
      ],
    };
    const owned = { channels: new Set(['1.1', 'leg-b-1', 'snoop-1']), bridges: new Set(['call-a', 'tap-1']) };
    expect(planReconcile(view, new Map(), owned, 'transcription-proxy')).toEqual([]);
  });
});
