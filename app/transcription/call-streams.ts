/**
 * Where one call's audio goes: the sink side of a call, chosen by PROVIDER and,
 * for the generic websocket, STREAM_MODE. The legs' taps hand it 20 ms frames
 * of little-endian L16 (at the provider's rate, which the taps asked Asterisk
 * for) and DTMF; it owns every websocket of the call and closes them at finish().
 *
 *   websocket/split    one mono stream per leg, our format (split-streams.ts)
 *   websocket/stereo   one stream per call, caller left, callee right, time-aligned (channel-streams.ts)
 *   websocket/mixed    one stream per call, both parties summed into one channel (channel-streams.ts)
 *   voicegain          a session requested per call (voicegain-streams.ts), stereo L16 8 kHz
 *   twilio             Twilio Media Streams: one stream, tracks inbound/outbound, µ-law 8 kHz (twilio-streams.ts)
 *
 * The call never depends on it: connection failures are logged by the streams.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/keys.js';
import { ChannelStreams } from './channel-streams.js';
import { SplitStreams } from './split-streams.js';
import type { StreamConnection } from './stream-connection.js';
import type { StreamIdentity } from './stream-messages.js';
import { TwilioStreams } from './twilio-streams.js';
import { VoicegainStreams } from './voicegain-streams.js';
import type { StreamSummary } from './websocket-stream.js';

export type Leg = 'A' | 'B';

/** A text event of the call: `{ event: 'paused', reason: 'api' }`; the label is added per stream. */
export type CallEvent = { event: string } & Record<string, unknown>;

export interface CallStreams {
  readonly provider: Config['PROVIDER'];
  /** Opens the connections (or requests the provider's session); returns at once. */
  open(): void;
  /**
   * One 20 ms frame of little-endian L16 from a leg; `receivedAtMs`: when it reached the service
   * (performance.now()); `lostBefore`: the leg's frames its transport knows were lost just before
   * this one (0 on TCP; undefined where it cannot say: see FrameAligner.push).
   */
  audio(leg: Leg, frame: Buffer, receivedAtMs?: number, lostBefore?: number): void;
  /** A DTMF digit pressed on a leg (only called when STREAM_DTMF is on). */
  dtmf(leg: Leg, digit: string, durationMs: number): void;
  /** A text event on the call's stream(s) where the wire format has a place for it; false where it has none. */
  event(message: CallEvent): boolean;
  /**
   * The party on a leg changed (a transfer): from now on the leg's audio is `identity`'s. Each
   * provider says so as its format allows (docs/transfers.md): a `participant` event, a new
   * stream, or nothing.
   */
  participant(leg: Leg, identity: StreamIdentity, reason: string): void;
  /** Each stream's state and counters, for the operations endpoint. */
  summaries(): (StreamSummary & { name: string })[];
  /** True while a socket or request of this call is open (for leak checks). */
  readonly holdsSockets: boolean;
  /** Flushes, sends each protocol's closing message and closes; idempotent. */
  finish(reason: string): Promise<void>;
}

export interface CallStreamsOptions {
  logger: Logger;
  /**
   * The streams continue a call that was streamed before (adopted from another instance):
   * where in the call's audio they begin, in ms. Their metadata says `resumed: true`.
   */
  resumedAtMs?: number | undefined;
  /** Called once, when every stream of the call has connected (the call's set-up time). */
  onConnected?: () => void;
  /** Called for each audio frame sent, with the ms it spent in the service. */
  onFrameSent?: (latencyMs: number) => void;
}

export interface CallStreamsDeps extends CallStreamsOptions {
  config: Config;
  /** STREAM_* options for connections to STREAM_URL. */
  connection: StreamConnection;
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

/** Calls `done` once, after `count` calls of the function it returns. */
export function countdown(count: number, done: (() => void) | undefined): () => void {
  let left = count;
  return () => {
    left--;
    if (left === 0) done?.();
  };
}
