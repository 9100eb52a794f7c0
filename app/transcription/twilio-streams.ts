/**
 * PROVIDER=twilio: the messages Twilio Media Streams send (twilio-messages.ts),
 * leg A as track `inbound`, leg B as `outbound`, one connection per call. Twilio
 * reports DTMF for the inbound track only, so only leg A's digits are sent.
 * Twilio's format has no message for other events (pause, operator text): they
 * are not sent, and the stream goes on (a paused call's media carry silence).
 */
import type { CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import type { StreamIdentity } from './stream-messages.js';
import { TwilioMessageEncoder, twilioSid, type TwilioTrack } from './twilio-messages.js';
import { WebsocketStream, type StreamSummary } from './websocket-stream.js';

type TwilioItem = { track: TwilioTrack; frame: Buffer; positionMs: number } | { digit: string };

export class TwilioStreams implements CallStreams {
  readonly provider = 'twilio';
  readonly #stream: WebsocketStream<TwilioItem>;
  /** Each track's position, ms of its audio (Twilio's timestamps). */
  readonly #positions: Record<TwilioTrack, number>;

  constructor(
    { config, connection, logger, resumedAtMs, onConnected, onFrameSent }: CallStreamsDeps,
    a: StreamIdentity,
    b: StreamIdentity,
  ) {
    const callHex = a.callId.replaceAll('-', '').toLowerCase();
    const meta = Object.fromEntries(Object.entries(a.meta ?? {}).map(([key, value]) => [`meta.${key}`, value]));
    const encoder = new TwilioMessageEncoder(
      {
        accountSid: config.TWILIO_ACCOUNT_SID,
        callSid: twilioSid('CA', /^[0-9a-f]{32}$/.test(callHex) ? callHex : undefined),
        streamSid: twilioSid('MZ'),
      },
      ['inbound', 'outbound'],
      {
        callId: a.callId,
        linkedId: a.linkedId,
        direction: a.direction,
        caller: a.caller,
        callee: a.callee,
        inboundLabel: a.label,
        outboundLabel: b.label,
        node: a.node,
        ...meta,
      },
    );
    const startMs = Math.max(0, Math.round((resumedAtMs ?? 0) / 20) * 20);
    this.#positions = { inbound: startMs, outbound: startMs };
    this.#stream = new WebsocketStream<TwilioItem>({
      url: config.STREAM_URL,
      connection,
      protocol: {
        opening: (resume) => encoder.opening(resume),
        encode: (item) => ('digit' in item ? encoder.dtmf(item.digit) : encoder.media(item.track, item.frame, item.positionMs)),
        closing: () => encoder.stop(),
      },
      logger: logger.child({ stream: 'twilio' }),
      isAudio: (item) => 'frame' in item,
      // Two tracks: two media messages per 20 ms of the call.
      itemsPerFrame: 2,
      bufferMs: config.STREAM_BUFFER_MS,
      resumedAtMs,
      ...(onConnected && { onFirstConnected: onConnected }),
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

  summaries(): (StreamSummary & { name: string })[] {
    return [{ name: 'twilio', ...this.#stream.summary() }];
  }

  get holdsSockets(): boolean {
    return this.#stream.isOpen;
  }

  async finish(reason: string): Promise<void> {
    await this.#stream.finish(reason);
  }
}
