/**
 * PROVIDER=websocket, STREAM_MODE=split (the default): one mono stream per
 * leg, each its own websocket, each opened with that leg's metadata.
 */
import type { CallEvent, CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import { countdown } from './call-streams.js';
import { ourStreamProtocol, participantMessage, startMessage, type StreamIdentity, type StreamItem } from './stream-messages.js';
import { WebsocketStream, type StreamSummary } from './websocket-stream.js';

export class SplitStreams implements CallStreams {
  readonly provider = 'websocket';
  readonly #streams: Record<Leg, WebsocketStream<StreamItem>>;
  readonly #labels: Record<Leg, string>;
  /** Each leg's party, as its metadata describes it (a transfer changes it). */
  readonly #identities: Record<Leg, StreamIdentity>;

  constructor(
    { config, connection, logger, resumedAtMs, onConnected, onFrameSent }: CallStreamsDeps,
    a: StreamIdentity,
    b: StreamIdentity,
  ) {
    const connected = countdown(2, onConnected);
    this.#identities = { A: a, B: b };
    const stream = (identity: StreamIdentity) =>
      new WebsocketStream<StreamItem>({
        url: config.STREAM_URL,
        connection,
        protocol: ourStreamProtocol(() => startMessage(this.#identities[identity.leg], config.SAMPLE_RATE)),
        logger: logger.child({ stream: identity.label }),
        bufferMs: config.STREAM_BUFFER_MS,
        resumedAtMs,
        framesPerMessage: config.STREAM_BUFFER_SIZE / 20,
        onFirstConnected: connected,
        ...(onFrameSent && { onFrameSent }),
      });
    this.#streams = { A: stream(a), B: stream(b) };
    this.#labels = { A: a.label, B: b.label };
  }

  open(): void {
    this.#streams.A.open();
    this.#streams.B.open();
  }

  audio(leg: Leg, frame: Buffer, receivedAtMs?: number): void {
    this.#streams[leg].send(frame, receivedAtMs);
  }

  dtmf(leg: Leg, digit: string, durationMs: number): void {
    this.#streams[leg].send({ event: 'dtmf', label: this.#labels[leg], digit, durationMs });
  }

  event(message: CallEvent): boolean {
    for (const leg of ['A', 'B'] as const) this.#streams[leg].send({ ...message, label: this.#labels[leg] });
    return true;
  }

  participant(leg: Leg, identity: StreamIdentity, reason: string): void {
    this.#identities[leg] = identity;
    this.#streams[leg].send(participantMessage(identity, reason));
  }

  summaries(): (StreamSummary & { name: string })[] {
    return (['A', 'B'] as const).map((leg) => ({ name: this.#labels[leg], ...this.#streams[leg].summary() }));
  }

  get holdsSockets(): boolean {
    return this.#streams.A.isOpen || this.#streams.B.isOpen;
  }

  async finish(reason: string): Promise<void> {
    await Promise.all([this.#streams.A.finish(reason), this.#streams.B.finish(reason)]);
  }
}
