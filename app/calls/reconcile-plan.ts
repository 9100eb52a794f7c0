/**
 * What the service does with what it finds in Asterisk that none of its own
 * calls owns: at start (after a stop, a crash, or while an older instance
 * still runs), after every reconnection of ARI, and now and then in between.
 * A pure function of Asterisk's state, so each case is a unit test:
 *
 *   call bridge with both parties      → adopt the call (new taps, streams resumed); which member
 *                                        is which leg, the call record on them says (a transfer
 *                                        may have changed both), else leg B is the `leg-b-` one
 *   call bridge with one party left    → hang that party up (the other left while nobody watched)
 *   app channel with leg B, unbridged  → adopt the call where it was (ringing, or answered)
 *   app channel without leg B          → route it as a new call (same call id, if it had one)
 *   our snoops, media channels, leg Bs and tap bridges that no call claims → remove
 *
 * Only what is this app's is touched: channels in the app (ARI's application
 * channel_ids) and bridges this app named; another app on the same Asterisk,
 * or a second tenant of the service, is left alone.
 */
import type { AriBridge, AriChannel } from '../ari/ari-port.js';
import type { CallRecord } from './call-record.js';

export const LEG_B_PREFIX = 'leg-b-';
/** A transfer's target that takes the caller's side (leg A) of a call. */
export const LEG_A_PREFIX = 'leg-a-';
export const SNOOP_PREFIX = 'snoop-';
export const MEDIA_PREFIX = 'media-';
export const CALL_BRIDGE_PREFIX = 'call-';
export const TAP_BRIDGE_PREFIX = 'tap-';
/** Prefixes of the ids of every channel and bridge this service creates in Asterisk. */
export const OWNED_CHANNEL_PREFIXES = [LEG_B_PREFIX, LEG_A_PREFIX, SNOOP_PREFIX, MEDIA_PREFIX] as const;
export const OWNED_BRIDGE_PREFIXES = [CALL_BRIDGE_PREFIX, TAP_BRIDGE_PREFIX] as const;

export function isOwnedChannelId(id: string): boolean {
  return OWNED_CHANNEL_PREFIXES.some((prefix) => id.startsWith(prefix));
}

export interface AsteriskView {
  /** Every channel Asterisk has. */
  channels: readonly AriChannel[];
  /** The channels in this app. */
  appChannelIds: ReadonlySet<string>;
  bridges: readonly AriBridge[];
}

/** What the service's live calls hold (including what they are still creating). */
export interface OwnedIds {
  channels: ReadonlySet<string>;
  bridges: ReadonlySet<string>;
}

export type ReconcileAction =
  | { kind: 'adopt-bridged'; legA: AriChannel; legB: AriChannel; bridgeId: string; record: CallRecord | undefined }
  | { kind: 'adopt-unbridged'; legA: AriChannel; legB: AriChannel; record: CallRecord }
  | { kind: 'route'; legA: AriChannel; args: string[]; callId: string | undefined }
  | { kind: 'hang-up'; channelId: string; why: string }
  | { kind: 'remove-channel'; channelId: string }
  | { kind: 'destroy-bridge'; bridgeId: string };

/** A bridge this app made: our id prefix, and named after the app (or, made by version 0.1, after itself). */
function isOurBridge(bridge: AriBridge, app: string, prefix: string): boolean {
  return bridge.id.startsWith(prefix) && (bridge.name === app || bridge.name === bridge.id);
}

/**
 * The channels whose call record must be read before planning: this app's unowned callers,
 * and the members of call bridges nobody owns (after a transfer a leg may be any channel).
 */
export function recordsToRead(view: AsteriskView, owned: OwnedIds, app: string): string[] {
  const ids = new Set([...view.appChannelIds].filter((id) => !owned.channels.has(id) && !isOwnedChannelId(id)));
  for (const bridge of view.bridges) {
    if (owned.bridges.has(bridge.id) || !isOurBridge(bridge, app, CALL_BRIDGE_PREFIX)) continue;
    for (const id of bridge.channels) if (view.appChannelIds.has(id) && !owned.channels.has(id)) ids.add(id);
  }
  return [...ids];
}

/** The call's legs among a call bridge's members: as a record on them names them, else by id (leg B: `leg-b-`). */
function legsOf(
  members: readonly AriChannel[],
  records: ReadonlyMap<string, CallRecord>,
): { legA: AriChannel | undefined; legB: AriChannel | undefined; record: CallRecord | undefined } {
  const byId = new Map(members.map((channel) => [channel.id, channel]));
  for (const member of members) {
    const record = records.get(member.id);
    if (record?.legA === undefined || record.legB === undefined) continue;
    const legA = byId.get(record.legA);
    const legB = byId.get(record.legB);
    if (legA !== undefined && legB !== undefined) return { legA, legB, record };
  }
  const legB = members.find((channel) => channel.id.startsWith(LEG_B_PREFIX));
  const legA = members.find((channel) => !channel.id.startsWith(LEG_B_PREFIX));
  return { legA, legB, record: legA === undefined ? undefined : records.get(legA.id) };
}

/** The Stasis arguments of a channel in Stasis(APP,ARGS...), as the dialplan gave them. */
export function stasisArgsOf(channel: AriChannel): string[] {
  const data = channel.dialplan.app_data ?? '';
  if (channel.dialplan.app_name?.toLowerCase() !== 'stasis' || data === '') return [];
  return data.split(',').slice(1);
}

export function planReconcile(
  view: AsteriskView,
  records: ReadonlyMap<string, CallRecord>,
  owned: OwnedIds,
  app: string,
): ReconcileAction[] {
  const actions: ReconcileAction[] = [];
  const byId = new Map(view.channels.map((channel) => [channel.id, channel]));
  const claimed = new Set<string>(owned.channels);

  for (const bridge of view.bridges) {
    if (owned.bridges.has(bridge.id) || !isOurBridge(bridge, app, CALL_BRIDGE_PREFIX)) continue;
    const members = bridge.channels.filter((id) => byId.has(id));
    const { legA, legB, record } = legsOf(
      members.map((id) => byId.get(id)!),
      records,
    );
    for (const id of members) claimed.add(id);
    if (legA !== undefined && legB !== undefined) {
      actions.push({ kind: 'adopt-bridged', legA, legB, bridgeId: bridge.id, record });
      continue;
    }
    if (legA !== undefined)
      actions.push({ kind: 'hang-up', channelId: legA.id, why: 'callee left while no instance of the service was running' });
    if (legB !== undefined)
      actions.push({ kind: 'hang-up', channelId: legB.id, why: 'caller left while no instance of the service was running' });
    actions.push({ kind: 'destroy-bridge', bridgeId: bridge.id });
  }

  for (const id of view.appChannelIds) {
    const legA = byId.get(id);
    if (legA === undefined || claimed.has(id) || isOwnedChannelId(id)) continue;
    claimed.add(id);
    const record = records.get(id);
    const legB = record?.legB !== undefined && view.appChannelIds.has(record.legB) ? byId.get(record.legB) : undefined;
    if (record !== undefined && record.state !== 'routing' && legB !== undefined && !claimed.has(legB.id)) {
      claimed.add(legB.id);
      actions.push({ kind: 'adopt-unbridged', legA, legB, record });
    } else {
      actions.push({ kind: 'route', legA, args: record?.args ?? stasisArgsOf(legA), callId: record?.callId });
    }
  }

  for (const id of view.appChannelIds) {
    if (!claimed.has(id) && isOwnedChannelId(id) && byId.has(id)) actions.push({ kind: 'remove-channel', channelId: id });
  }
  for (const bridge of view.bridges) {
    if (!owned.bridges.has(bridge.id) && isOurBridge(bridge, app, TAP_BRIDGE_PREFIX))
      actions.push({ kind: 'destroy-bridge', bridgeId: bridge.id });
  }
  return actions;
}
