/**
 * PROVIDER=websocket, STREAM_MODE=stereo or mixed: one stream per call. The
 * aligner pairs the legs' frames by time, so a leg's missing or late frames
 * become silence instead of shifting one party against the other.
 */
import { interleave, mix } from '../media/pcm-channels.js';
import { frameBytes } from '../media/pcm.js';
import type { CallEvent, CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import { FrameAligner } from './frame-aligner.js';
import { callStartMessage, ourStreamProtocol, participantMessage, type StreamIdentity, type StreamItem } from './stream-messages.js';
import { WebsocketStream, type StreamSummary } from './websocket-stream.js';

export class ChannelStreams implements CallStreams {
  readonly provider = 'websocket';
  readonly #stream: WebsocketStream<StreamItem>;
  readonly #aligner: FrameAligner;
  readonly #labels: Record<Leg, string>;
  readonly #name: string;
  readonly #logger: CallStreamsDeps['logger'];
  /** Each leg's party, as the metadata describes it (a transfer changes it). */
  readonly #identities: Record<Leg, StreamIdentity>;

  constructor(
    { config, connection, logger, resumedAtMs, onConnected, onFrameSent }: CallStreamsDeps,
    a: StreamIdentity,
    b: StreamIdentity,
    mode: 'stereo' | 'mixed',
  ) {
    this.#name = `${a.label}+${b.label}`;
    this.#logger = logger;
    this.#identities = { A: a, B: b };
    this.#stream = new WebsocketStream<StreamItem>({
      url: config.STREAM_URL,
      connection,
      protocol: ourStreamProtocol(() => callStartMessage(mode, this.#identities.A, this.#identities.B, config.SAMPLE_RATE)),
      logger: logger.child({ stream: this.#name, mode }),
      bufferMs: config.STREAM_BUFFER_MS,
      resumedAtMs,
      framesPerMessage: config.STREAM_BUFFER_SIZE / 20,
      ...(onConnected && { onFirstConnected: onConnected }),
      ...(onFrameSent && { onFrameSent }),
    });
    this.#aligner = new FrameAligner({
      frameBytes: frameBytes(config.SAMPLE_RATE),
      onFrame: (left, right, firstArrivedMs) =>
        this.#stream.send(mode === 'stereo' ? interleave(left, right) : mix(left, right), firstArrivedMs),
    });
    this.#labels = { A: a.label, B: b.label };
  }

  open(): void {
    this.#stream.open();
  }

  audio(leg: Leg, frame: Buffer, _receivedAtMs?: number, lostBefore?: number): void {
    this.#aligner.push(leg === 'A' ? 0 : 1, frame, lostBefore);
  }

  dtmf(leg: Leg, digit: string, durationMs: number): void {
    this.#stream.send({ event: 'dtmf', label: this.#labels[leg], digit, durationMs });
  }

  event(message: CallEvent): boolean {
    this.#stream.send({ ...message, label: this.#name });
    return true;
  }

  participant(leg: Leg, identity: StreamIdentity, reason: string): void {
    this.#identities[leg] = identity;
    this.#stream.send(participantMessage(identity, reason));
  }

  summaries(): (StreamSummary & { name: string })[] {
    return [{ name: this.#name, ...this.#stream.summary() }];
  }

  get holdsSockets(): boolean {
    return this.#stream.isOpen;
  }

  async finish(reason: string): Promise<void> {
    this.#aligner.flush();
    // What the pairing cost each leg (silence where it had no frame, frames too late or too early).
    this.#logger.info({ stream: this.#name, alignment: this.#aligner.stats }, 'stream aligned');
    await this.#stream.finish(reason);
  }
}
