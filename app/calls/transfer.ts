/**
 * Transfers of a call by one of its parties (SIP REFER; docs/transfers.md).
 * Every PJSIP leg of a call has PJSIP_TRANSFER_HANDLING(ari-only), so a REFER
 * reaches the app as a ChannelTransfer and Asterisk itself does nothing: the
 * call keeps one owner, its session, and the transfer is done here.
 *
 * Blind (REFER to a number): the number is routed as a number dialled into
 * the call would be (planDestination), the target is created and dialled,
 * and the transferer's phone hears how it goes (transfer_progress: 100, then
 * 200, 603 or 503). Answered: the target is tapped, takes the transferer's
 * place in the call bridge, and its stream says so; the transferer is hung
 * up (when its phone has not hung up already). Busy, no answer, unroutable:
 * the target is hung up and the call goes on as it was; if the transferer
 * has left meanwhile, the party left alone is hung up with the target's
 * cause, as a direct call to that number would have ended.
 *
 *   ChannelTransfer(X) → progress 100 → create + dial target (ringback to the remaining party)
 *     target answers → tap it, bridge it in X's place → progress 200 → hang up X
 *     target fails   → progress 603 (busy) / 503 → the call goes on (or ends, if X left)
 *
 * The same transfer comes from a feature code keyed on the phone
 * (BLIND_TRANSFER_CODE, transfer-code.ts): then there is no REFER, so no
 * progress to report, and the transferer is hung up as soon as the target is
 * in the call (no phone would hang it up on a sipfrag).
 *
 * Attended (REFER with Replaces, after a consultation call through the app):
 * the two calls become one. The call that began first goes on with its call
 * id and streams; the other call's remaining party takes the place of the
 * channel the transfer replaces, and the other call ends (its streams closed
 * with the reason, its legs and bridge gone, its party handed over).
 *
 * Everything a transfer creates is owned before it exists and torn down on
 * every path: the call ending mid-transfer hangs the target up.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AriChannel, AriEvent, AriPort, HangupReason, TransferProgress } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import type { Leg } from '../transcription/call-streams.js';
import { FAILED_DIAL, reasonForCause } from './call-outcome.js';
import type { ChannelEvents } from './channel-events.js';
import type { InboundPlan } from './inbound-plan.js';
import { LEG_A_PREFIX, LEG_B_PREFIX } from './reconcile-plan.js';

/** How long a transferer's channel may stay after its transfer succeeded (its phone normally hangs up itself at once). */
export const TRANSFERER_GRACE_MS = 2000;

export type TransferReason = 'transfer' | 'attended-transfer';

/** How a party asked for a blind transfer: a REFER, or the feature code keyed on its phone. */
export type TransferRequest = 'refer' | 'feature-code';

/** What a transfer needs of its call (CallSession provides it). */
export interface TransferHost {
  readonly callId: string;
  readonly logger: Logger;
  readonly isClosed: boolean;
  legId(leg: Leg): string;
  /** Routes `number` for this call, called by the party on `callerLeg`. */
  planTarget(number: string, callerLeg: Leg): InboundPlan;
  /**
   * `channel` becomes `leg`'s party: tapped, put into the call bridge in the old channel's
   * place (which leaves the bridge and stops being a leg), its stream told. Resolves once done.
   */
  replaceLeg(leg: Leg, channel: AriChannel, party: { number: string; reason: TransferReason }): Promise<void>;
  /** Ends the call (a party left alone after a failed transfer). */
  close(why: string, reasonForA: HangupReason): Promise<void>;
}

export interface TransferDeps {
  ari: AriPort;
  events: ChannelEvents;
  config: Config;
}

const other = (leg: Leg): Leg => (leg === 'A' ? 'B' : 'A');

/** Reports a transfer's progress to the transferer's phone; a channel already gone is no error. */
export async function reportProgress(ari: AriPort, logger: Logger, channelId: string, state: TransferProgress): Promise<void> {
  try {
    await ari.transferProgress(channelId, state);
  } catch (error) {
    logger.debug({ err: error, state }, 'could not report the transfer progress (the transferer is gone)');
  }
}

/** One blind transfer of a call, from the REFER to the target bridged in (or the transfer failing). */
export class BlindTransfer {
  readonly targetId: string;
  readonly #deps: TransferDeps;
  readonly #host: TransferHost;
  readonly #transferer: Leg;
  readonly #transfererId: string;
  readonly #destination: string;
  readonly #request: TransferRequest;
  readonly #logger: Logger;
  readonly #releases: (() => void)[] = [];
  #state: 'new' | 'dialling' | 'answered' | 'failed' | 'cancelled' = 'new';
  #number = '';
  #transfererGone = false;
  #ringing = false;
  #graceTimer: NodeJS.Timeout | undefined;
  /** The target's creation, while in flight: cancel() waits for it, so nothing is created after the hangup. */
  #creating: Promise<unknown> | undefined;
  #done: () => void = () => {};
  /** Resolves once the transfer has succeeded, failed or been cancelled. */
  readonly settled: Promise<void>;

  constructor(deps: TransferDeps, host: TransferHost, transferer: Leg, destination: string, request: TransferRequest = 'refer') {
    this.#deps = deps;
    this.#request = request;
    this.#host = host;
    this.#transferer = transferer;
    this.#transfererId = host.legId(transferer);
    this.#destination = destination;
    // The target takes the transferer's side: an id a new instance reads as that leg (reconcile-plan.ts).
    this.targetId = `${transferer === 'B' ? LEG_B_PREFIX : LEG_A_PREFIX}${randomUUID()}`;
    this.#logger = host.logger.child({ transfer: 'blind', request, transferer, targetId: this.targetId });
    this.settled = new Promise((resolve) => {
      this.#done = resolve;
    });
  }

  get isPending(): boolean {
    return this.#state === 'new' || this.#state === 'dialling';
  }

  /** The channel the transfer replaces (while it is pending). */
  get transfererId(): string {
    return this.#transfererId;
  }

  /** What this transfer holds in Asterisk beyond the call's legs (leftover sweeps must spare it). */
  ownedIds(): string[] {
    return this.isPending ? [this.targetId] : [];
  }

  async start(): Promise<void> {
    const { ari, events, config } = this.#deps;
    const remainingId = this.#host.legId(other(this.#transferer));
    const plan = this.#host.planTarget(this.#destination, other(this.#transferer));
    if (!plan.ok) {
      this.#logger.warn({ reason: plan.reason, numbers: { target: this.#destination } }, 'transfer refused: the number cannot be routed');
      await this.#fail('unroutable', 'unallocated', 'channel_unavailable');
      return;
    }
    this.#number = plan.number;
    this.#logger.info({ numbers: { target: plan.number }, rule: plan.rule }, 'blind transfer: dialling the target');
    await this.#report('channel_progress');
    this.#releases.push(events.own(this.targetId, (event) => this.#onTargetEvent(event)));
    const started = events.expect(this.targetId, 'StasisStart', 5000);
    started.catch(() => {}); // handled where it is awaited, below
    this.#state = 'dialling';
    try {
      this.#creating = ari.createChannel({
        channelId: this.targetId,
        endpoint: plan.dialString,
        appArgs: 'transfer-target',
        originator: remainingId,
        variables: plan.variables,
      });
      await this.#creating;
      await started;
      if (!this.isPending) return;
      await ari.dial(this.targetId, { timeoutSeconds: Math.ceil(config.DIAL_TIMEOUT_MS / 1000) });
    } catch (error) {
      if (!this.isPending) return;
      this.#logger.warn({ err: error }, 'could not dial the transfer target');
      await this.#fail('failed', 'congestion', 'channel_unavailable');
    }
  }

  /** The transferer's channel ended while the transfer was pending (its phone hung up after the 202). */
  transfererLeft(): void {
    this.#transfererGone = true;
    this.#logger.info('the transferer left before the target answered');
  }

  #onTargetEvent(event: AriEvent): void {
    if (!this.isPending) return;
    switch (event.type) {
      case 'Dial': {
        const status = event.dialstatus;
        if (status === 'RINGING' || status === 'PROGRESS') void this.#ringback();
        else if (status === 'ANSWER') void this.#answered(event.peer);
        else if (status in FAILED_DIAL)
          void this.#fail(
            status === 'NOANSWER' ? 'no answer' : status.toLowerCase(),
            FAILED_DIAL[status]!,
            status === 'BUSY' ? 'channel_declined' : 'channel_unavailable',
          );
        break;
      }
      case 'ChannelStateChange':
        if (event.channel.state === 'Up') void this.#answered(event.channel);
        break;
      case 'ChannelDestroyed': {
        const reason = reasonForCause(event.cause);
        const why = reason === 'busy' || reason === 'no_answer' ? reason.replace('_', ' ') : `failed (cause ${event.cause})`;
        void this.#fail(why, reason, reason === 'busy' ? 'channel_declined' : 'channel_unavailable');
        break;
      }
      default:
        break;
    }
  }

  /** The party being transferred hears ringback while the target rings (in band: it is answered). */
  async #ringback(): Promise<void> {
    if (this.#ringing) return;
    this.#ringing = true;
    await this.#deps.ari.ring(this.#host.legId(other(this.#transferer))).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'no ringback for the party being transferred');
    });
  }

  async #stopRingback(): Promise<void> {
    if (!this.#ringing) return;
    this.#ringing = false;
    await this.#deps.ari.ringStop(this.#host.legId(other(this.#transferer))).catch((error: unknown) => {
      this.#logger.debug({ err: error }, 'could not stop the ringback (the party is gone)');
    });
  }

  async #answered(target: AriChannel): Promise<void> {
    if (!this.isPending) return;
    this.#state = 'answered';
    const { ari } = this.#deps;
    await this.#stopRingback();
    // The session owns the target from now on, as the leg it replaces.
    for (const release of this.#releases.splice(0)) release();
    try {
      await this.#host.replaceLeg(this.#transferer, { ...target, state: 'Up' }, { number: this.#number, reason: 'transfer' });
    } catch (error) {
      this.#logger.error({ err: error }, 'could not put the transfer target into the call');
    }
    await this.#report('channel_answered');
    this.#logger.info({ numbers: { target: this.#number } }, 'blind transfer done');
    // Its phone hangs up on the 200 sipfrag; if it does not, the service does.
    this.#releases.push(
      this.#deps.events.own(this.#transfererId, (event) => {
        if (event.type === 'ChannelDestroyed') this.#finish();
      }),
    );
    const hangUp = () => void ari.hangup(this.#transfererId).finally(() => this.#finish());
    if (this.#transfererGone) this.#finish();
    // Keyed on the phone: no sipfrag tells it to hang up, so the service does at once.
    else if (this.#request === 'feature-code') hangUp();
    else {
      this.#graceTimer = setTimeout(hangUp, TRANSFERER_GRACE_MS);
      this.#graceTimer.unref();
    }
  }

  async #fail(why: string, reason: HangupReason, progress: TransferProgress): Promise<void> {
    if (!this.isPending) return;
    this.#state = 'failed';
    const { ari } = this.#deps;
    this.#logger.info({ reason: why, numbers: { target: this.#destination } }, 'blind transfer failed; the call goes on');
    await this.#stopRingback();
    await ari.hangup(this.targetId).catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'could not hang up the transfer target');
    });
    await this.#report(progress);
    this.#finish();
    if (this.#transfererGone && !this.#host.isClosed) {
      // Nobody is left with the party being transferred: the call ends as a call to the target would have.
      await this.#host.close(`transfer target ${why}; the transferer had left`, reason);
    }
  }

  /**
   * The call ends while the transfer is under way (or just done): the target is hung up if it
   * is not a leg yet, the transferer's phone told the transfer failed, a retired transferer
   * hung up. Idempotent.
   */
  async cancel(why: string): Promise<void> {
    clearTimeout(this.#graceTimer);
    const { ari } = this.#deps;
    if (this.isPending) {
      this.#state = 'cancelled';
      this.#logger.info({ reason: why }, 'transfer cancelled');
      this.#deps.events.cancel(this.targetId);
      await Promise.allSettled([this.#creating]);
      await Promise.allSettled([ari.hangup(this.targetId), this.#report('channel_unavailable')]);
    } else if (this.#state === 'answered') {
      await ari.hangup(this.#transfererId).catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'could not hang up the transferer');
      });
    }
    this.#finish();
  }

  /** Another instance took the call over: let go, asking nothing of Asterisk. */
  detach(): void {
    if (this.isPending) this.#state = 'cancelled';
    this.#finish();
  }

  /** Tells the transferer's phone how its REFER goes (a feature code has no REFER to answer). */
  async #report(state: TransferProgress): Promise<void> {
    if (this.#request === 'refer') await reportProgress(this.#deps.ari, this.#logger, this.#transfererId, state);
  }

  #finish(): void {
    clearTimeout(this.#graceTimer);
    for (const release of this.#releases.splice(0)) release();
    this.#done();
  }
}

/** What an attended transfer needs of each of the two calls it joins (CallSession provides it). */
export interface MergeParty {
  readonly callId: string;
  readonly startedAt: number;
  readonly logger: Logger;
  /** Which leg of this call `channelId` is, if any. */
  legOf(channelId: string): Leg | undefined;
  legId(leg: Leg): string;
  /** The number of the party on `leg` (the metadata's caller or callee). */
  partyNumber(leg: Leg): string;
  /** The channel of `leg`, as last seen. */
  legChannel(leg: Leg): AriChannel;
  /** Gives up `leg`'s channel to another call: this call ends without hanging it up. */
  handOver(leg: Leg, toCallId: string): Promise<void>;
  replaceLeg(leg: Leg, channel: AriChannel, party: { number: string; reason: TransferReason }): Promise<void>;
  readonly isAnswered: boolean;
}

/**
 * An attended transfer: `transferer` (a leg of `first`) sent REFER with Replaces naming
 * `replacedId`, a leg of `second`. The two remaining parties end up together in the call
 * that began first; the other call ends. False (and nothing changed) when the calls cannot
 * be joined: then the transferer is told it failed and both calls go on.
 */
export async function mergeCalls(
  deps: TransferDeps,
  referring: MergeParty,
  transferer: Leg,
  other: MergeParty | undefined,
  replacedId: string,
): Promise<boolean> {
  const { ari } = deps;
  const transfererId = referring.legId(transferer);
  const logger = referring.logger.child({ transfer: 'attended', transferer });
  const replaced = other?.legOf(replacedId);
  if (other === undefined || other === referring || replaced === undefined || !other.isAnswered || !referring.isAnswered) {
    logger.warn(
      { replacedId, otherCall: other?.callId },
      'attended transfer refused: the dialog it replaces is not a leg of another answered call of this service',
    );
    await reportProgress(ari, logger, transfererId, 'channel_unavailable');
    return false;
  }
  await reportProgress(ari, logger, transfererId, 'channel_progress');
  // The call that began first goes on; the other one's remaining party joins it.
  const [survivor, ending, survivorLeg, endingLeg] =
    referring.startedAt <= other.startedAt
      ? [referring, other, transferer, (replaced === 'A' ? 'B' : 'A') as Leg]
      : [other, referring, replaced, (transferer === 'A' ? 'B' : 'A') as Leg];
  const party = ending.legChannel(endingLeg);
  const number = ending.partyNumber(endingLeg);
  const replacedInSurvivor = survivor.legId(survivorLeg);
  logger.info({ survivor: survivor.callId, ending: ending.callId, survivorLeg }, 'attended transfer: joining the two calls');
  await survivor.replaceLeg(survivorLeg, party, { number, reason: 'attended-transfer' });
  await reportProgress(ari, logger, transfererId, 'channel_answered');
  await ending.handOver(endingLeg, survivor.callId);
  // The channel the survivor gave up: the transferer's phone, or its other dialog (Replaces ends it).
  const grace = replacedInSurvivor === transfererId ? TRANSFERER_GRACE_MS : 0;
  const hangUp = () =>
    void ari.hangup(replacedInSurvivor).catch((error: unknown) => {
      logger.warn({ err: error }, 'could not hang up the party the attended transfer replaced');
    });
  if (grace === 0) hangUp();
  else setTimeout(hangUp, grace).unref();
  return true;
}
