/**
 * PROVIDER=twilio: the messages Twilio Media Streams send (twilio-messages.ts),
 * leg A as track `inbound`, leg B as `outbound`, one connection per call. Twilio
 * reports DTMF for the inbound track only, so only leg A's digits are sent.
 * Twilio's format has no message for other events (pause, hold, operator text):
 * they are not sent, and the stream goes on (a paused call's media carry
 * silence). A transfer, which changes a party, cannot be said either: the
 * stream stops and a new one starts (a new streamSid, the same callSid), whose
 * customParameters carry the parties it has now, `sequence` (2 after the first
 * transfer) and `reason`; media timestamps go on from the call's.
 */
import type { CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import type { StreamIdentity } from './stream-messages.js';
import { TwilioMessageEncoder, twilioSid, type TwilioTrack } from './twilio-messages.js';
import { WebsocketStream, type StreamSummary } from './websocket-stream.js';

type TwilioItem = { track: TwilioTrack; frame: Buffer; positionMs: number } | { digit: string };

export class TwilioStreams implements CallStreams {
  readonly provider = 'twilio';
  readonly #deps: CallStreamsDeps;
  readonly #callSid: string;
  #stream: WebsocketStream<TwilioItem>;
  /** Streams a transfer ended, still closing (finish waits for them). */
  readonly #ending: Promise<void>[] = [];
  readonly #identities: Record<Leg, StreamIdentity>;
  /** How many streams this call has had (the first is 1). */
  #sequence = 1;
  /** Each track's position, ms of its audio (Twilio's timestamps). */
  readonly #positions: Record<TwilioTrack, number>;

  constructor(deps: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity) {
    this.#deps = deps;
    const callHex = a.callId.replaceAll('-', '').toLowerCase();
    this.#callSid = twilioSid('CA', /^[0-9a-f]{32}$/.test(callHex) ? callHex : undefined);
    this.#identities = { A: a, B: b };
    const startMs = Math.max(0, Math.round((deps.resumedAtMs ?? 0) / 20) * 20);
    this.#positions = { inbound: startMs, outbound: startMs };
    this.#stream = this.#newStream({}, deps.resumedAtMs);
  }

  #newStream(extra: Record<string, string>, resumedAtMs: number | undefined): WebsocketStream<TwilioItem> {
    const { config, connection, logger, onConnected, onFrameSent } = this.#deps;
    const { A: a, B: b } = this.#identities;
    const meta = Object.fromEntries(Object.entries(a.meta ?? {}).map(([key, value]) => [`meta.${key}`, value]));
    const encoder = new TwilioMessageEncoder(
      { accountSid: config.TWILIO_ACCOUNT_SID, callSid: this.#callSid, streamSid: twilioSid('MZ') },
      ['inbound', 'outbound'],
      {
        callId: a.callId,
        linkedId: a.linkedId,
        direction: a.direction,
        caller: a.caller,
        callee: b.callee,
        inboundLabel: a.label,
        outboundLabel: b.label,
        node: a.node,
        ...meta,
        ...extra,
      },
    );
    return new WebsocketStream<TwilioItem>({
      url: config.STREAM_URL,
      connection,
      protocol: {
        opening: (resume) => encoder.opening(resume),
        encode: (item) => ('digit' in item ? encoder.dtmf(item.digit) : encoder.media(item.track, item.frame, item.positionMs)),
        closing: () => encoder.stop(),
      },
      logger: logger.child({ stream: 'twilio', ...(this.#sequence > 1 && { sequence: this.#sequence }) }),
      isAudio: (item) => 'frame' in item,
      // Two tracks: two media messages per 20 ms of the call.
      itemsPerFrame: 2,
      bufferMs: config.STREAM_BUFFER_MS,
      resumedAtMs,
      ...(this.#sequence === 1 && onConnected && { onFirstConnected: onConnected }),
      ...(onFrameSent && { onFrameSent }),
    });
  }

  open(): void {
    this.#stream.open();
  }

  audio(leg: Leg, frame: Buffer, receivedAtMs?: number): void {
    const track = leg === 'A' ? 'inbound' : 'outbound';
    const positionMs = this.#positions[track];
    this.#positions[track] = positionMs + 20;
    this.#stream.send({ track, frame, positionMs }, receivedAtMs);
  }

  dtmf(leg: Leg, digit: string): void {
    if (leg === 'A') this.#stream.send({ digit });
  }

  event(): boolean {
    return false;
  }

  participant(leg: Leg, identity: StreamIdentity, reason: string): void {
    this.#identities[leg] = identity;
    this.#ending.push(this.#stream.finish(`participant changed: ${reason}`));
    this.#sequence++;
    this.#stream = this.#newStream({ sequence: String(this.#sequence), reason }, undefined);
    this.#stream.open();
  }

  summaries(): (StreamSummary & { name: string })[] {
    return [{ name: 'twilio', ...this.#stream.summary() }];
  }

  get holdsSockets(): boolean {
    return this.#stream.isOpen;
  }

  async finish(reason: string): Promise<void> {
    await Promise.all([...this.#ending, this.#stream.finish(reason)]);
  }
}
