/**
 * The Stasis application: receives the app's ARI events, hands each to the
 * owner of its channel, and starts a CallSession for every new channel that
 * enters the app from the dialplan. Channels the service creates itself (leg
 * B, snoops, ExternalMedia) are owned before they exist, so their StasisStart
 * never looks like a new call.
 *
 * The service is a replaceable worker over state that lives in Asterisk:
 *
 * - At start, after every reconnection of ARI, and every RECONCILE_INTERVAL_MS,
 *   it compares Asterisk with its own calls (reconcile-plan.ts): calls that
 *   nobody owns are adopted (an earlier instance stopped, crashed, or was
 *   replaced), the remaining party of a call whose other party left while
 *   nobody watched is hung up, leftovers of ours are removed, and calls of its
 *   own whose channels are gone end.
 * - drain() (SIGTERM): new calls go back to the dialplan untranscribed (its
 *   fallback after Stasis() runs), calls in progress go on until they end;
 *   release() then lets go of what is left, leaving it up in Asterisk.
 * - When another connection registers the app (a second instance, a rolling
 *   upgrade), Asterisk sends this one ApplicationReplaced: every call is
 *   detached (streams closed with the reason, nothing asked of Asterisk) and
 *   the app does nothing more; the newer instance adopts the calls.
 */
import type { Logger } from 'pino';
import type { AriChannel, AriConnectionChange, AriEvent, AriPort } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import type { TapTransportFactory } from '../media/tap-transports.js';
import type { CallStreamsFactory } from '../transcription/call-streams.js';
import type { StreamSummary } from '../transcription/websocket-stream.js';
import { parseStasisArgs } from '../routing/stasis-args.js';
import { OUTCOME_VARIABLE } from './call-outcome.js';
import { CALL_RECORD_VARIABLE, decodeCallRecord, type CallRecord } from './call-record.js';
import { CallSession, handBackToDialplan, type CallMetrics, type CallOrigin } from './call-session.js';
import { ChannelEvents } from './channel-events.js';
import { isOwnedChannelId, planReconcile, recordsToRead, type ReconcileAction } from './reconcile-plan.js';

export { OWNED_BRIDGE_PREFIXES, OWNED_CHANNEL_PREFIXES } from './reconcile-plan.js';

/** How often the app compares Asterisk with its calls when nothing else made it. */
export const RECONCILE_INTERVAL_MS = 30_000;
/** A second look soon after start: what a replaced instance was still creating when we first looked. */
const SECOND_LOOK_MS = 2000;

export type AppState = 'starting' | 'running' | 'draining' | 'replaced' | 'stopped';

/** What the app reports to the metrics: the calls' reports, and calls turned away without a session. */
export interface AppMetrics extends CallMetrics {
  callHandedBack(): void;
}

export interface StasisAppDeps {
  ari: AriPort;
  config: Config;
  logger: Logger;
  transports: TapTransportFactory;
  createStreams: CallStreamsFactory;
  metrics?: AppMetrics | undefined;
  /** Overrides RECONCILE_INTERVAL_MS (tests). */
  reconcileIntervalMs?: number;
}

export class StasisApp {
  readonly #deps: StasisAppDeps;
  readonly #events = new ChannelEvents();
  readonly #calls = new Set<CallSession>();
  readonly #unsubscribe: (() => void)[] = [];
  #state: AppState = 'starting';
  #reconciling: Promise<void> | undefined;
  #reconcileAgain = false;
  #timer: NodeJS.Timeout | undefined;
  #secondLook: NodeJS.Timeout | undefined;
  #idleWaiters: (() => void)[] = [];
  /** Ids of calls that ended since the current reconciliation listed Asterisk: its view may still show them. */
  readonly #endedSinceListing = new Set<string>();
  /** Channels handed back to the dialplan that may still be in the app for a moment. */
  readonly #handedBack = new Set<string>();
  /** Counters for logs and metrics. */
  readonly stats = { callsStarted: 0, callsAdopted: 0, callsHandedBack: 0, leftoversRemoved: 0, reconciliations: 0 };

  constructor(deps: StasisAppDeps) {
    this.#deps = deps;
  }

  get state(): AppState {
    return this.#state;
  }

  get activeCalls(): number {
    return this.#calls.size;
  }

  get calls(): readonly CallSession[] {
    return [...this.#calls];
  }

  /** A call in progress by its call id. */
  findCall(callId: string): CallSession | undefined {
    return [...this.#calls].find((call) => call.callId === callId && !call.isClosed);
  }

  /** Every live stream's counters, with its provider (for the metrics). */
  liveStreams(): { provider: string; summary: StreamSummary }[] {
    const out: { provider: string; summary: StreamSummary }[] = [];
    for (const call of this.#calls) {
      const live = call.liveStreams();
      if (live !== undefined) for (const summary of live.summaries) out.push({ provider: live.provider, summary });
    }
    return out;
  }

  /** True while any call still holds a UDP socket or websocket. */
  get holdsSockets(): boolean {
    return [...this.#calls].some((call) => call.holdsSockets);
  }

  /** Listens, registers the app, and takes over whatever calls Asterisk has for it. */
  async start(): Promise<void> {
    const { ari } = this.#deps;
    this.#unsubscribe.push(ari.onEvent((event) => this.#onEvent(event)));
    this.#unsubscribe.push(ari.onConnection((change) => this.#onConnection(change)));
    await ari.openEvents();
    if (this.#state === 'starting') this.#state = 'running';
    await this.reconcile('start');
    this.#secondLook = setTimeout(() => void this.reconcile('start, second look'), SECOND_LOOK_MS);
    this.#secondLook.unref();
    this.#timer = setInterval(() => void this.reconcile('periodic'), this.#deps.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS);
    this.#timer.unref();
  }

  #onConnection(change: AriConnectionChange): void {
    if (change.state === 'replaced') this.#handOver();
    else if (change.state === 'up' && change.reconnected) void this.reconcile('ARI reconnected');
  }

  #onEvent(event: AriEvent): void {
    if (event.type === 'StasisEnd') this.#handedBack.delete(event.channel.id);
    if (this.#events.route(event)) return;
    if (event.type !== 'StasisStart' || this.#state === 'replaced') return;
    const channel = event.channel;
    if (isOwnedChannelId(channel.id)) {
      // Ours, but no session knows it: a leftover of a call that already ended (or of a replaced instance).
      this.#removeLeftover('channel', channel.id);
      return;
    }
    if (this.#state !== 'running') {
      void this.#turnAway(channel, event.args);
      return;
    }
    this.#startCall(channel, { kind: 'new', args: event.args });
  }

  #startCall(legA: AriChannel, origin: CallOrigin): void {
    const findCall = (channelId: string) => [...this.#calls].find((other) => other.legOf(channelId) !== undefined);
    const call = new CallSession({ ...this.#deps, events: this.#events, findCall }, legA, origin);
    this.#calls.add(call);
    if (origin.kind === 'adopt') this.stats.callsAdopted++;
    else this.stats.callsStarted++;
    call.onClosed(() => {
      this.#calls.delete(call);
      const ids = call.ownedIds();
      for (const id of [...ids.channels, ...ids.bridges]) this.#endedSinceListing.add(id);
      if (this.#calls.size === 0) for (const waiter of this.#idleWaiters.splice(0)) waiter();
    });
    void call.start();
  }

  /**
   * A new call while the service is draining: back to the dialplan, whose fallback connects it
   * untranscribed. An agent's call placed by `call` has no dialplan to go back to: it fails.
   */
  async #turnAway(channel: AriChannel, args: readonly string[]): Promise<void> {
    const { ari, logger } = this.#deps;
    const parsed = parseStasisArgs(args);
    this.stats.callsHandedBack++;
    this.#deps.metrics?.callHandedBack();
    try {
      if (parsed.ok && parsed.args.callId !== undefined) {
        logger.info({ channelId: channel.id, callId: parsed.args.callId }, 'service draining: outbound call not placed');
        await ari.setVariable(channel.id, OUTCOME_VARIABLE, 'failed');
        await ari.hangup(channel.id, 'congestion');
        return;
      }
      logger.info({ channelId: channel.id }, 'service draining: call handed back to the dialplan, untranscribed');
      this.#handedBack.add(channel.id);
      await handBackToDialplan(ari, channel.id, 'draining');
    } catch (error) {
      logger.warn({ err: error, channelId: channel.id }, 'could not hand the call back to the dialplan');
    }
  }

  #removeLeftover(kind: 'channel' | 'bridge', id: string): void {
    const { ari, logger } = this.#deps;
    this.stats.leftoversRemoved++;
    const request = kind === 'channel' ? ari.hangup(id) : ari.destroyBridge(id);
    request.catch((error: unknown) =>
      logger.warn({ err: error, [kind === 'channel' ? 'channelId' : 'bridgeId']: id }, 'could not remove a leftover'),
    );
  }

  /** Compares Asterisk with this app's calls and acts on the difference; one pass at a time. */
  /** Not replaced and not stopped (a method, so each check reads the state afresh). */
  #isActive(): boolean {
    return this.#state !== 'replaced' && this.#state !== 'stopped';
  }

  reconcile(why: string): Promise<void> {
    if (!this.#isActive()) return Promise.resolve();
    if (this.#reconciling !== undefined) {
      this.#reconcileAgain = true;
      return this.#reconciling;
    }
    this.#reconciling = (async () => {
      do {
        this.#reconcileAgain = false;
        try {
          await this.#reconcileOnce(why);
        } catch (error) {
          this.#deps.logger.warn({ err: error, why }, 'could not compare the calls with Asterisk; trying again later');
        }
      } while (this.#reconcileAgain && this.#isActive());
      this.#reconciling = undefined;
    })();
    return this.#reconciling;
  }

  async #reconcileOnce(why: string): Promise<void> {
    const { ari, logger } = this.#deps;
    this.stats.reconciliations++;
    this.#endedSinceListing.clear();
    // Only what each call had when Asterisk was listed can be missing from the listing.
    const before = new Map([...this.#calls].map((call) => [call, call.state]));
    const [channels, bridges, appChannelIds] = await Promise.all([ari.listChannels(), ari.listBridges(), ari.listAppChannelIds()]);
    if (!this.#isActive()) return;
    const view = { channels, bridges, appChannelIds: new Set(appChannelIds) };
    const present = new Set(channels.map((channel) => channel.id));
    for (const [call, state] of before) call.reconcile(present, state);

    const records = new Map<string, CallRecord>();
    await Promise.all(
      recordsToRead(view, this.#ownedIds(), ari.app).map(async (id) => {
        const record = decodeCallRecord(await ari.getVariable(id, CALL_RECORD_VARIABLE).catch(() => undefined));
        if (record !== undefined) records.set(id, record);
      }),
    );
    if (!this.#isActive()) return;
    for (const id of this.#handedBack) if (!view.appChannelIds.has(id)) this.#handedBack.delete(id);
    // Ownership afresh: calls may have started while the records were read.
    const owned = this.#ownedIds();
    const actions = planReconcile(view, records, owned, ari.app);
    const done: Record<ReconcileAction['kind'], number> = {
      'adopt-bridged': 0,
      'adopt-unbridged': 0,
      route: 0,
      'hang-up': 0,
      'remove-channel': 0,
      'destroy-bridge': 0,
    };
    for (const action of actions) {
      if (this.#act(action, owned.channels)) done[action.kind]++;
    }
    if (Object.values(done).some((count) => count > 0)) logger.info({ why, ...done }, 'reconciled with Asterisk');
  }

  /** One planned action; false when it no longer applies (a call took the channel meanwhile). */
  #act(action: ReconcileAction, ownedBefore: ReadonlySet<string>): boolean {
    const { ari, logger } = this.#deps;
    const nowOwned = (id: string) => !ownedBefore.has(id) && this.#events.isOwned(id);
    switch (action.kind) {
      case 'adopt-bridged':
      case 'adopt-unbridged': {
        if (nowOwned(action.legA.id) || nowOwned(action.legB.id)) return false;
        const bridgeId = action.kind === 'adopt-bridged' ? action.bridgeId : undefined;
        this.#startCall(action.legA, { kind: 'adopt', legB: action.legB, record: action.record, bridgeId });
        return true;
      }
      case 'route':
        if (nowOwned(action.legA.id)) return false;
        if (this.#state !== 'running') {
          void this.#turnAway(action.legA, action.args);
          return true;
        }
        this.#startCall(action.legA, { kind: 'new', args: action.args, callId: action.callId });
        return true;
      case 'hang-up':
        logger.info({ channelId: action.channelId, reason: action.why }, 'hanging up the party left alone');
        ari.hangup(action.channelId).catch((error: unknown) => logger.warn({ err: error, channelId: action.channelId }, 'hangup failed'));
        return true;
      case 'remove-channel':
        this.#removeLeftover('channel', action.channelId);
        return true;
      case 'destroy-bridge':
        this.#removeLeftover('bridge', action.bridgeId);
        return true;
    }
  }

  /** What live calls hold, what calls that just ended held, and what was handed back to the dialplan. */
  #ownedIds(): { channels: Set<string>; bridges: Set<string> } {
    const channels = new Set<string>([...this.#endedSinceListing, ...this.#handedBack]);
    const bridges = new Set<string>(this.#endedSinceListing);
    for (const call of this.#calls) {
      const ids = call.ownedIds();
      for (const id of ids.channels) channels.add(id);
      for (const id of ids.bridges) bridges.add(id);
    }
    return { channels, bridges };
  }

  /** Another instance registered the app: let go of every call without touching Asterisk. */
  #handOver(): void {
    if (!this.#isActive()) return;
    this.#state = 'replaced';
    this.#stopTimers();
    this.#deps.logger.warn({ calls: this.#calls.size }, 'replaced by another instance of the service: its calls are handed over');
    for (const call of this.#calls) void call.detach('handed over to another instance of the service');
  }

  /** Stops taking new calls (they go back to the dialplan); resolves once no call is left. */
  drain(): Promise<void> {
    if (this.#state === 'running' || this.#state === 'starting') this.#state = 'draining';
    this.#deps.logger.info({ calls: this.#calls.size }, 'draining: new calls go to the dialplan fallback; calls in progress go on');
    if (this.#calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Lets go of every call left (they stay up in Asterisk, for the next instance) and stops. */
  async stop(why = 'service stopped; the call goes on untranscribed until another instance adopts it'): Promise<void> {
    const replaced = this.#state === 'replaced';
    this.#state = 'stopped';
    this.#stopTimers();
    if (!replaced) await Promise.allSettled([...this.#calls].map((call) => call.release(why)));
    await this.#reconciling;
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
  }

  #stopTimers(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#secondLook);
  }
}
