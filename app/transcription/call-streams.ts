/**
 * Where one call's audio goes: the sink side of a call, chosen by PROVIDER and,
 * for the generic websocket, STREAM_MODE. The legs' taps hand it 20 ms frames
 * of little-endian L16 (at the provider's rate, which the taps asked Asterisk
 * for) and DTMF; it owns every websocket of the call and closes them at finish().
 *
 *   websocket/split    one mono stream per leg, our format (stream-messages.ts)
 *   websocket/stereo   one stream per call, caller left, callee right, time-aligned
 *   websocket/mixed    one stream per call, both parties summed into one channel
 *   voicegain          a session requested per call (voicegain-streams.ts), stereo L16 8 kHz
 *   twilio             Twilio Media Streams: one stream, tracks inbound/outbound, µ-law 8 kHz
 *
 * The call never depends on it: connection failures are logged by the streams.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/keys.js';
import { interleave, mix } from '../media/pcm-channels.js';
import { frameBytes } from '../media/pcm.js';
import { FrameAligner } from './frame-aligner.js';
import type { StreamConnection } from './stream-connection.js';
import { callStartMessage, ourStreamProtocol, startMessage, type StreamIdentity, type StreamItem } from './stream-messages.js';
import { TwilioMessageEncoder, twilioSid, type TwilioTrack } from './twilio-messages.js';
import { VoicegainStreams } from './voicegain-streams.js';
import { WebsocketStream } from './websocket-stream.js';

export type Leg = 'A' | 'B';

export interface CallStreams {
  /** Opens the connections (or requests the provider's session); returns at once. */
  open(): void;
  /** One 20 ms frame of little-endian L16 from a leg. */
  audio(leg: Leg, frame: Buffer): void;
  /** A DTMF digit pressed on a leg (only called when STREAM_DTMF is on). */
  dtmf(leg: Leg, digit: string, durationMs: number): void;
  /** True while a socket or request of this call is open (for leak checks). */
  readonly holdsSockets: boolean;
  /** Flushes, sends each protocol's closing message and closes; idempotent. */
  finish(reason: string): Promise<void>;
}

export interface CallStreamsDeps {
  config: Config;
  /** STREAM_* options for connections to STREAM_URL. */
  connection: StreamConnection;
  logger: Logger;
  /**
   * The streams continue a call that was streamed before (adopted from another instance):
   * where in the call's audio they begin, in ms. Their metadata says `resumed: true`.
   */
  resumedAtMs?: number | undefined;
}

export interface CallStreamsOptions {
  logger: Logger;
  resumedAtMs?: number | undefined;
}

/** Makes one call's streams; the call flow gets it from the composition root (tests bring their own). */
export type CallStreamsFactory = (a: StreamIdentity, b: StreamIdentity, options: CallStreamsOptions) => CallStreams;

export function callStreamsFactory(config: Config, connection: StreamConnection): CallStreamsFactory {
  return (a, b, options) => createCallStreams({ config, connection, ...options }, a, b);
}

export function createCallStreams(deps: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity): CallStreams {
  const { config } = deps;
  switch (config.PROVIDER) {
    case 'voicegain':
      return new VoicegainStreams(deps, a, b);
    case 'twilio':
      return new TwilioStreams(deps, a, b);
    default:
      return config.STREAM_MODE === 'split' ? new SplitStreams(deps, a, b) : new ChannelStreams(deps, a, b, config.STREAM_MODE);
  }
}

/** STREAM_MODE=split: one mono stream per leg, each opened with that leg's metadata. */
class SplitStreams implements CallStreams {
  readonly #streams: Record<Leg, WebsocketStream<StreamItem>>;
  readonly #labels: Record<Leg, string>;

  constructor({ config, connection, logger, resumedAtMs }: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity) {
    const stream = (identity: StreamIdentity) =>
      new WebsocketStream<StreamItem>({
        url: config.STREAM_URL,
        connection,
        protocol: ourStreamProtocol(startMessage(identity, config.SAMPLE_RATE)),
        logger: logger.child({ stream: identity.label }),
        bufferMs: config.STREAM_BUFFER_MS,
        resumedAtMs,
      });
    this.#streams = { A: stream(a), B: stream(b) };
    this.#labels = { A: a.label, B: b.label };
  }

  open(): void {
    this.#streams.A.open();
    this.#streams.B.open();
  }

  audio(leg: Leg, frame: Buffer): void {
    this.#streams[leg].send(frame);
  }

  dtmf(leg: Leg, digit: string, durationMs: number): void {
    this.#streams[leg].send({ event: 'dtmf', label: this.#labels[leg], digit, durationMs });
  }

  get holdsSockets(): boolean {
    return this.#streams.A.isOpen || this.#streams.B.isOpen;
  }

  async finish(reason: string): Promise<void> {
    await Promise.all([this.#streams.A.finish(reason), this.#streams.B.finish(reason)]);
  }
}

/**
 * STREAM_MODE=stereo or mixed: one stream per call. The aligner pairs the legs'
 * frames by time, so a leg's missing or late frames become silence instead of
 * shifting one party against the other.
 */
class ChannelStreams implements CallStreams {
  readonly #stream: WebsocketStream<StreamItem>;
  readonly #aligner: FrameAligner;
  readonly #labels: Record<Leg, string>;

  constructor(
    { config, connection, logger, resumedAtMs }: CallStreamsDeps,
    a: StreamIdentity,
    b: StreamIdentity,
    mode: 'stereo' | 'mixed',
  ) {
    this.#stream = new WebsocketStream<StreamItem>({
      url: config.STREAM_URL,
      connection,
      protocol: ourStreamProtocol(callStartMessage(mode, a, b, config.SAMPLE_RATE)),
      logger: logger.child({ stream: `${a.label}+${b.label}`, mode }),
      bufferMs: config.STREAM_BUFFER_MS,
      resumedAtMs,
    });
    this.#aligner = new FrameAligner({
      frameBytes: frameBytes(config.SAMPLE_RATE),
      onFrame: (left, right) => this.#stream.send(mode === 'stereo' ? interleave(left, right) : mix(left, right)),
    });
    this.#labels = { A: a.label, B: b.label };
  }

  open(): void {
    this.#stream.open();
  }

  audio(leg: Leg, frame: Buffer): void {
    this.#aligner.push(leg === 'A' ? 0 : 1, frame);
  }

  dtmf(leg: Leg, digit: string, durationMs: number): void {
    this.#stream.send({ event: 'dtmf', label: this.#labels[leg], digit, durationMs });
  }

  get holdsSockets(): boolean {
    return this.#stream.isOpen;
  }

  async finish(reason: string): Promise<void> {
    this.#aligner.flush();
    await this.#stream.finish(reason);
  }
}

type TwilioItem = { track: TwilioTrack; frame: Buffer; positionMs: number } | { digit: string };

/**
 * PROVIDER=twilio: the messages Twilio Media Streams send (twilio-messages.ts),
 * leg A as track `inbound`, leg B as `outbound`, one connection per call. Twilio
 * reports DTMF for the inbound track only, so only leg A's digits are sent.
 */
class TwilioStreams implements CallStreams {
  readonly #stream: WebsocketStream<TwilioItem>;
  /** Each track's position, ms of its audio (Twilio's timestamps). */
  readonly #positions: Record<TwilioTrack, number>;

  constructor({ config, connection, logger, resumedAtMs }: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity) {
    const callHex = a.callId.replaceAll('-', '').toLowerCase();
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
    });
  }

  open(): void {
    this.#stream.open();
  }

  audio(leg: Leg, frame: Buffer): void {
    const track = leg === 'A' ? 'inbound' : 'outbound';
    const positionMs = this.#positions[track];
    this.#positions[track] = positionMs + 20;
    this.#stream.send({ track, frame, positionMs });
  }

  dtmf(leg: Leg, digit: string): void {
    if (leg === 'A') this.#stream.send({ digit });
  }

  get holdsSockets(): boolean {
    return this.#stream.isOpen;
  }

  async finish(reason: string): Promise<void> {
    await this.#stream.finish(reason);
  }
}
