/**
 * Taps one leg's audio and streams it, labelled, to the transcription side:
 *
 *   leg channel ──snoop(spy=in)──▶ snoop channel ─┐
 *                                                 ├─ tap bridge (mixing)
 *          tap transport ◀── ExternalMedia channel ┘   (RTP/UDP, AudioSocket/TCP or WebSocket)
 *   TapTransport ──L16 little-endian──▶ onAudio (the call's CallStreams, as CALLER1 / CALLER2)
 *
 * `spy=in` is what the party says, unmixed; the ExternalMedia channel never
 * joins the A–B bridge (it would hear the mix). The snoop and ExternalMedia
 * channels enter Stasis on their own schedule: each is added to the tap bridge
 * only after its own StasisStart, one channel per request. Adding them earlier,
 * or both in one request, silently loses the leg's audio (PROTOCOLS.md).
 *
 * The tap owns its snoop, ExternalMedia channel, bridge and transport, and
 * close() releases all of them, once, whatever state start() is in; detach()
 * lets go of them without a word to Asterisk (another instance of the service
 * took the call over and replaces them). Where the audio goes (streams,
 * providers) is the call's business, not the tap's.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AriPort } from '../ari/ari-port.js';
import type { TapFormat, TapTransportFactory } from '../media/tap-transports.js';
import type { AudioHandler, MediaTransportKind, TapTransport } from '../media/tap-transport.js';
import type { StreamIdentity } from '../transcription/stream-messages.js';
import type { ChannelEvents } from './channel-events.js';
import { MEDIA_PREFIX, SNOOP_PREFIX, TAP_BRIDGE_PREFIX } from './reconcile-plan.js';

export interface LegTapDeps {
  ari: AriPort;
  events: ChannelEvents;
  transports: TapTransportFactory;
  /** The audio format asked of Asterisk (the provider's rate: slin16 for 16 kHz). */
  format: TapFormat;
  /** TAP_NO_AUDIO_TIMEOUT_MS. */
  noAudioTimeoutMs: number;
  /** Called each time the tap is replaced (for the metrics). */
  onReplaced?: () => void;
  logger: Logger;
}

/** How long a created snoop or ExternalMedia channel may take to enter Stasis. */
const STASIS_START_TIMEOUT_MS = 5000;
/** How long close() waits for a start (or replacement) still under way before it tears down anyway. */
const CLOSE_WAIT_FOR_START_MS = 6000;
/** How often one leg's tap may be replaced before the stream is given up. */
const MAX_REPLACEMENTS = 3;
/**
 * How long a freshly bridged tap may take to deliver its first frame (capped by
 * TAP_NO_AUDIO_TIMEOUT_MS). The snoop feeds the bridge every 20 ms, so the first frame
 * normally arrives within about 60 ms. Over AudioSocket, about one leg in thirty
 * was seen to get no audio at all although it was set up in the right order
 * (docs/media-transports.md); replacing it quickly loses well under a second.
 */
const FIRST_AUDIO_TIMEOUT_MS = 600;

export class LegTap {
  readonly identity: StreamIdentity;
  readonly snoopId = `${SNOOP_PREFIX}${randomUUID()}`;
  readonly bridgeId = `${TAP_BRIDGE_PREFIX}${randomUUID()}`;
  /** Every ExternalMedia channel this tap created (a replaced tap has several); all are hung up at close. */
  readonly #externalIds: string[] = [];
  readonly #deps: LegTapDeps;
  readonly #logger: Logger;
  readonly #releases: (() => void)[] = [];
  readonly #transportKind: MediaTransportKind;
  readonly #onAudio: AudioHandler;
  #transport: TapTransport | undefined;
  #bridgeCreated = false;
  #starting: Promise<void> = Promise.resolve();
  /** When the current ExternalMedia channel joined the tap bridge (ms since epoch). */
  #bridgedAt = 0;
  /** When the current transport last delivered a frame (ms since epoch; 0: not yet); the watchdog reads it. */
  #lastAudioAt = 0;
  #watchdog: NodeJS.Timeout | undefined;
  /** When the leg was known to be up, so that a frame every 20 ms is due (ms since epoch; undefined: not yet). */
  #audioExpectedAt: number | undefined;
  #replacements = 0;
  #closed: Promise<void> | undefined;

  constructor(deps: LegTapDeps, identity: StreamIdentity, transport: MediaTransportKind, onAudio: AudioHandler) {
    this.#deps = deps;
    this.#onAudio = onAudio;
    this.identity = identity;
    this.#transportKind = transport;
    this.#logger = deps.logger.child({ leg: identity.leg, label: identity.label, legChannelId: identity.channelId, transport });
  }

  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** Everything this tap has created or is creating in Asterisk. */
  ownedIds(): { channels: string[]; bridges: string[] } {
    return { channels: [this.snoopId, ...this.#externalIds], bridges: [this.bridgeId] };
  }

  /** True while this tap still holds a socket (for leak checks). */
  get holdsSockets(): boolean {
    return this.#transport?.holdsSocket ?? false;
  }

  /**
   * Builds the tap; a failure is logged and leaves the call alone. `audioExpected: false`
   * builds it ahead of the answer (a leg that is not up yet sends no audio, so the
   * no-audio watchdog waits for expectAudio()).
   */
  start(options: { audioExpected: boolean } = { audioExpected: true }): Promise<void> {
    if (options.audioExpected) this.#audioExpectedAt = Date.now();
    this.#starting = this.#start();
    return this.#starting;
  }

  /** The legs are up and bridged: from now on a tap without audio is broken. */
  expectAudio(): void {
    if (this.#audioExpectedAt !== undefined || this.isClosed) return;
    this.#audioExpectedAt = Date.now();
    this.#lastAudioAt = 0;
    if (this.#bridgedAt !== 0) this.#startWatchdog();
  }

  async #start(): Promise<void> {
    const { ari, events } = this.#deps;
    try {
      // The snoop's id is known before creation, so the call can hang it up on any path.
      this.#releases.push(events.own(this.snoopId, () => {}));
      // The bridge, the snoop and the media channel are created side by side (each its own
      // request; allSettled, so that nothing is still being created once start() is over);
      // each channel joins the bridge only after its own StasisStart, the snoop first.
      const bridge = ari.createBridge(this.bridgeId, ari.app).then(() => {
        this.#bridgeCreated = true;
      });
      const snoop = (async () => {
        const snoopStarted = events.expect(this.snoopId, 'StasisStart', STASIS_START_TIMEOUT_MS);
        snoopStarted.catch(() => {}); // awaited just below; this only keeps a rejection before then from going unhandled
        await ari.snoop({ channelId: this.identity.channelId, snoopId: this.snoopId, spy: 'in', appArgs: 'tap' });
        await snoopStarted;
      })();
      const media = this.#createMedia();
      const [bridged, snooped, external] = await Promise.allSettled([bridge, snoop, media]);
      for (const step of [bridged, snooped, external]) if (step.status === 'rejected') throw step.reason;
      if (this.isClosed || external.status !== 'fulfilled' || external.value === undefined) return;
      await ari.addToBridge(this.bridgeId, this.snoopId);
      if (this.isClosed) return;
      await this.#bridgeMedia(external.value);
      if (this.isClosed) return;
      if (this.#audioExpectedAt !== undefined) this.#startWatchdog();
    } catch (error) {
      if (this.isClosed) return;
      this.#logger.error({ err: (error as Error).message }, 'tapping the leg failed; the call goes on without this stream');
    }
  }

  /**
   * A new transport and ExternalMedia channel in the tap bridge: at start, and to replace
   * one that went silent. The channel is bridged only after its own StasisStart.
   */
  async #connectMedia(): Promise<void> {
    const external = await this.#createMedia();
    if (external !== undefined && !this.isClosed) await this.#bridgeMedia(external);
  }

  /** A new transport and its ExternalMedia channel, up to its StasisStart; undefined once the tap is closed. */
  async #createMedia(): Promise<{ externalId: string; transport: TapTransport } | undefined> {
    const { ari, events } = this.#deps;
    const externalId = `${MEDIA_PREFIX}${randomUUID()}`;
    this.#externalIds.push(externalId);
    this.#releases.push(events.own(externalId, () => {}));
    const transport = await this.#openTransport(externalId);
    this.#transport?.close();
    this.#transport = transport;
    // A replacement transport's first frame says nothing of what was lost before it (undefined).
    transport.onAudio((frame, lostBefore) => {
      this.#lastAudioAt = Date.now();
      this.#onAudio(frame, lostBefore);
    });
    if (this.isClosed) return undefined;

    const externalStarted = events.expect(externalId, 'StasisStart', STASIS_START_TIMEOUT_MS);
    externalStarted.catch(() => {}); // awaited below, as snoopStarted
    const external = await ari.externalMedia({ channelId: externalId, ...transport.request });
    // The transport's side (RTP: lock onto Asterisk's source; WebSocket: connect) comes before
    // the StasisStart wait: a WebSocket or AudioSocket channel enters Stasis only once connected.
    await transport.attach(external);
    await externalStarted;
    return this.isClosed ? undefined : { externalId, transport };
  }

  async #bridgeMedia({ externalId, transport }: { externalId: string; transport: TapTransport }): Promise<void> {
    this.#lastAudioAt = 0;
    await this.#deps.ari.addToBridge(this.bridgeId, externalId);
    this.#bridgedAt = Date.now();
    this.#logger.info({ externalHost: transport.request.externalHost, externalId }, 'leg tapped');
  }

  /**
   * No silent leg: the snoop sends a frame every 20 ms even when the party is quiet, so a
   * transport that delivers no first frame within FIRST_AUDIO_TIMEOUT_MS of joining the
   * bridge (of expectAudio(), for a tap built before the legs were up), or nothing for
   * TAP_NO_AUDIO_TIMEOUT_MS later on, is broken. It is replaced (a new ExternalMedia
   * channel in the same tap bridge), a bounded number of times.
   */
  #startWatchdog(): void {
    clearInterval(this.#watchdog);
    const timeoutMs = this.#deps.noAudioTimeoutMs;
    const firstAudioTimeoutMs = Math.min(FIRST_AUDIO_TIMEOUT_MS, timeoutMs);
    this.#watchdog = setInterval(
      () => {
        if (this.isClosed) return;
        const firstFrame = this.#lastAudioAt === 0;
        const silentMs = Date.now() - (firstFrame ? Math.max(this.#bridgedAt, this.#audioExpectedAt ?? 0) : this.#lastAudioAt);
        if (silentMs < (firstFrame ? firstAudioTimeoutMs : timeoutMs)) return;
        clearInterval(this.#watchdog);
        if (this.#replacements >= MAX_REPLACEMENTS) {
          this.#logger.error(
            { silentMs, replacements: this.#replacements },
            'tap delivers no audio and was replaced too often; giving up on this stream',
          );
          return;
        }
        this.#replacements++;
        this.#deps.onReplaced?.();
        const message = firstFrame ? 'tap delivered no first frame; replacing it' : 'tap delivers no audio; replacing it';
        this.#logger.warn({ silentMs, replacement: this.#replacements }, message);
        const previous = this.#externalIds.at(-1);
        this.#starting = (async () => {
          // Our end first (see #close): a channel stuck reading its socket lets go of its lock.
          this.#transport?.close();
          if (previous !== undefined) await this.#deps.ari.hangup(previous).catch(() => {});
          try {
            await this.#connectMedia();
          } catch (error) {
            this.#logger.error({ err: (error as Error).message }, 'replacing the tap failed');
          }
          if (!this.isClosed) this.#startWatchdog();
        })();
      },
      Math.max(50, Math.floor(firstAudioTimeoutMs / 3)),
    );
    this.#watchdog.unref();
  }

  #openTransport(externalId: string): Promise<TapTransport> {
    const { ari, transports, format } = this.#deps;
    return transports.open(this.#transportKind, format, (name) => ari.getVariable(externalId, name));
  }

  /** Releases everything the tap created; safe to call twice and during start(). */
  close(reason: string): Promise<void> {
    this.#closed ??= this.#close(reason);
    return this.#closed;
  }

  /**
   * Lets go without touching Asterisk: the transport's own socket closes, nothing is hung
   * up or destroyed (the instance that took the call over replaces this tap). Idempotent,
   * and a later close() does nothing more.
   */
  detach(reason: string): void {
    if (this.#closed !== undefined) return;
    clearInterval(this.#watchdog);
    this.#deps.events.cancel(this.snoopId);
    for (const id of this.#externalIds) this.#deps.events.cancel(id);
    this.#transport?.close();
    for (const release of this.#releases.splice(0)) release();
    this.#logger.info({ reason, media: this.#transport?.stats(), replacements: this.#replacements }, 'leg tap detached');
    this.#transport = undefined;
    this.#closed = Promise.resolve();
  }

  async #close(reason: string): Promise<void> {
    const { ari, events } = this.#deps;
    // Stop start() at its next step, then release whatever it got to create:
    // a request still in flight would otherwise create a channel after our hangup.
    clearInterval(this.#watchdog);
    events.cancel(this.snoopId);
    for (const id of this.#externalIds) events.cancel(id);
    // Bounded: a start stuck in Asterisk must not keep the rest of the teardown waiting.
    await Promise.race([this.#starting, new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_FOR_START_MS).unref())]);
    // Our end of the media connection closes before we ask Asterisk to hang anything up.
    // Asterisk's AudioSocket reader (res_audiosocket.c, ast_audiosocket_receive_frame)
    // waits for data in a loop while holding the channel's lock, and we never send any:
    // until the socket closes, a hangup of that channel (or of the call) gets no answer.
    // EOF ends that wait. WebSocket taps send a CLOSE, which Asterisk answers by
    // hanging up the channel itself (websocket-tap-transport.ts). RTP: any order.
    this.#transport?.close();
    const results = await Promise.allSettled([
      ...this.#externalIds.map((id) => ari.hangup(id)),
      ari.hangup(this.snoopId),
      this.#bridgeCreated ? ari.destroyBridge(this.bridgeId) : Promise.resolve(),
    ]);
    for (const result of results) {
      if (result.status === 'rejected') this.#logger.warn({ err: String(result.reason) }, 'tap cleanup request failed');
    }
    for (const release of this.#releases.splice(0)) release();
    this.#transport?.close();
    this.#logger.info({ reason, media: this.#transport?.stats(), replacements: this.#replacements }, 'leg tap closed');
    this.#transport = undefined;
  }
}
