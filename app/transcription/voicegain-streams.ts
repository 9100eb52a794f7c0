/**
 * PROVIDER=voicegain, the seed proxy's flow. When B answers, one POST to
 * VG_GATEWAY_URL (Authorization: Bearer JWT_TOKEN) asks for two real-time
 * sessions, left (the caller) and right (the callee); Voicegain sends their
 * transcripts to WEBSOCKET_SERVER itself. The answer's audio.stream.websocketUrl
 * then receives the call as stereo L16 at 8 kHz, binary frames only, and is
 * closed at hangup. The body is built in voicegain-request.ts, one place.
 *
 * Whatever Voicegain answers, the call goes on: an HTTP error, a refused token
 * or a timeout (VG_REQUEST_TIMEOUT_MS) is logged with Voicegain's message and
 * ends the streaming of this call only.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/keys.js';
import { interleave } from '../media/pcm-channels.js';
import { frameBytes } from '../media/pcm.js';
import type { CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import { FrameAligner } from './frame-aligner.js';
import type { StreamIdentity } from './stream-messages.js';
import { readVoicegainAnswer, voicegainRequestBody, type VoicegainSettings } from './voicegain-request.js';
import { WebsocketStream, type StreamProtocol } from './websocket-stream.js';

/** Frames kept while the session is being requested (5 s of audio); older ones go first. */
const MAX_PENDING_FRAMES = 250;

/** Voicegain's audio websocket takes raw frames: nothing before, nothing after. */
const RAW_AUDIO: StreamProtocol<Buffer> = { opening: () => [], encode: (frame) => frame, closing: () => undefined };

export function voicegainSettings(config: Config): VoicegainSettings {
  return {
    gatewayUrl: config.VG_GATEWAY_URL!,
    resultsUrl: config.WEBSOCKET_SERVER!,
    ...(config.AUTH_NAME !== undefined && { authConf: config.AUTH_NAME }),
    leftName: config.LEFT_CHANNEL_NAME,
    rightName: config.RIGHT_CHANNEL_NAME,
    contentIncremental: config.CONTENT_INCREMENTAL,
    ...(config.SENSITIVITY !== undefined && { sensitivity: config.SENSITIVITY }),
    audioCapture: config.AUDIO_CAPTURE,
    noAudioTimeoutMs: config.NOAUDIOTIMEOUT,
  };
}

export class VoicegainStreams implements CallStreams {
  readonly #config: Config;
  readonly #logger: Logger;
  readonly #a: StreamIdentity;
  readonly #aligner: FrameAligner;
  readonly #abort = new AbortController();
  readonly #pending: Buffer[] = [];
  #stream: WebsocketStream | undefined;
  #requesting: Promise<void> | undefined;
  #state: 'new' | 'requesting' | 'streaming' | 'failed' | 'finished' = 'new';
  #finished: Promise<void> | undefined;

  constructor({ config, logger }: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity) {
    this.#config = config;
    this.#a = a;
    this.#logger = logger.child({ stream: 'voicegain', labels: [a.label, b.label] });
    this.#aligner = new FrameAligner({
      frameBytes: frameBytes(8000),
      onFrame: (left, right) => this.#deliver(interleave(left, right)),
    });
  }

  open(): void {
    if (this.#state !== 'new') return;
    this.#state = 'requesting';
    this.#requesting = this.#request();
  }

  async #request(): Promise<void> {
    const settings = voicegainSettings(this.#config);
    const body = voicegainRequestBody(settings, {
      callId: this.#a.callId,
      linkedId: this.#a.linkedId,
      caller: this.#a.caller,
      callee: this.#a.callee,
    });
    const timeout = AbortSignal.timeout(this.#config.VG_REQUEST_TIMEOUT_MS);
    let status: number;
    let text: string;
    try {
      const response = await fetch(settings.gatewayUrl, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          Authorization: `Bearer ${this.#config.JWT_TOKEN ?? ''}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.any([timeout, this.#abort.signal]),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      if (this.#abort.signal.aborted) return;
      const why = timeout.aborted ? `no answer within ${this.#config.VG_REQUEST_TIMEOUT_MS} ms` : (error as Error).message;
      this.#fail(`Voicegain session request failed: ${why}`);
      return;
    }
    if (this.#state !== 'requesting') return;
    const answer = readVoicegainAnswer(status, text);
    if (!answer.ok) {
      this.#fail(`Voicegain refused the session: ${answer.message}`);
      return;
    }
    this.#logger.info({ sessionIds: answer.sessionIds, audioUrl: answer.audioUrl.origin }, 'Voicegain sessions started');
    this.#stream = new WebsocketStream({ url: answer.audioUrl, connection: {}, protocol: RAW_AUDIO, logger: this.#logger });
    this.#stream.open();
    this.#state = 'streaming';
    for (const frame of this.#pending.splice(0)) this.#stream.send(frame);
  }

  #fail(message: string): void {
    this.#state = 'failed';
    this.#pending.length = 0;
    this.#logger.error({ url: this.#config.VG_GATEWAY_URL?.origin }, `${message}; the call goes on without transcription`);
  }

  #deliver(stereo: Buffer): void {
    if (this.#state === 'streaming') {
      this.#stream!.send(stereo);
    } else if (this.#state === 'requesting' || this.#state === 'new') {
      this.#pending.push(stereo);
      if (this.#pending.length > MAX_PENDING_FRAMES) this.#pending.shift();
    }
  }

  audio(leg: Leg, frame: Buffer): void {
    this.#aligner.push(leg === 'A' ? 0 : 1, frame);
  }

  dtmf(): void {
    // Voicegain's audio websocket carries audio only.
  }

  get holdsSockets(): boolean {
    return this.#state === 'requesting' || (this.#stream?.isOpen ?? false);
  }

  finish(reason: string): Promise<void> {
    this.#finished ??= this.#finish(reason);
    return this.#finished;
  }

  async #finish(reason: string): Promise<void> {
    // The last aligned frames go out first; a request still in flight is abandoned
    // (a session Voicegain opens anyway ends by itself after NOAUDIOTIMEOUT).
    this.#aligner.flush();
    if (this.#state !== 'streaming') {
      this.#abort.abort();
      this.#state = 'finished';
    }
    await this.#requesting;
    await this.#stream?.finish(reason);
    this.#state = 'finished';
  }
}
