/**
 * The Stasis application: receives the app's ARI events, hands each to the
 * owner of its channel, and starts a CallSession for every new channel that
 * enters the app from the dialplan. Channels the service creates itself (leg
 * B, snoops, ExternalMedia) are owned before they exist, so their StasisStart
 * never looks like a new call. Leftovers of an earlier run of the service
 * (recognised by our id prefixes) are hung up at start.
 *
 * When the ARI event connection comes back after a loss, the events of the gap
 * are gone: every call checks that Asterisk still has its channels, and a call
 * whose caller (or answered callee) went away meanwhile, or whose Asterisk
 * restarted, ends as if the hangup had been seen.
 */
import type { Logger } from 'pino';
import type { AriEvent, AriPort } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import type { RtpPortPool } from '../media/rtp-port-pool.js';
import type { AudioSocketServer } from '../media/audiosocket-server.js';
import { CallSession } from './call-session.js';
import { ChannelEvents } from './channel-events.js';
import type { StreamConnection } from '../transcription/stream-connection.js';

/** Prefixes of the ids of everything this service creates in Asterisk. */
export const OWNED_CHANNEL_PREFIXES = ['leg-b-', 'snoop-', 'media-'] as const;
export const OWNED_BRIDGE_PREFIXES = ['call-', 'tap-'] as const;

export interface StasisAppDeps {
  ari: AriPort;
  config: Config;
  logger: Logger;
  pool: RtpPortPool;
  audioSocketServer: AudioSocketServer;
  streamConnection: StreamConnection;
}

export class StasisApp {
  readonly #deps: StasisAppDeps;
  readonly #events = new ChannelEvents();
  readonly #calls = new Set<CallSession>();
  #unsubscribe: (() => void) | undefined;
  #unsubscribeReconnected: (() => void) | undefined;
  #stopping = false;

  constructor(deps: StasisAppDeps) {
    this.#deps = deps;
  }

  get activeCalls(): number {
    return this.#calls.size;
  }

  /** True while any call still holds a UDP socket or websocket. */
  get holdsSockets(): boolean {
    return [...this.#calls].some((call) => call.holdsSockets) || this.#deps.pool.inUseCount > 0;
  }

  async start(): Promise<void> {
    this.#unsubscribe = this.#deps.ari.onEvent((event) => this.#onEvent(event));
    this.#unsubscribeReconnected = this.#deps.ari.onReconnected(() => void this.#reconcileCalls());
    await this.#removeLeftovers();
  }

  /** After a reconnection: ends the calls whose channels Asterisk no longer has. */
  async #reconcileCalls(): Promise<void> {
    const { ari, logger } = this.#deps;
    if (this.#calls.size === 0) return;
    try {
      const present = new Set((await ari.listChannels()).map((channel) => channel.id));
      logger.info({ calls: this.#calls.size }, 'checking the calls in progress against Asterisk');
      for (const call of this.#calls) call.reconcile(present);
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'could not check the calls in progress after the ARI reconnection');
    }
  }

  #onEvent(event: AriEvent): void {
    if (this.#events.route(event)) return;
    if (event.type !== 'StasisStart') return;
    const channel = event.channel;
    if (OWNED_CHANNEL_PREFIXES.some((prefix) => channel.id.startsWith(prefix))) {
      // Ours, but no session knows it: a leftover of a call that already ended.
      void this.#deps.ari.hangup(channel.id).catch(() => {});
      return;
    }
    if (this.#stopping) {
      void this.#deps.ari.hangup(channel.id, 'congestion').catch(() => {});
      return;
    }
    const call = new CallSession({ ...this.#deps, events: this.#events }, channel, event.args);
    this.#calls.add(call);
    call.onClosed(() => this.#calls.delete(call));
    void call.start();
  }

  async #removeLeftovers(): Promise<void> {
    const { ari, logger } = this.#deps;
    try {
      const [channels, bridges] = await Promise.all([ari.listChannels(), ari.listBridges()]);
      const staleChannels = channels.filter((c) => OWNED_CHANNEL_PREFIXES.some((p) => c.id.startsWith(p)));
      const staleBridges = bridges.filter((b) => OWNED_BRIDGE_PREFIXES.some((p) => b.id.startsWith(p)));
      await Promise.allSettled([...staleChannels.map((c) => ari.hangup(c.id)), ...staleBridges.map((b) => ari.destroyBridge(b.id))]);
      if (staleChannels.length + staleBridges.length > 0) {
        logger.warn({ channels: staleChannels.length, bridges: staleBridges.length }, 'removed leftovers of an earlier run');
      }
    } catch (error) {
      logger.warn({ err: (error as Error).message }, 'could not look for leftovers of an earlier run');
    }
  }

  /** Ends every call (hanging up both legs) and stops taking new ones. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.allSettled([...this.#calls].map((call) => call.close('service stopping', 'congestion')));
    this.#unsubscribe?.();
    this.#unsubscribeReconnected?.();
  }
}
