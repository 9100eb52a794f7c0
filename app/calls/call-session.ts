/**
 * One call: the caller's channel (leg A) that entered the Stasis app, the
 * called party's channel (leg B) that we originate, the bridge joining them,
 * and one tap per leg. The session owns all of them and tears all of them down
 * on every path: either side hanging up, B failing, the service stopping.
 *
 *   StasisStart(A) → plan (inbound-plan.ts: loop, host domain, number, route) → create B → dial B
 *     B rings     → ring A (a 180, or in-band ringback when A is already answered)
 *     B answers   → answer A, bridge A+B, tap A (CALLER1) and B (CALLER2)
 *     B fails     → hang A up with the matching cause (busy, no answer, ...)
 *     either ends → hang up the other, close taps, destroy bridges
 *
 * The call never depends on the transcription side: taps log their own
 * failures and the call goes on.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AriChannel, AriEvent, AriPort, HangupReason } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import type { RtpPortPool } from '../media/rtp-port-pool.js';
import type { AudioSocketServer } from '../media/audiosocket-server.js';
import type { MediaTransportKind } from '../media/tap-transport.js';
import type { StreamIdentity } from '../transcription/stream-messages.js';
import { createCallStreams, type CallStreams } from '../transcription/call-streams.js';
import type { StreamConnection } from '../transcription/stream-connection.js';
import type { ChannelEvents } from './channel-events.js';
import { LOOP_HEADER, LOOP_VARIABLE, planInboundCall, type LegAFacts } from './inbound-plan.js';
import { parseStasisArgs } from '../routing/stasis-args.js';
import { LegTap } from './leg-tap.js';

export interface CallDeps {
  ari: AriPort;
  events: ChannelEvents;
  pool: RtpPortPool;
  audioSocketServer: AudioSocketServer;
  config: Config;
  /** STREAM_* options for connections to STREAM_URL (read once at start-up). */
  streamConnection: StreamConnection;
  logger: Logger;
}

type CallState = 'routing' | 'dialling' | 'ringing' | 'answered' | 'closing';

/** Dial outcomes (ARI Dial event `dialstatus`) that end the call, and how A is hung up for each. */
const FAILED_DIAL: Readonly<Record<string, HangupReason>> = {
  BUSY: 'busy',
  NOANSWER: 'no_answer',
  CHANUNAVAIL: 'congestion',
  CONGESTION: 'congestion',
  CANCEL: 'normal',
};

/** Q.850 cause of a B leg that ended before answering → how A is hung up. */
function reasonForCause(cause: number | undefined): HangupReason {
  switch (cause) {
    case 17:
      return 'busy';
    case 18:
    case 19:
      return 'no_answer';
    case 1:
      return 'unallocated';
    case 21:
      return 'rejected';
    default:
      return 'congestion';
  }
}

/**
 * Set on leg A for whoever watches the call (the `call` command): `answered` when B
 * answers, else, just before A is hung up, `busy`, `no-answer` or `failed`.
 */
export const OUTCOME_VARIABLE = 'TRANSCRIPTION_PROXY_OUTCOME';

function outcomeOf(reason: HangupReason): 'busy' | 'no-answer' | 'failed' {
  if (reason === 'busy') return 'busy';
  if (reason === 'no_answer') return 'no-answer';
  return 'failed';
}

export class CallSession {
  readonly callId: string;
  readonly legA: AriChannel;
  readonly legBId = `leg-b-${randomUUID()}`;
  readonly bridgeId: string;
  readonly #deps: CallDeps;
  readonly #logger: Logger;
  readonly #releases: (() => void)[] = [];
  readonly #taps: LegTap[] = [];
  #streams: CallStreams | undefined;
  #state: CallState = 'routing';
  /** Creation requests still in flight: close() waits for them so nothing is created after the teardown. */
  readonly #creating = new Set<Promise<unknown>>();
  readonly #args: readonly string[];
  #callee = '';
  #linkedId = '';
  #direction: 'inbound' | 'outbound' = 'inbound';
  #transport: MediaTransportKind = 'rtp';
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;

  constructor(deps: CallDeps, legA: AriChannel, args: readonly string[]) {
    this.#deps = deps;
    this.legA = legA;
    this.#args = args;
    // The `call` command picks the id (call-id=) so it can print it before the call connects.
    const parsed = parseStasisArgs(args);
    this.callId = (parsed.ok ? parsed.args.callId : undefined) ?? randomUUID();
    this.bridgeId = `call-${this.callId}`;
    this.#logger = deps.logger.child({ callId: this.callId, channelId: legA.id });
  }

  get state(): CallState {
    return this.#state;
  }

  /** True while any tap of this call still holds a socket (for leak checks). */
  get holdsSockets(): boolean {
    return this.#taps.some((tap) => tap.holdsSockets) || (this.#streams?.holdsSockets ?? false);
  }

  onClosed(handler: () => void): void {
    this.#onClosed = handler;
  }

  async start(): Promise<void> {
    const { ari, events, config } = this.#deps;
    this.#releases.push(events.own(this.legA.id, (event) => this.#onLegAEvent(event)));
    this.#releases.push(events.own(this.legBId, (event) => this.#onLegBEvent(event)));
    try {
      const facts = await this.#readLegA();
      this.#linkedId = facts.linkedId;
      const plan = planInboundCall(this.legA, this.#args, facts, config, this.callId);
      const caller = this.legA.caller.number ?? '';
      if (!plan.ok) {
        this.#logger.warn(
          { reason: plan.reason, numbers: { caller, exten: this.legA.dialplan.exten, requestUri: facts.requestUri } },
          'call refused',
        );
        await this.close(`refused: ${plan.reason}`, plan.hangup);
        return;
      }
      if (plan.dropped.length > 0) this.#logger.warn({ dropped: plan.dropped }, 'not passed on to leg B: refused by the validator');
      this.#callee = plan.number;
      this.#direction = plan.direction;
      this.#transport = plan.transport;
      this.#logger.info(
        {
          numbers: { caller, dialled: plan.dialled, callee: plan.number },
          rule: plan.rule,
          direction: plan.direction,
          transport: plan.transport,
        },
        'routing call',
      );

      if (this.#closed) return;
      const legBStarted = events.expect(this.legBId, 'StasisStart', 5000);
      legBStarted.catch(() => {});
      this.#state = 'dialling';
      await this.#create(
        ari.createChannel({
          channelId: this.legBId,
          endpoint: plan.dialString,
          appArgs: 'leg-b',
          originator: this.legA.id,
          variables: plan.variables,
        }),
      );
      await legBStarted;
      if (this.#closed) return;
      // No `caller`: it would copy A's caller ID to B unchecked (the plan sets B's connected line).
      await ari.dial(this.legBId, { timeoutSeconds: Math.ceil(config.DIAL_TIMEOUT_MS / 1000) });
    } catch (error) {
      if (this.#closed) return;
      this.#logger.error({ err: (error as Error).message }, 'call setup failed');
      await this.close('setup failed', 'congestion');
    }
  }

  /** What the routing decision needs from leg A; anything unreadable counts as absent. */
  async #readLegA(): Promise<LegAFacts> {
    const { ari, config } = this.#deps;
    const read = (name: string) =>
      ari
        .getVariable(this.legA.id, name)
        .then((value) => (value === '' ? undefined : value))
        .catch(() => undefined);
    const [requestUri, loopHeader, loopVariable, linkedId, ...headerValues] = await Promise.all([
      read('CHANNEL(pjsip,request_uri)'),
      read(`PJSIP_HEADER(read,${LOOP_HEADER})`),
      read(LOOP_VARIABLE),
      this.legA.linkedid ?? read('CHANNEL(linkedid)'),
      ...config.PASS_HEADERS.map((name) => read(`PJSIP_HEADER(read,${name})`)),
    ]);
    const headers = Object.fromEntries(config.PASS_HEADERS.map((name, index) => [name, headerValues[index]]));
    return { requestUri, loopHeader, loopVariable, linkedId: linkedId ?? this.legA.id, headers };
  }

  async #create<T>(request: Promise<T>): Promise<T> {
    this.#creating.add(request);
    try {
      return await request;
    } finally {
      this.#creating.delete(request);
    }
  }

  #onLegAEvent(event: AriEvent): void {
    if (event.type === 'StasisEnd' || event.type === 'ChannelDestroyed' || event.type === 'ChannelHangupRequest') {
      void this.close('caller hung up', 'normal');
    } else if (event.type === 'ChannelDtmfReceived') {
      this.#dtmf('A', event.digit, event.duration_ms);
    }
  }

  /** STREAM_DTMF: a digit pressed on a leg goes to the streams (ARI reports it once the key is released). */
  #dtmf(leg: 'A' | 'B', digit: string, durationMs: number): void {
    this.#logger.debug({ leg, digit, durationMs }, 'DTMF');
    if (this.#deps.config.STREAM_DTMF) this.#streams?.dtmf(leg, digit, durationMs);
  }

  #onLegBEvent(event: AriEvent): void {
    this.#logger.debug(
      {
        event: event.type,
        ...(event.type === 'Dial' && { dialstatus: event.dialstatus }),
        ...((event.type === 'ChannelDestroyed' || event.type === 'ChannelHangupRequest') && { cause: event.cause }),
      },
      'leg B event',
    );
    switch (event.type) {
      case 'Dial': {
        const status = event.dialstatus;
        if (status === 'RINGING' || status === 'PROGRESS') void this.#ringing();
        else if (status === 'ANSWER') void this.#answered();
        else if (status in FAILED_DIAL) void this.close(`callee ${status.toLowerCase()}`, FAILED_DIAL[status]);
        break;
      }
      case 'ChannelStateChange':
        if (event.channel.state === 'Up') void this.#answered();
        break;
      case 'ChannelDtmfReceived':
        this.#dtmf('B', event.digit, event.duration_ms);
        break;
      case 'ChannelHangupRequest':
      case 'StasisEnd':
        if (this.#state === 'answered') void this.close('callee hung up', 'normal');
        // Before answer, wait for ChannelDestroyed: only it carries the real cause (an ARI dial
        // timeout requests the hangup with cause 32 and destroys the channel with 19, no answer).
        break;
      case 'ChannelDestroyed':
        if (this.#state === 'answered') void this.close('callee hung up', 'normal');
        else void this.close(`callee failed (cause ${event.cause})`, reasonForCause(event.cause));
        break;
      default:
        break;
    }
  }

  async #ringing(): Promise<void> {
    if (this.#state !== 'dialling') return;
    this.#state = 'ringing';
    try {
      // An unanswered A gets a 180. An A already answered (e.g. after an IVR) cannot: chan_pjsip
      // refuses the indication and Asterisk's core then plays the ringing tone in-band
      // (indications.conf), which is the ringback the caller should hear.
      await this.#deps.ari.ring(this.legA.id);
    } catch (error) {
      this.#logger.warn({ err: (error as Error).message }, 'could not signal ringing to the caller');
    }
  }

  async #answered(): Promise<void> {
    if (this.#state === 'answered' || this.#state === 'closing') return;
    const wasRinging = this.#state === 'ringing';
    this.#state = 'answered';
    const { ari } = this.#deps;
    this.#logger.info('callee answered');
    try {
      if (wasRinging && this.legA.state === 'Up') await ari.ringStop(this.legA.id);
      if (this.legA.state !== 'Up') await ari.answer(this.legA.id);
      await this.#create(ari.createBridge(this.bridgeId, this.bridgeId));
      if (this.#closed) return;
      await ari.addToBridge(this.bridgeId, this.legA.id);
      await ari.addToBridge(this.bridgeId, this.legBId);
    } catch (error) {
      if (this.#closed) return;
      this.#logger.error({ err: (error as Error).message }, 'bridging the call failed');
      await this.close('bridge failed', 'congestion');
      return;
    }
    if (this.#closed) return;
    await ari.setVariable(this.legA.id, OUTCOME_VARIABLE, 'answered').catch(() => {});
    await this.#startTaps();
  }

  async #startTaps(): Promise<void> {
    const { ari, config } = this.#deps;
    const sipCallId = (channelId: string) => ari.getVariable(channelId, 'CHANNEL(pjsip,call-id)').catch(() => undefined);
    const [sipCallIdA, sipCallIdB] = await Promise.all([sipCallId(this.legA.id), sipCallId(this.legBId)]);
    const common = {
      callId: this.callId,
      linkedId: this.#linkedId,
      direction: this.#direction,
      caller: this.legA.caller.number ?? '',
      callee: this.#callee,
    };
    const identities: StreamIdentity[] = [
      { ...common, label: config.LEFT_CHANNEL_NAME, leg: 'A', channelId: this.legA.id, sipCallId: sipCallIdA ?? '' },
      { ...common, label: config.RIGHT_CHANNEL_NAME, leg: 'B', channelId: this.legBId, sipCallId: sipCallIdB ?? '' },
    ];
    if (this.#closed) return;
    const streams = createCallStreams(
      { config, connection: this.#deps.streamConnection, logger: this.#logger },
      identities[0]!,
      identities[1]!,
    );
    this.#streams = streams;
    streams.open();
    for (const identity of identities) {
      this.#taps.push(
        new LegTap({ ...this.#deps, logger: this.#logger }, identity, this.#transport, (frame) => streams.audio(identity.leg, frame)),
      );
    }
    await Promise.all(this.#taps.map((tap) => tap.start()));
  }

  /**
   * After the ARI event connection came back (`present`: the ids of the channels Asterisk
   * has now): a leg that is gone ended while nobody was listening, so the call ends.
   */
  reconcile(present: ReadonlySet<string>): void {
    if (this.#closed) return;
    if (!present.has(this.legA.id)) {
      void this.close('caller gone from Asterisk while ARI was disconnected', 'normal');
    } else if ((this.#state === 'ringing' || this.#state === 'answered') && !present.has(this.legBId)) {
      void this.close('callee gone from Asterisk while ARI was disconnected', this.#state === 'answered' ? 'normal' : 'congestion');
    }
  }

  /** Ends the call on every side; idempotent. `reasonForA` is how leg A is hung up. */
  close(why: string, reasonForA: HangupReason = 'normal'): Promise<void> {
    this.#closed ??= this.#close(why, reasonForA);
    return this.#closed;
  }

  async #close(why: string, reasonForA: HangupReason): Promise<void> {
    const answered = this.#state === 'answered';
    this.#state = 'closing';
    const { ari, events } = this.#deps;
    this.#logger.info({ reason: why, hangupCause: reasonForA }, 'call ending');
    events.cancel(this.legBId);
    await Promise.allSettled([...this.#creating]);
    if (!answered) await this.#deps.ari.setVariable(this.legA.id, OUTCOME_VARIABLE, outcomeOf(reasonForA)).catch(() => {});
    const steps: Promise<unknown>[] = [ari.hangup(this.legA.id, reasonForA), ...this.#taps.map((tap) => tap.close(why))];
    // Hang up and destroy by id whether or not creation was seen to finish: "already gone" is not an error.
    steps.push(ari.hangup(this.legBId));
    for (const result of await Promise.allSettled(steps)) {
      if (result.status === 'rejected') this.#logger.warn({ err: String(result.reason) }, 'call cleanup request failed');
    }
    // After the taps: every frame they delivered is in the streams before these close.
    await this.#streams?.finish(why);
    await ari.destroyBridge(this.bridgeId).catch((error) => this.#logger.warn({ err: String(error) }, 'destroying the call bridge failed'));
    for (const release of this.#releases.splice(0)) release();
    this.#logger.info({ reason: why }, 'call ended');
    this.#onClosed?.();
  }
}
