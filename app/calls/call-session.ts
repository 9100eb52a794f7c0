/**
 * One call: the caller's channel (leg A) that entered the Stasis app, the
 * called party's channel (leg B) that we originate, the bridge joining them,
 * and one tap per leg. The session owns all of them and tears all of them down
 * when the call ends: either side hanging up, B failing.
 *
 *   StasisStart(A) → plan (inbound-plan.ts: loop, host domain, number, route) → create B → dial B,
 *                    and build the taps of A (CALLER1) and B (CALLER2) meanwhile
 *     B rings     → ring A (a 180, or in-band ringback when A is already answered)
 *     B answers   → open the streams (the taps' audio flows to them), answer A, bridge A+B
 *     B fails     → hang A up with the matching cause (busy, no answer, ...)
 *     either ends → hang up the other, close taps, destroy bridges
 *
 * Only a party hanging up, or the call failing to connect, ends a call. The
 * service itself going away does not: while the call is set up, what a new
 * instance needs is written on leg A (call-record.ts), and a session can be
 * rebuilt from it (adopt) with the same call id, labels and metadata, its
 * streams resumed. When the service stops, release() lets go of the call
 * (streams closed with the reason, taps removed, the call left up); when
 * another instance took the app over, detach() lets go without a word to
 * Asterisk.
 *
 * A party can transfer the call (REFER; transfer.ts): the leg's channel then
 * changes, the new party is tapped and its stream told, and the record is
 * written on the legs the call has then. A party putting the call on hold is
 * told to the streams (and, with PAUSE_ON_HOLD, pauses the transcription).
 *
 * The call never depends on the transcription side: taps and streams log
 * their own failures and the call goes on.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AriChannel, AriEvent, AriPort, HangupReason } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import type { TapTransportFactory } from '../media/tap-transports.js';
import type { MediaTransportKind } from '../media/tap-transport.js';
import type { StreamIdentity } from '../transcription/stream-messages.js';
import type { CallStreams, CallStreamsFactory, Leg } from '../transcription/call-streams.js';
import type { StreamSummary } from '../transcription/websocket-stream.js';
import { AppError } from '../errors.js';
import { parseStasisArgs } from '../routing/stasis-args.js';
import { isAgentCall } from '../routing/call-origin.js';
import { runInCall, type CallContext } from './call-context.js';
import { checkMeta, META_HASH, metaKeys } from './call-meta.js';
import { DtmfCodeDetector } from './dtmf-code.js';
import {
  BlindTransfer,
  mergeCalls,
  reportProgress,
  type MergeParty,
  type TransferHost,
  type TransferReason,
  type TransferRequest,
} from './transfer.js';
import { TransferCodeCollector, type TransferCodeStep } from './transfer-code.js';
import { FAILED_DIAL, OUTCOME_VARIABLE, outcomeOf, reasonForCause } from './call-outcome.js';
import { CALL_RECORD_VARIABLE, encodeCallRecord, type CallRecord, type CallRecordState } from './call-record.js';
import type { ChannelEvents } from './channel-events.js';
import {
  LOOP_HEADER,
  LOOP_VARIABLE,
  planDestination,
  transferArgs,
  planInboundCall,
  TRANSFER_HANDLING_VARIABLE,
  type InboundPlan,
  type LegAFacts,
} from './inbound-plan.js';
import { LegTap } from './leg-tap.js';
import { CALL_BRIDGE_PREFIX, LEG_B_PREFIX } from './reconcile-plan.js';

/** What a call reports to the service's metrics (ops/metrics.ts); every method is cheap and never throws. */
export interface CallMetrics {
  callEnded(outcome: CallEndOutcome): void;
  /** StasisStart to every stream of the call connected. */
  setupSeconds(seconds: number): void;
  /** Tapped audio reaching the service to its frame leaving on the websocket. */
  frameLatencyMs(ms: number): void;
  framesReceived(leg: Leg): void;
  tapReplaced(transport: MediaTransportKind): void;
  /** Counters of a call's streams when it ends (the live ones are read at each scrape). */
  streamsEnded(summaries: readonly StreamSummary[], provider: string): void;
}

/** How a call ended, as counted: label values of `transcription_proxy_calls_total`. */
export type CallEndOutcome = 'completed' | 'busy' | 'no_answer' | 'refused' | 'failed' | 'handed_back' | 'released' | 'handed_over';

export interface CallDeps {
  ari: AriPort;
  events: ChannelEvents;
  transports: TapTransportFactory;
  createStreams: CallStreamsFactory;
  config: Config;
  logger: Logger;
  metrics?: CallMetrics | undefined;
  /** The call of the service's that has `channelId` as a leg (an attended transfer joins two calls). */
  findCall?: ((channelId: string) => CallSession | undefined) | undefined;
}

/** The taps of a call's two legs and the identities of their streams, built before the streams open. */
interface PreparedTaps {
  identities: [StreamIdentity, StreamIdentity];
  taps: LegTap[];
  /** Settles once both taps are built (or failed: a tap logs its own failure). */
  started: Promise<void>;
}

export type CallState = 'routing' | 'dialling' | 'ringing' | 'answered' | 'closing';

/** How a session begins: a call to route (new, or found in Asterisk before it got a leg B), or one to adopt. */
export type CallOrigin =
  | { kind: 'new'; args: readonly string[]; callId?: string | undefined }
  | { kind: 'adopt'; legB: AriChannel; record: CallRecord | undefined; bridgeId?: string | undefined };

/**
 * Set on leg A before handing it back to the dialplan untranscribed (ARI continue): Stasis()
 * then returns SUCCESS, and the shipped dialplan runs its fallback when this is set.
 */
export const FALLBACK_VARIABLE = 'TRANSCRIPTION_PROXY_FALLBACK';

/**
 * Pause from the dialplan, a feature code or AMI: set on either leg, `1` pauses the call's
 * transcription and `0` resumes it (the service sees the ChannelVarset at once).
 */
export const PAUSE_VARIABLE = 'TRANSCRIPTION_PAUSE';

/** Why transcription is paused: the operations API, the channel variable (dialplan, AMI), the phone (PAUSE_DTMF_CODE). PAUSE_ON_HOLD pauses apart from these. */
export type PauseSource = 'api' | 'dialplan' | 'dtmf';

const PAUSE_ON = new Set(['1', 'yes', 'true', 'on']);

/** What GET /calls shows of a call: no phone numbers (the endpoint is for operators, not for data). */
export interface CallDescription {
  callId: string;
  state: CallState;
  direction: 'inbound' | 'outbound';
  transport: MediaTransportKind;
  startedAt: string;
  answeredAt: string | undefined;
  paused: boolean;
  transcribing: boolean;
  legs: { leg: Leg; label: string; channelId: string }[];
  streams: (StreamSummary & { name: string })[];
}

const silenceBySize = new Map<number, Buffer>();
/** A frame of silence the size of `frame` (shared: it is never written to). */
function silenceLike(frame: Buffer): Buffer {
  let silence = silenceBySize.get(frame.length);
  if (silence === undefined) {
    silence = Buffer.alloc(frame.length);
    silenceBySize.set(frame.length, silence);
  }
  return silence;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function callIdOf(origin: CallOrigin, args: readonly string[]): string {
  if (origin.kind === 'adopt') {
    const fromBridge = origin.bridgeId?.slice(CALL_BRIDGE_PREFIX.length);
    return origin.record?.callId ?? (fromBridge !== undefined && UUID.test(fromBridge) ? fromBridge : randomUUID());
  }
  // The `call` command picks the id (call-id=) so it can print it before the call connects.
  const parsed = parseStasisArgs(args);
  return origin.callId ?? (parsed.ok ? parsed.args.callId : undefined) ?? randomUUID();
}

/** Played to a party that keys BLIND_TRANSFER_CODE until its first digit (Asterisk's core sound, also FreePBX's). */
export const TRANSFER_PROMPT = 'sound:pbx-transfer';

/** How long a leg's old tap feeds its stream after a transfer, at most, while the new party's tap starts. */
const TAP_SWITCH_TIMEOUT_MS = 1500;
/**
 * Times each step of bridging an answered call is asked of Asterisk when it does not answer in
 * time (the adapter's 10 s): an Asterisk that slow is overloaded, not failed, and the callee is
 * on the line; giving up would drop the call. The steps are safe to ask again (an existing
 * bridge is success, answering an answered channel and adding a channel to its own bridge
 * change nothing).
 */
const ANSWER_ATTEMPTS = 3;
/**
 * PAUSE_ON_HOLD: how long after the unhold the streams stay silent. A phone's last audio of the
 * hold is still on its way through Asterisk's bridge, the snoop and the tap when its re-INVITE's
 * ChannelUnhold arrives (40 ms on the test bed); resuming at once would send it.
 */
export const HOLD_RESUME_DELAY_MS = 200;

export class CallSession {
  readonly callId: string;
  readonly bridgeId: string;
  /** Leg A's channel: the caller's, until a transfer puts another party on the caller's side. */
  #legA: AriChannel;
  #legBId: string;
  /** Leg B's channel as last seen (an attended transfer hands it to another call). */
  #legB: AriChannel | undefined;
  /** When the session began (ms since the epoch). */
  readonly startedAt = Date.now();
  readonly #deps: CallDeps;
  readonly #logger: Logger;
  readonly #origin: CallOrigin;
  readonly #releases: (() => void)[] = [];
  /** Each leg's event ownership (a transfer moves it to the leg's new channel). */
  readonly #legOwners: Partial<Record<Leg, () => void>> = {};
  /** Every tap the call made (a transfer adds one); all are closed at the end. */
  readonly #taps: LegTap[] = [];
  /** The tap whose frames each leg's stream carries. */
  readonly #currentTap: Partial<Record<Leg, LegTap>> = {};
  /** A leg's new tap after a transfer, until its first frame (or TAP_SWITCH_TIMEOUT_MS) makes it current. */
  readonly #switching: Partial<Record<Leg, { tap: LegTap; identity: StreamIdentity; reason: TransferReason; timer?: NodeJS.Timeout }>> = {};
  /** Each leg's stream identity, as the streams were last told. */
  readonly #identities: Partial<Record<Leg, StreamIdentity>> = {};
  readonly #transfers = new Set<BlindTransfer>();
  /** The legs that have the call on hold (ChannelHold until ChannelUnhold). */
  readonly #onHold = new Set<Leg>();
  /** PAUSE_ON_HOLD: paused because a party has the call on hold. */
  #holdPaused = false;
  /** PAUSE_ON_HOLD: when (performance.now()) the last hold ended; the pause ends at the first frame HOLD_RESUME_DELAY_MS later. */
  #holdResumeAt: number | undefined;
  /** A leg given up to another call by an attended transfer: never hung up by this one. */
  #yielded: Leg | undefined;
  /** The number of leg A's party (the metadata's `caller`): the caller's, until a transfer changes the party. */
  #callerNumber: string;
  /** Which party each leg carries: 1 for the first, +1 per transfer. */
  #sequences: [number, number];
  /** PASS_HEADERS values of leg A's INVITE (also put on a transfer's target). */
  #passHeaders: Readonly<Record<string, string | undefined>> = {};
  #streams: CallStreams | undefined;
  /** Both legs' taps, once built (#prepareTaps). */
  #preparedTaps: Promise<PreparedTaps> | undefined;
  #state: CallState = 'routing';
  /** Creation requests still in flight: close() waits for them so nothing is created after the teardown. */
  readonly #creating = new Set<Promise<unknown>>();
  readonly #args: readonly string[];
  #callee = '';
  #linkedId = '';
  #direction: 'inbound' | 'outbound' = 'inbound';
  #transport: MediaTransportKind;
  #labels: [string, string];
  #answeredAt: number | undefined;
  /** Routing decided where leg B goes (or the call was adopted): the record carries leg B. */
  #planned: boolean;
  /** The call's own data for the metadata (PASS_HEADERS, TRANSCRIPTION_META). */
  #meta: Record<string, string>;
  /** Transcription paused (TRANSCRIPTION_PAUSE=1 on the legs, which the service keeps equal). */
  #paused = false;
  /** Transcription stopped for the call by an operator (the call goes on). */
  #stopped = false;
  #outcome: CallEndOutcome | undefined;
  #streamsReported = false;
  /** PAUSE_DTMF_CODE on each leg. */
  readonly #pauseCode: Record<Leg, DtmfCodeDetector>;
  /** BLIND_TRANSFER_CODE on each leg, and the timer of its deadline (a held digit, a target's next digit). */
  readonly #transferCode: Record<Leg, { collector: TransferCodeCollector; durationsMs: number[]; timer?: NodeJS.Timeout }>;
  /** The prompt playing to a leg that keyed BLIND_TRANSFER_CODE (its playback id), until its next digit. */
  readonly #transferPrompts: Partial<Record<Leg, string>> = {};
  /** Record writes, in order, off the call's critical path. */
  #recordWrites: Promise<void> = Promise.resolve();
  /** Ends an adopted call whose B was never dialled (see #adopt). */
  #adoptedDialGuard: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  /** Everything this call does runs in it, so an error nobody caught is traced to this call (call-context.ts). */
  readonly #context: CallContext;

  constructor(deps: CallDeps, legA: AriChannel, origin: CallOrigin) {
    this.#deps = deps;
    this.#legA = legA;
    this.#origin = origin;
    const record = origin.kind === 'adopt' ? origin.record : undefined;
    this.#args = origin.kind === 'new' ? origin.args : (record?.args ?? []);
    this.callId = callIdOf(origin, this.#args);
    this.#legBId = origin.kind === 'adopt' ? origin.legB.id : `${LEG_B_PREFIX}${randomUUID()}`;
    this.#legB = origin.kind === 'adopt' ? origin.legB : undefined;
    this.bridgeId = origin.kind === 'adopt' && origin.bridgeId !== undefined ? origin.bridgeId : `${CALL_BRIDGE_PREFIX}${this.callId}`;
    this.#transport = record?.transport ?? deps.config.MEDIA_TRANSPORT;
    this.#direction = record?.direction ?? 'inbound';
    this.#callee = record?.callee ?? '';
    this.#linkedId = record?.linkedId ?? legA.linkedid ?? legA.id;
    this.#labels = record?.labels ?? [deps.config.LEFT_CHANNEL_NAME, deps.config.RIGHT_CHANNEL_NAME];
    this.#answeredAt = record?.answeredAt;
    this.#planned = origin.kind === 'adopt';
    this.#meta = { ...(record?.meta ?? {}) };
    this.#callerNumber = record?.caller ?? legA.caller.number ?? '';
    this.#sequences = record?.sequences ?? [1, 1];
    for (const leg of record?.onHold ?? []) this.#onHold.add(leg);
    this.#holdPaused = deps.config.PAUSE_ON_HOLD && this.#onHold.size > 0;
    this.#pauseCode = { A: new DtmfCodeDetector(deps.config.PAUSE_DTMF_CODE), B: new DtmfCodeDetector(deps.config.PAUSE_DTMF_CODE) };
    const transferCode = () => ({
      collector: new TransferCodeCollector(deps.config.BLIND_TRANSFER_CODE, 2000, deps.config.TRANSFER_DIGIT_TIMEOUT_MS),
      durationsMs: [],
    });
    this.#transferCode = { A: transferCode(), B: transferCode() };
    this.#logger = deps.logger.child({ callId: this.callId, channelId: legA.id });
    this.#context = {
      callId: this.callId,
      channelId: legA.id,
      onUnexpectedError: () => {
        this.#stopped = true;
        void this.#finishStreams('the service hit an unexpected error in this call; it goes on untranscribed');
      },
    };
  }

  get state(): CallState {
    return this.#state;
  }

  get legA(): AriChannel {
    return this.#legA;
  }

  get legBId(): string {
    return this.#legBId;
  }

  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** Transcription paused: by an operator, the dialplan or the phone, or (PAUSE_ON_HOLD) by a hold. */
  get paused(): boolean {
    return this.#paused || this.#holdPaused;
  }

  /** True while any tap of this call still holds a socket (for leak checks). */
  get holdsSockets(): boolean {
    return this.#taps.some((tap) => tap.holdsSockets) || (this.#streams?.holdsSockets ?? false);
  }

  /** Every channel and bridge this call holds or is creating in Asterisk (leftover sweeps must spare them). */
  ownedIds(): { channels: string[]; bridges: string[] } {
    const taps = this.#taps.map((tap) => tap.ownedIds());
    return {
      channels: [this.legA.id, this.legBId, ...[...this.#transfers].flatMap((t) => t.ownedIds()), ...taps.flatMap((tap) => tap.channels)],
      bridges: [this.bridgeId, ...taps.flatMap((tap) => tap.bridges)],
    };
  }

  onClosed(handler: () => void): void {
    this.#onClosed = handler;
  }

  /** Runs the call from where its origin left it; failures end the call, never the process. */
  start(): Promise<void> {
    return runInCall(this.#context, () => this.#start());
  }

  async #start(): Promise<void> {
    this.#ownLeg('A', this.legA.id);
    this.#ownLeg('B', this.legBId);
    try {
      if (this.#origin.kind === 'adopt') await this.#adopt(this.#origin.legB, this.#origin.bridgeId !== undefined);
      else await this.#route();
    } catch (error) {
      if (this.#closed) return;
      this.#logger.error({ err: error }, 'call setup failed');
      await this.close('setup failed', 'congestion');
    }
  }

  async #route(): Promise<void> {
    const { ari, events, config } = this.#deps;
    void this.#writeRecord('routing');
    const facts = await this.#readLegA();
    this.#linkedId = facts.linkedId;
    this.#passHeaders = facts.headers;
    void this.#transfersToApp(this.legA.id);
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
    this.#planned = true;
    void this.#writeRecord('routing');
    await this.#create(
      ari.createChannel({
        channelId: this.legBId,
        endpoint: plan.dialString,
        appArgs: 'leg-b',
        originator: this.legA.id,
        variables: plan.variables,
      }),
    );
    const legBStart = await legBStarted;
    if (legBStart.type === 'StasisStart') this.#legB = legBStart.channel;
    if (this.#closed) return;
    // Written before the dial, so that a crash once B may ring leaves a record an instance adopts
    // (B rings on in Asterisk), never one it re-routes (a second B to the same callee).
    await this.#writeRecord('dialling');
    if (this.#closed) return;
    // The taps are built while B rings (the first audio then reaches the server moments after
    // the answer, not after a dozen ARI requests); they deliver nothing before the answer.
    void this.#prepareTaps();
    // No `caller`: it would copy A's caller ID to B unchecked (the plan sets B's connected line).
    await ari.dial(this.legBId, { timeoutSeconds: Math.ceil(config.DIAL_TIMEOUT_MS / 1000) });
  }

  /**
   * Carries on with a call another instance set up. Bridged: tap both legs again and resume
   * the streams where the call is now. Not bridged yet: wait for B (its Dial goes on in
   * Asterisk whoever listens), or, if B answered meanwhile, bridge it now.
   */
  async #adopt(legB: AriChannel, bridged: boolean): Promise<void> {
    void this.#transfersToApp(this.legA.id);
    void this.#transfersToApp(legB.id);
    const pause = await this.#deps.ari.getVariable(this.legA.id, PAUSE_VARIABLE).catch(() => undefined);
    this.#paused = pause !== undefined && PAUSE_ON.has(pause.toLowerCase());
    if (bridged) {
      this.#state = 'answered';
      this.#answeredAt ??= Date.now();
      this.#logger.info({ transport: this.#transport, resumedAtMs: Date.now() - this.#answeredAt }, 'call adopted');
      await this.#startTaps({ resumedAtMs: Date.now() - this.#answeredAt, bridged: true });
      return;
    }
    this.#logger.info({ legBState: legB.state }, 'call adopted before it was bridged');
    if (legB.state === 'Up') {
      await this.#answered();
    } else {
      this.#state = legB.state === 'Ringing' ? 'ringing' : 'dialling';
      // Asterisk's dial timeout ends a B that was dialled; this one ends a B the crashed
      // instance recorded but never got to dial (nothing else would ever answer or end it).
      this.#adoptedDialGuard = setTimeout(() => {
        if (this.#state === 'dialling' || this.#state === 'ringing') void this.close('callee no answer', 'no_answer');
      }, this.#deps.config.DIAL_TIMEOUT_MS);
      this.#adoptedDialGuard.unref();
    }
  }

  /**
   * PJSIP_TRANSFER_HANDLING(ari-only) on a leg: its REFER comes to the app (transfer.ts), not
   * to Asterisk's core. Leg B and transfer targets get it when created; a channel that is not
   * PJSIP refuses it, and its transfers stay Asterisk's (docs/transfers.md).
   */
  async #transfersToApp(channelId: string): Promise<void> {
    await this.#deps.ari.setVariable(channelId, TRANSFER_HANDLING_VARIABLE, 'ari-only').catch((error: unknown) => {
      this.#logger.debug({ err: error, legChannelId: channelId }, 'transfers on this leg stay with Asterisk (not a PJSIP channel?)');
    });
  }

  /** Queues a write of what a new instance needs on leg A (and B, once answered); a failure is logged, the call goes on. */
  #writeRecord(state: CallRecordState): Promise<void> {
    const record: CallRecord = {
      version: 1,
      callId: this.callId,
      state,
      args: [...this.#args],
      ...(this.#planned && {
        legB: this.legBId,
        direction: this.#direction,
        transport: this.#transport,
        callee: this.#callee,
        linkedId: this.#linkedId,
      }),
      ...(state === 'answered' && { labels: this.#labels, answeredAt: this.#answeredAt }),
      ...(Object.keys(this.#meta).length > 0 && { meta: this.#meta }),
      ...(this.#planned && { legA: this.legA.id }),
      ...(this.#callerNumber !== (this.legA.caller.number ?? '') && { caller: this.#callerNumber }),
      ...((this.#sequences[0] > 1 || this.#sequences[1] > 1) && { sequences: [...this.#sequences] as [number, number] }),
      ...(this.#onHold.size > 0 && { onHold: [...this.#onHold] }),
    };
    // Answered, the record is on both legs: after a transfer either may be the one a new instance finds.
    const channels = state === 'answered' ? [this.legA.id, this.legBId] : [this.legA.id];
    this.#recordWrites = this.#recordWrites.then(async () => {
      if (this.#closed) return;
      const text = encodeCallRecord(record);
      for (const result of await Promise.allSettled(channels.map((id) => this.#deps.ari.setVariable(id, CALL_RECORD_VARIABLE, text)))) {
        if (result.status === 'rejected' && !this.#closed)
          this.#logger.warn(
            { err: result.reason, state },
            'could not write the call record on a leg; another instance could not adopt this call',
          );
      }
    });
    return this.#recordWrites;
  }

  /** What the routing decision needs from leg A; anything unreadable counts as absent. */
  async #readLegA(): Promise<LegAFacts> {
    const { ari, config } = this.#deps;
    const read = (name: string) =>
      ari
        .getVariable(this.legA.id, name)
        .then((value) => (value === '' ? undefined : value))
        .catch(() => undefined);
    const [requestUri, loopHeader, loopVariable, linkedId, pause, hashKeys, ...headerValues] = await Promise.all([
      read('CHANNEL(pjsip,request_uri)'),
      read(`PJSIP_HEADER(read,${LOOP_HEADER})`),
      read(LOOP_VARIABLE),
      this.legA.linkedid ?? read('CHANNEL(linkedid)'),
      read(PAUSE_VARIABLE),
      read(`HASHKEYS(${META_HASH})`),
      ...config.PASS_HEADERS.map((name) => read(`PJSIP_HEADER(read,${name})`)),
    ]);
    const headers = Object.fromEntries(config.PASS_HEADERS.map((name, index) => [name, headerValues[index]]));
    if (pause !== undefined && PAUSE_ON.has(pause.toLowerCase())) this.#paused = true;
    await this.#readMeta(headers, hashKeys, read);
    return { requestUri, loopHeader, loopVariable, linkedId: linkedId ?? this.legA.id, headers };
  }

  /** The metadata's `meta`: the PASS_HEADERS values, then the dialplan's TRANSCRIPTION_META hash. */
  async #readMeta(
    headers: Record<string, string | undefined>,
    hashKeys: string | undefined,
    read: (name: string) => Promise<string | undefined>,
  ): Promise<void> {
    const { keys, refused: badKeys } = metaKeys(hashKeys);
    const values = await Promise.all(keys.map((key) => read(`HASH(${META_HASH},${key})`)));
    const { meta, refused } = checkMeta([...Object.entries(headers), ...keys.map((key, i) => [key, values[i]] as const)]);
    this.#meta = meta;
    const left = [...badKeys.map((key) => ({ key: key.slice(0, 64), why: 'not a plain name' })), ...refused];
    if (left.length > 0) this.#logger.warn({ refused: left }, 'call data left out of the stream metadata');
  }

  async #create<T>(request: Promise<T>): Promise<T> {
    this.#creating.add(request);
    try {
      return await request;
    } finally {
      this.#creating.delete(request);
    }
  }

  /** Sends `leg`'s events (of channel `channelId`, its channel now) to the leg's handler; the old channel's go nowhere. */
  #ownLeg(leg: Leg, channelId: string): void {
    this.#legOwners[leg]?.();
    const handler = leg === 'A' ? (event: AriEvent) => this.#onLegAEvent(event) : (event: AriEvent) => this.#onLegBEvent(event);
    this.#legOwners[leg] = this.#deps.events.own(channelId, (event) => runInCall(this.#context, () => handler(event)));
  }

  /** What both legs' events share: transfers and hold. True when the event was one of them. */
  #onLegEvent(leg: Leg, event: AriEvent): boolean {
    if (event.type === 'ChannelTransfer') {
      if (event.state === undefined) void this.#onTransferRequest(leg, event);
      return true;
    }
    if (event.type === 'ChannelHold' || event.type === 'ChannelUnhold') {
      this.#onHoldChange(leg, event.type === 'ChannelHold');
      return true;
    }
    return false;
  }

  /** The leg's channel is ending while a blind transfer of it is pending: the call waits for the target. */
  #transfererLeaving(leg: Leg): boolean {
    const channelId = leg === 'A' ? this.legA.id : this.legBId;
    const transfer = [...this.#transfers].find((t) => t.isPending && t.transfererId === channelId);
    transfer?.transfererLeft();
    return transfer !== undefined;
  }

  #onLegAEvent(event: AriEvent): void {
    if (this.#onLegEvent('A', event)) return;
    if (event.type === 'StasisEnd' || event.type === 'ChannelDestroyed' || event.type === 'ChannelHangupRequest') {
      if (this.#transfererLeaving('A')) return;
      void this.close('caller hung up', 'normal');
    } else if (event.type === 'ChannelDtmfReceived') {
      this.#dtmf('A', event.digit, event.duration_ms);
    } else if (event.type === 'ChannelVarset') {
      this.#onVariable(event.variable, event.value);
    }
  }

  /** TRANSCRIPTION_PAUSE set on either leg (dialplan, feature code, AMI): pause or resume at once. */
  #onVariable(name: string, value: string): void {
    if (name !== PAUSE_VARIABLE) return;
    if (PAUSE_ON.has(value.trim().toLowerCase())) this.pause('dialplan');
    else this.resume('dialplan');
  }

  /**
   * A digit pressed on a leg (ARI reports it once the key is released): the feature codes
   * (PAUSE_DTMF_CODE, BLIND_TRANSFER_CODE and the number after it) are the service's and go
   * no further; any other digit goes to the streams with STREAM_DTMF, never while paused (when
   * the digits are what the pause protects: a card number).
   */
  #dtmf(leg: Leg, digit: string, durationMs: number): void {
    const code = this.#transferCode[leg];
    const now = Date.now();
    this.#stopTransferPrompt(leg);
    if (!code.collector.collecting && this.#pauseCode[leg].push(digit, now)) {
      code.collector.reset();
      code.durationsMs.length = 0;
      this.#setPaused(!this.#paused, 'dtmf');
    } else {
      code.durationsMs.push(durationMs);
      for (const step of code.collector.push(digit, now)) this.#onTransferCode(leg, step);
    }
    this.#armTransferCode(leg);
  }

  /** A digit not part of a feature code. */
  #ordinaryDtmf(leg: Leg, digit: string, durationMs: number): void {
    if (this.paused) return;
    this.#logger.debug({ leg, digit, durationMs }, 'DTMF');
    if (this.#deps.config.STREAM_DTMF) this.#streams?.dtmf(leg, digit, durationMs);
  }

  /** What the BLIND_TRANSFER_CODE collector made of a leg's digits. The code and the number are never logged here. */
  #onTransferCode(leg: Leg, step: TransferCodeStep): void {
    // The durations of the digits held, oldest first: passed digits are always the oldest.
    const durations = this.#transferCode[leg].durationsMs;
    if (step.kind !== 'pass') durations.length = 0;
    switch (step.kind) {
      case 'pass':
        for (const digit of step.digits) this.#ordinaryDtmf(leg, digit, durations.shift() ?? 0);
        break;
      case 'code':
        this.#logger.info({ leg }, 'transfer code keyed; collecting the number');
        void this.#playTransferPrompt(leg);
        break;
      case 'abandoned':
        this.#stopTransferPrompt(leg);
        this.#logger.info({ leg }, 'transfer code keyed, but no number followed');
        break;
      case 'transfer':
        this.#stopTransferPrompt(leg);
        if (this.#canTransfer(leg)) void this.#blindTransfer(leg, step.number, 'feature-code');
        break;
    }
  }

  /**
   * "Transfer" to the party that keyed the code, as Asterisk's own blind transfer says it. ARI
   * plays it to that channel alone, in the call bridge; the party's tap reads what the phone
   * sends, so the prompt is in no stream.
   */
  async #playTransferPrompt(leg: Leg): Promise<void> {
    const playbackId = `transfer-prompt-${randomUUID()}`;
    this.#transferPrompts[leg] = playbackId;
    try {
      await this.#deps.ari.play(this.#legId(leg), playbackId, TRANSFER_PROMPT);
      this.#logger.debug({ leg }, 'transfer prompt playing');
      // A digit came while the request was on its way: its stop found nothing to stop.
      if (this.#transferPrompts[leg] !== playbackId) await this.#deps.ari.stopPlayback(playbackId);
    } catch (error) {
      if (this.#transferPrompts[leg] === playbackId) delete this.#transferPrompts[leg];
      this.#logger.warn({ err: error, leg }, 'could not play the transfer prompt; collecting the number anyway');
    }
  }

  #stopTransferPrompt(leg: Leg): void {
    const playbackId = this.#transferPrompts[leg];
    if (playbackId === undefined) return;
    delete this.#transferPrompts[leg];
    this.#deps.ari.stopPlayback(playbackId).catch((error: unknown) => {
      this.#logger.debug({ err: error, leg }, 'could not stop the transfer prompt');
    });
  }

  /** Wakes the leg's collector at its deadline (digits held for a code that did not come, a number complete). */
  #armTransferCode(leg: Leg): void {
    const code = this.#transferCode[leg];
    clearTimeout(code.timer);
    const deadline = code.collector.deadlineMs;
    if (deadline === undefined || this.#closed) return;
    code.timer = setTimeout(
      () =>
        runInCall(this.#context, () => {
          const step = code.collector.expire(Date.now());
          if (step !== undefined) this.#onTransferCode(leg, step);
          this.#armTransferCode(leg);
        }),
      Math.max(0, deadline - Date.now()),
    );
    code.timer.unref();
  }

  #onLegBEvent(event: AriEvent): void {
    if (this.#onLegEvent('B', event)) return;
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
      case 'ChannelVarset':
        this.#onVariable(event.variable, event.value);
        break;
      case 'ChannelHangupRequest':
      case 'StasisEnd':
        if (this.#state === 'answered' && this.#transfererLeaving('B')) break;
        if (this.#state === 'answered') void this.close('callee hung up', 'normal');
        // Before answer, wait for ChannelDestroyed: only it carries the real cause (an ARI dial
        // timeout requests the hangup with cause 32 and destroys the channel with 19, no answer).
        break;
      case 'ChannelDestroyed':
        if (this.#state === 'answered' && this.#transfererLeaving('B')) break;
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
      this.#logger.warn({ err: error }, 'could not signal ringing to the caller');
    }
  }

  async #answered(): Promise<void> {
    if (this.#state === 'answered' || this.#state === 'closing') return;
    const wasRinging = this.#state === 'ringing';
    this.#state = 'answered';
    this.#answeredAt = Date.now();
    const { ari } = this.#deps;
    this.#logger.info('callee answered');
    // The streams open while A and B are bridged: what B says at once is B's first words.
    const taps = this.#startTaps({ bridged: false });
    try {
      // Side by side (each channel its own request): the bridge is made while A is answered,
      // and B (up already) joins it while A does. The taps hear a leg once it is in the bridge.
      const bridge = this.#create(this.#patiently('createBridge', () => ari.createBridge(this.bridgeId, ari.app)));
      const legAUp = (async () => {
        if (wasRinging && this.legA.state === 'Up') await this.#patiently('ringStop', () => ari.ringStop(this.legA.id));
        if (this.legA.state !== 'Up') await this.#patiently('answer', () => ari.answer(this.legA.id));
      })();
      const join = (channelId: string) =>
        this.#closed ? undefined : this.#patiently('addToBridge', () => ari.addToBridge(this.bridgeId, channelId));
      const joinB = bridge.then(() => join(this.legBId));
      const joinA = Promise.all([bridge, legAUp]).then(() => join(this.legA.id));
      for (const step of await Promise.allSettled([bridge, legAUp, joinA, joinB])) if (step.status === 'rejected') throw step.reason;
    } catch (error) {
      if (this.#closed) return;
      this.#logger.error({ err: error }, 'bridging the call failed');
      await this.close('bridge failed', 'congestion');
      return;
    }
    if (this.#closed) return;
    // Both legs are up and bridged: their taps must hear them from now on.
    void taps.then(() => this.#expectAudio());
    await Promise.all([
      ari.setVariable(this.legA.id, OUTCOME_VARIABLE, 'answered').catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not set the call outcome on leg A');
      }),
      this.#writeRecord('answered'),
      taps,
    ]);
  }

  /** A step of the answer, asked again while Asterisk times out (ANSWER_ATTEMPTS) and the call is on. */
  async #patiently<T>(step: string, request: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request();
      } catch (error) {
        if (!(error instanceof AppError && error.retryable) || attempt >= ANSWER_ATTEMPTS || this.#closed) throw error;
        this.#logger.warn({ err: error, step, attempt }, 'Asterisk is slow to answer; asking again');
      }
    }
  }

  /**
   * Builds both legs' taps, once (while B rings, or at the answer of a call adopted before
   * it): their frames go nowhere until #startTaps opens the streams. A failure is the taps'
   * own (logged, the call goes on untapped on that leg).
   */
  #prepareTaps(): Promise<PreparedTaps> {
    this.#preparedTaps ??= this.#buildTaps();
    return this.#preparedTaps;
  }

  async #buildTaps(): Promise<PreparedTaps> {
    const { config } = this.#deps;
    const [sipCallIdA, sipCallIdB] = await Promise.all([this.#sipCallId(this.legA.id), this.#sipCallId(this.legBId)]);
    const common = {
      callId: this.callId,
      linkedId: this.#linkedId,
      direction: this.#direction,
      caller: this.#callerNumber,
      callee: this.#callee,
      node: config.NODE_NAME,
      meta: this.#meta,
    };
    const sequence = (leg: Leg) => (this.#sequences[leg === 'A' ? 0 : 1] > 1 ? { sequence: this.#sequences[leg === 'A' ? 0 : 1] } : {});
    const identities: [StreamIdentity, StreamIdentity] = [
      { ...common, label: this.#labels[0], leg: 'A', channelId: this.legA.id, sipCallId: sipCallIdA ?? '', ...sequence('A') },
      { ...common, label: this.#labels[1], leg: 'B', channelId: this.legBId, sipCallId: sipCallIdB ?? '', ...sequence('B') },
    ];
    if (this.#closed) return { identities, taps: [], started: Promise.resolve() };
    const taps = identities.map((identity) => {
      this.#identities[identity.leg] = identity;
      const tap = this.#newTap(identity);
      this.#currentTap[identity.leg] = tap;
      return tap;
    });
    const started = Promise.all(taps.map((tap) => tap.start({ audioExpected: false }))).then(() => {});
    return { identities, taps, started };
  }

  /**
   * Opens the streams of the call's taps (built now if they were not while B rang).
   * `bridged`: A and B are in the call bridge already (an adopted call), so their taps
   * hear them now; otherwise #answered says so once they are (#expectAudio).
   */
  async #startTaps(options: { resumedAtMs?: number; bridged: boolean }): Promise<void> {
    const { identities, taps, started } = await this.#prepareTaps();
    if (this.#closed || taps.length === 0) return;
    if (options.bridged) this.#expectAudio();
    const metrics = this.#deps.metrics;
    const adopted = options.resumedAtMs !== undefined;
    const streams = this.#deps.createStreams(identities[0], identities[1], {
      logger: this.#logger,
      resumedAtMs: options.resumedAtMs,
      // Set-up time of a call this instance set up: from its StasisStart to every stream open.
      onConnected: adopted ? undefined : () => metrics?.setupSeconds((Date.now() - this.startedAt) / 1000),
      onFrameSent: metrics === undefined ? undefined : (ms) => metrics.frameLatencyMs(ms),
    });
    this.#streams = streams;
    streams.open();
    if (this.paused) streams.event({ event: 'paused', reason: this.#paused ? 'dialplan' : 'hold' });
    for (const leg of this.#onHold) streams.event({ event: 'hold', by: this.#labels[leg === 'A' ? 0 : 1] });
    await started;
  }

  /**
   * A leg has audio for its tap only once it is up: leg A only after #answered answered it,
   * and its caller's phone got the 200 OK. Once both legs are up and bridged, a tap without
   * a frame is broken (its watchdog runs); counted from the answer instead, under load the
   * answering and bridging alone outlasted the watchdog's first-frame wait.
   */
  #expectAudio(): void {
    for (const leg of ['A', 'B'] as const) this.#currentTap[leg]?.expectAudio();
  }

  #sipCallId(channelId: string): Promise<string | undefined> {
    return this.#deps.ari.getVariable(channelId, 'CHANNEL(pjsip,call-id)').catch(() => undefined);
  }

  /**
   * A tap of one leg's channel. Only the leg's current tap feeds its stream; after a transfer
   * the new party's tap becomes current with its first frame (#switchTap), so the stream goes
   * on without a gap.
   */
  #newTap(identity: StreamIdentity): LegTap {
    const { ari, config, events, transports, logger, metrics } = this.#deps;
    const leg = identity.leg;
    const tapDeps = {
      ari,
      events,
      transports,
      format: config.SAMPLE_RATE === 16000 ? 'slin16' : 'slin',
      noAudioTimeoutMs: config.TAP_NO_AUDIO_TIMEOUT_MS,
      onReplaced: () => metrics?.tapReplaced(this.#transport),
    } as const;
    // While paused, not a sample of the call's audio goes on: silence keeps the streams' time.
    const onAudio = (frame: Buffer, lostBefore: number | undefined) => {
      // A tap built while B rang: nothing before the answer opens the streams.
      if (this.#streams === undefined) return;
      if (this.#currentTap[leg] !== tap) {
        if (this.#switching[leg]?.tap !== tap) return;
        this.#switchTap(leg);
        // Its frames so far went nowhere: what came before this one is not this leg's to count.
        lostBefore = undefined;
      }
      metrics?.framesReceived(leg);
      const now = performance.now();
      if (this.#holdResumeAt !== undefined && now - this.#holdResumeAt >= HOLD_RESUME_DELAY_MS) this.#endHoldPause();
      this.#streams?.audio(leg, this.paused ? silenceLike(frame) : frame, now, lostBefore);
    };
    const tap: LegTap = new LegTap({ ...tapDeps, logger: logger.child({ callId: this.callId }) }, identity, this.#transport, onAudio);
    this.#taps.push(tap);
    return tap;
  }

  /** A leg's new tap takes over its stream: the stream is told of the new party, the old tap goes. */
  #switchTap(leg: Leg): void {
    const switching = this.#switching[leg];
    if (switching === undefined) return;
    delete this.#switching[leg];
    clearTimeout(switching.timer);
    const old = this.#currentTap[leg];
    this.#currentTap[leg] = switching.tap;
    this.#identities[leg] = switching.identity;
    this.#streams?.participant(leg, switching.identity, switching.reason);
    void old?.close('the leg was transferred');
  }

  /** Which leg of this call `channelId` is, if either. */
  legOf(channelId: string): Leg | undefined {
    if (channelId === this.legA.id) return 'A';
    if (channelId === this.legBId) return 'B';
    return undefined;
  }

  #legId(leg: Leg): string {
    return leg === 'A' ? this.legA.id : this.legBId;
  }

  /** The number of the party on `leg`, as the metadata gives it (caller, callee). */
  #partyNumber(leg: Leg): string {
    return leg === 'A' ? this.#callerNumber : this.#callee;
  }

  /** What a transfer of this call needs of it (transfer.ts). */
  #transferHost(): TransferHost {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const session = this;
    return {
      callId: this.callId,
      logger: this.#logger,
      get isClosed() {
        return session.isClosed;
      },
      legId: (leg) => this.#legId(leg),
      planTarget: (number, callerLeg) => this.#planTarget(number, callerLeg),
      replaceLeg: (leg, channel, party) => this.#replaceLeg(leg, channel, party),
      close: (why, reasonForA) => this.close(why, reasonForA),
    };
  }

  /** This call as one side of an attended transfer (transfer.ts, mergeCalls). */
  get mergeParty(): MergeParty {
    return {
      callId: this.callId,
      startedAt: this.startedAt,
      logger: this.#logger,
      isAnswered: this.#state === 'answered' && !this.#closed,
      legOf: (channelId) => this.legOf(channelId),
      legId: (leg) => this.#legId(leg),
      partyNumber: (leg) => this.#partyNumber(leg),
      legChannel: (leg) => (leg === 'A' ? this.legA : (this.#legB ?? { ...this.legA, id: this.legBId, name: this.legBId })),
      handOver: (leg, toCallId) => this.#handOver(leg, toCallId),
      replaceLeg: (leg, channel, party) => this.#replaceLeg(leg, channel, party),
    };
  }

  /** A transfer's number, routed as a number dialled into this call would be (its rules, mapping, destination). */
  #planTarget(number: string, callerLeg: Leg): InboundPlan {
    const parsed = parseStasisArgs(this.#args);
    const party = callerLeg === 'A' ? this.legA : this.#legB;
    const fromAgent = party !== undefined && isAgentCall(party, this.#deps.config);
    return planDestination(
      {
        dialled: number,
        caller: this.#partyNumber(callerLeg),
        callerName: callerLeg === 'A' ? (this.legA.caller.name ?? '') : '',
        headers: this.#passHeaders,
        linkedId: this.#linkedId,
        // The length rule to the outbound gateway only when the transferring party is on the agents' side.
        fromAgent,
      },
      transferArgs(parsed.ok ? parsed.args : {}, fromAgent),
      this.#deps.config,
      this.callId,
    );
  }

  /** A party's REFER (ChannelTransfer without a state: the states that follow are our own reports). */
  async #onTransferRequest(leg: Leg, event: Extract<AriEvent, { type: 'ChannelTransfer' }>): Promise<void> {
    const { ari } = this.#deps;
    const channelId = this.#legId(leg);
    const requested = event.refer_to.requested_destination;
    if (!this.#canTransfer(leg)) {
      await reportProgress(ari, this.#logger, channelId, 'channel_unavailable');
      return;
    }
    if (requested.protocol_id !== undefined) {
      const replaced = event.refer_to.destination_channel?.id;
      const other = replaced === undefined ? undefined : this.#deps.findCall?.(replaced);
      await mergeCalls(this.#deps, this.mergeParty, leg, other?.mergeParty, replaced ?? '');
      return;
    }
    const destination = requested.destination ?? '';
    if (destination === '') {
      this.#logger.warn({ leg }, 'transfer refused: the REFER names no number');
      await reportProgress(ari, this.#logger, channelId, 'channel_unavailable');
      return;
    }
    await this.#blindTransfer(leg, destination, 'refer');
  }

  /** Whether `leg` may transfer the call now (answered, not ending, no other transfer under way); logs why not. */
  #canTransfer(leg: Leg): boolean {
    const busy = [...this.#transfers].some((transfer) => transfer.isPending);
    if (!this.#closed && this.#state === 'answered' && !busy && this.#yielded === undefined) return true;
    this.#logger.warn({ leg, state: this.#state, pendingTransfer: busy }, 'transfer refused: the call cannot be transferred now');
    return false;
  }

  /** A blind transfer of the call by `leg`'s party to `destination`, asked for by REFER or by the feature code. */
  async #blindTransfer(leg: Leg, destination: string, request: TransferRequest): Promise<void> {
    const transfer = new BlindTransfer(this.#deps, this.#transferHost(), leg, destination, request);
    this.#transfers.add(transfer);
    void transfer.settled.then(() => this.#transfers.delete(transfer));
    await transfer.start();
  }

  /**
   * `channel` becomes `leg`'s party (a transfer): it is owned and tapped as the leg, takes the
   * old channel's place in the call bridge, the record follows, and the leg's stream switches
   * to it with a `participant` event. The old channel is no leg any more (its end is not the
   * call's); the transfer hangs it up.
   */
  async #replaceLeg(leg: Leg, channel: AriChannel, party: { number: string; reason: TransferReason }): Promise<void> {
    const { ari } = this.#deps;
    const oldId = this.#legId(leg);
    const index = leg === 'A' ? 0 : 1;
    if (leg === 'A') {
      this.#legA = channel;
      this.#callerNumber = party.number;
    } else {
      this.#legBId = channel.id;
      this.#legB = channel;
      this.#callee = party.number;
    }
    this.#sequences[index]++;
    this.#ownLeg(leg, channel.id);
    // The party that had the call on hold is gone.
    if (this.#onHold.has(leg)) this.#onHoldChange(leg, false);
    this.#logger.info(
      { leg, reason: party.reason, sequence: this.#sequences[index], legChannelId: channel.id },
      'leg transferred to a new party',
    );
    const previous = this.#identities[leg];
    if (this.#streams !== undefined && !this.#stopped && previous !== undefined) {
      const identity: StreamIdentity = {
        ...previous,
        channelId: channel.id,
        sipCallId: (await this.#sipCallId(channel.id)) ?? '',
        caller: this.#callerNumber,
        callee: this.#callee,
        sequence: this.#sequences[index],
      };
      const tap = this.#newTap(identity);
      const earlier = this.#switching[leg];
      if (earlier !== undefined) void earlier.tap.close('replaced by a later transfer');
      this.#switching[leg] = { tap, identity, reason: party.reason };
      await tap.start();
      // A tap that delivers nothing (yet) must not keep the old party on the stream.
      const switching = this.#switching[leg];
      if (switching?.tap === tap) {
        switching.timer = setTimeout(() => runInCall(this.#context, () => this.#switchTap(leg)), TAP_SWITCH_TIMEOUT_MS);
        switching.timer.unref();
      }
    }
    if (this.#closed) return;
    await ari.addToBridge(this.bridgeId, channel.id);
    await ari.removeFromBridge(this.bridgeId, oldId);
    void this.#writeRecord('answered');
  }

  /** An attended transfer joined this call's `leg` to another call: this call ends, without hanging that leg up. */
  async #handOver(leg: Leg, toCallId: string): Promise<void> {
    this.#yielded = leg;
    this.#legOwners[leg]?.();
    delete this.#legOwners[leg];
    await this.close(`merged into call ${toCallId} by an attended transfer`, 'normal');
  }

  /** ChannelHold / ChannelUnhold of a leg: the streams are told; with PAUSE_ON_HOLD, transcription pauses while any leg holds. */
  #onHoldChange(leg: Leg, held: boolean): void {
    if (held === this.#onHold.has(leg)) return;
    if (held) this.#onHold.add(leg);
    else this.#onHold.delete(leg);
    const by = this.#labels[leg === 'A' ? 0 : 1];
    this.#logger.info({ leg }, held ? 'call put on hold' : 'call taken off hold');
    this.#streams?.event({ event: held ? 'hold' : 'unhold', by });
    if (this.#deps.config.PAUSE_ON_HOLD) {
      if (this.#onHold.size > 0) {
        this.#holdResumeAt = undefined;
        const before = this.paused;
        this.#holdPaused = true;
        if (!before) {
          this.#logger.info({ source: 'hold' }, 'transcription paused');
          this.#streams?.event({ event: 'paused', reason: 'hold' });
        }
      } else if (this.#holdPaused) {
        // Resumed by the first frame HOLD_RESUME_DELAY_MS from now (onAudio).
        this.#holdResumeAt = performance.now();
      }
    }
    if (this.#state === 'answered') void this.#writeRecord('answered');
  }

  /** PAUSE_ON_HOLD: the hold is over and what was sent during it has passed; the call's audio goes on. */
  #endHoldPause(): void {
    this.#holdResumeAt = undefined;
    this.#holdPaused = false;
    if (this.paused) return;
    this.#logger.info({ source: 'hold' }, 'transcription resumed');
    this.#streams?.event({ event: 'resumed', reason: 'hold' });
  }

  /**
   * Pauses the call's transcription (PCI: a card number is being taken): from the next frame
   * on, the streams carry silence, no DTMF goes out, and each stream whose format has room for
   * it gets `{"event":"paused"}`. The state lives in Asterisk as TRANSCRIPTION_PAUSE on both
   * legs (kept equal, so a feature code on either leg toggles the one state, and an instance
   * that adopts the call finds it); `resume` undoes a pause whatever paused it.
   */
  pause(source: PauseSource): void {
    this.#setPaused(true, source);
  }

  resume(source: PauseSource): void {
    this.#setPaused(false, source);
  }

  #setPaused(paused: boolean, source: PauseSource): void {
    if (this.#closed || this.#paused === paused) return;
    const before = this.paused;
    this.#paused = paused;
    this.#logger.info({ source }, paused ? 'transcription paused' : 'transcription resumed');
    // While a hold pauses the call (PAUSE_ON_HOLD) the streams stay paused: no `resumed` yet.
    if (this.paused !== before) this.#streams?.event({ event: paused ? 'paused' : 'resumed', reason: source });
    for (const channelId of this.#planned ? [this.legA.id, this.legBId] : [this.legA.id]) {
      this.#deps.ari.setVariable(channelId, PAUSE_VARIABLE, paused ? '1' : '0').catch((error: unknown) => {
        if (!this.#closed) this.#logger.warn({ err: error }, 'could not record the pause on the call');
      });
    }
  }

  /** Sends an operator's text down the call's streams (mod_audio_stream's send_text); false when no stream can carry it now. */
  sendText(text: string): boolean {
    if (this.#closed || this.#stopped || this.#streams === undefined) return false;
    return this.#streams.event({ event: 'text', text });
  }

  /** Stops transcribing this call for good (an operator's stop): streams closed, taps removed, the call goes on. */
  async stopTranscription(why = 'transcription stopped by an operator'): Promise<void> {
    if (this.#closed || this.#stopped) return;
    this.#stopped = true;
    this.#logger.info({ reason: why }, 'transcription stopped; the call goes on');
    await runInCall(this.#context, async () => {
      for (const result of await Promise.allSettled(this.#taps.map((tap) => tap.close(why)))) {
        if (result.status === 'rejected') this.#logger.warn({ err: result.reason }, 'tap cleanup request failed');
      }
      await this.#finishStreams(why);
    });
  }

  describe(): CallDescription {
    return {
      callId: this.callId,
      state: this.#state,
      direction: this.#direction,
      transport: this.#transport,
      startedAt: new Date(this.startedAt).toISOString(),
      answeredAt: this.#answeredAt === undefined ? undefined : new Date(this.#answeredAt).toISOString(),
      paused: this.paused,
      transcribing: this.#streams !== undefined && !this.#stopped,
      legs: [
        { leg: 'A', label: this.#labels[0], channelId: this.legA.id },
        { leg: 'B', label: this.#labels[1], channelId: this.legBId },
      ],
      streams: this.#streams?.summaries() ?? [],
    };
  }

  /** The streams' counters while they are live: until their final counters are reported (then undefined). */
  liveStreams(): { provider: string; summaries: (StreamSummary & { name: string })[] } | undefined {
    if (this.#streams === undefined || this.#streamsReported) return undefined;
    return { provider: this.#streams.provider, summaries: this.#streams.summaries() };
  }

  /** Closes the streams (once) and reports their final counters. */
  async #finishStreams(why: string): Promise<void> {
    const streams = this.#streams;
    if (streams === undefined) return;
    await streams.finish(why);
    if (!this.#streamsReported) {
      this.#streamsReported = true;
      this.#deps.metrics?.streamsEnded(streams.summaries(), streams.provider);
    }
  }

  /**
   * Asterisk was listed (`present`: the ids of its channels then; `stateThen`: this call's
   * state at that moment): a leg that is missing ended while nobody was listening (an ARI
   * outage, an Asterisk restart), so the call ends.
   */
  reconcile(present: ReadonlySet<string>, stateThen: CallState = this.#state): void {
    if (this.#closed) return;
    if (!present.has(this.legA.id)) {
      void this.close('caller gone from Asterisk while ARI was disconnected', 'normal');
    } else if ((stateThen === 'ringing' || stateThen === 'answered') && !present.has(this.legBId)) {
      void this.close('callee gone from Asterisk while ARI was disconnected', stateThen === 'answered' ? 'normal' : 'congestion');
    }
  }

  /** Ends the call on every side; idempotent. `reasonForA` is how leg A is hung up. */
  close(why: string, reasonForA: HangupReason = 'normal'): Promise<void> {
    this.#closed ??= runInCall(this.#context, () => this.#close(why, reasonForA));
    return this.#closed;
  }

  async #close(why: string, reasonForA: HangupReason): Promise<void> {
    const answered = this.#state === 'answered';
    this.#outcome = answered
      ? 'completed'
      : why.startsWith('refused')
        ? 'refused'
        : reasonForA === 'busy'
          ? 'busy'
          : reasonForA === 'no_answer'
            ? 'no_answer'
            : 'failed';
    this.#state = 'closing';
    clearTimeout(this.#adoptedDialGuard);
    const { ari, events } = this.#deps;
    this.#logger.info({ reason: why, hangupCause: reasonForA }, 'call ending');
    if (this.#yielded !== 'B') events.cancel(this.legBId);
    this.#stopSwitching();
    await Promise.allSettled([...this.#creating, ...[...this.#transfers].map((transfer) => transfer.cancel(why))]);
    if (!answered) {
      await ari.setVariable(this.legA.id, OUTCOME_VARIABLE, outcomeOf(reasonForA)).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not set the call outcome on leg A');
      });
    }
    const steps: Promise<unknown>[] = [...this.#taps.map((tap) => tap.close(why))];
    // Hang up and destroy by id whether or not creation was seen to finish: "already gone" is not an error.
    // A leg an attended transfer gave to another call is that call's now.
    if (this.#yielded !== 'A') steps.push(ari.hangup(this.legA.id, reasonForA));
    if (this.#yielded !== 'B') steps.push(ari.hangup(this.legBId));
    for (const result of await Promise.allSettled(steps)) {
      if (result.status === 'rejected') this.#logger.warn({ err: result.reason }, 'call cleanup request failed');
    }
    // After the taps: every frame they delivered is in the streams before these close.
    await this.#finishStreams(why);
    await ari
      .destroyBridge(this.bridgeId)
      .catch((error: unknown) => this.#logger.warn({ err: error }, 'destroying the call bridge failed'));
    this.#end(why, 'call ended');
  }

  /**
   * The service stops (its drain is over): the call is left up for the next instance to adopt.
   * An answered call's streams close with `why` and its taps are removed (they would deliver
   * to no one); a call not answered yet goes back to the dialplan, untranscribed, and its
   * leg B is hung up (no instance would be there to bridge it). Idempotent.
   */
  release(why: string): Promise<void> {
    this.#closed ??= runInCall(this.#context, () => this.#release(why));
    return this.#closed;
  }

  async #release(why: string): Promise<void> {
    const answered = this.#state === 'answered';
    this.#outcome = answered ? 'released' : 'handed_back';
    this.#state = 'closing';
    clearTimeout(this.#adoptedDialGuard);
    const { ari, events } = this.#deps;
    this.#logger.info({ reason: why, answered }, 'call released: it goes on in Asterisk');
    events.cancel(this.legBId);
    this.#stopSwitching();
    // A transfer under way cannot be finished by the next instance: its target goes, the transferer is told.
    await Promise.allSettled([...this.#creating, ...[...this.#transfers].map((transfer) => transfer.cancel(why))]);
    if (answered) {
      for (const result of await Promise.allSettled(this.#taps.map((tap) => tap.close(why)))) {
        if (result.status === 'rejected') this.#logger.warn({ err: result.reason }, 'tap cleanup request failed');
      }
      await this.#finishStreams(why);
    } else {
      // Taps built while B rang: nobody will stream them.
      for (const result of await Promise.allSettled(this.#taps.map((tap) => tap.close(why)))) {
        if (result.status === 'rejected') this.#logger.warn({ err: result.reason }, 'tap cleanup request failed');
      }
      await ari.hangup(this.legBId).catch((error: unknown) => this.#logger.warn({ err: error }, 'hanging up the unanswered leg B failed'));
      await handBackToDialplan(ari, this.legA.id, 'draining').catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not hand the call back to the dialplan');
      });
    }
    this.#end(why, 'call released');
  }

  /**
   * Another instance of the service took the app over: stop streaming and let go, without
   * any request to Asterisk (the other instance owns these channels now). Idempotent.
   */
  detach(why: string): Promise<void> {
    this.#closed ??= this.#detach(why);
    return this.#closed;
  }

  async #detach(why: string): Promise<void> {
    this.#outcome = 'handed_over';
    this.#state = 'closing';
    this.#deps.events.cancel(this.legBId);
    this.#stopSwitching();
    for (const transfer of this.#transfers) transfer.detach();
    for (const tap of this.#taps) tap.detach(why);
    await this.#finishStreams(why);
    this.#end(why, 'call handed over');
  }

  #stopSwitching(): void {
    for (const switching of Object.values(this.#switching)) clearTimeout(switching?.timer);
    for (const code of Object.values(this.#transferCode)) clearTimeout(code.timer);
  }

  #end(why: string, message: string): void {
    this.#deps.metrics?.callEnded(this.#outcome ?? 'failed');
    for (const release of this.#releases.splice(0)) release();
    for (const leg of ['A', 'B'] as const) this.#legOwners[leg]?.();
    this.#logger.info({ reason: why }, message);
    this.#onClosed?.();
  }
}

/** Hands leg A back to the dialplan untranscribed: the fallback after Stasis() runs (FALLBACK_VARIABLE). */
export async function handBackToDialplan(ari: AriPort, channelId: string, reason: string): Promise<void> {
  await ari.setVariable(channelId, FALLBACK_VARIABLE, reason);
  await ari.continueInDialplan(channelId);
}
