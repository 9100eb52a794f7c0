/**
 * PROVIDER=voicegain, the seed proxy's flow. When B answers, one POST to
 * VG_GATEWAY_URL (Authorization: Bearer JWT_TOKEN) asks for two real-time
 * sessions, left (the caller) and right (the callee); Voicegain sends their
 * transcripts to WEBSOCKET_SERVER itself. The answer's audio.stream.websocketUrl
 * then receives the call as stereo L16 at 8 kHz, binary frames only, and is
 * closed at hangup. The body is built in voicegain-request.ts, one place.
 *
 * Whatever Voicegain answers, the call goes on. A network error, a timeout
 * (VG_REQUEST_TIMEOUT_MS), a 5xx or a 429 is asked again while the call lasts
 * (429: after its Retry-After), the call's audio buffered meanwhile (up to
 * STREAM_BUFFER_MS); a refusal (401, 400, ...) is logged with Voicegain's
 * message and ends the streaming of this call only. The audio websocket, once
 * open, reconnects after outages like every stream (websocket-stream.ts).
 */
import type { Logger } from 'pino';
import type { Config } from '../config/keys.js';
import { interleave } from '../media/pcm-channels.js';
import { frameBytes } from '../media/pcm.js';
import { requestText } from '../net/http-request.js';
import type { CallStreams, CallStreamsDeps, Leg } from './call-streams.js';
import { FrameAligner } from './frame-aligner.js';
import type { StreamIdentity } from './stream-messages.js';
import { readVoicegainAnswer, voicegainRequestBody, voicegainRetryDelayMs, type VoicegainSettings } from './voicegain-request.js';
import { WebsocketStream, type StreamProtocol, type StreamSummary } from './websocket-stream.js';

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
  readonly provider = 'voicegain';
  readonly #config: Config;
  readonly #onConnected: (() => void) | undefined;
  readonly #onFrameSent: ((latencyMs: number) => void) | undefined;
  readonly #logger: Logger;
  readonly #a: StreamIdentity;
  readonly #aligner: FrameAligner;
  readonly #abort = new AbortController();
  readonly #pending: { frame: Buffer; receivedAtMs: number | undefined }[] = [];
  #droppedWhileRequesting = 0;
  #stream: WebsocketStream | undefined;
  #requesting: Promise<void> | undefined;
  #state: 'new' | 'requesting' | 'streaming' | 'failed' | 'finished' = 'new';
  #finished: Promise<void> | undefined;

  constructor({ config, logger, onConnected, onFrameSent }: CallStreamsDeps, a: StreamIdentity, b: StreamIdentity) {
    this.#config = config;
    this.#a = a;
    this.#onConnected = onConnected;
    this.#onFrameSent = onFrameSent;
    this.#logger = logger.child({ stream: 'voicegain', labels: [a.label, b.label] });
    this.#aligner = new FrameAligner({
      frameBytes: frameBytes(8000),
      onFrame: (left, right, firstArrivedMs) => this.#deliver(interleave(left, right), firstArrivedMs),
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
      meta: this.#a.meta,
    });
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.#post(settings.gatewayUrl, body);
      if (this.#state !== 'requesting') return;
      if (outcome.kind === 'answer') {
        const answer = readVoicegainAnswer(outcome.status, outcome.text);
        if (answer.ok) {
          this.#startStreaming(answer.audioUrl, answer.sessionIds);
          return;
        }
        const delayMs = voicegainRetryDelayMs(outcome.status, outcome.retryAfter, attempt);
        if (delayMs === undefined) {
          this.#fail(`Voicegain refused the session: ${answer.message}`);
          return;
        }
        this.#logger.warn(
          { status: outcome.status, retryInMs: delayMs, attempt: attempt + 1 },
          `Voicegain session request failed (${answer.message}); asking again`,
        );
        await this.#wait(delayMs);
      } else {
        const delayMs = voicegainRetryDelayMs(undefined, undefined, attempt)!;
        this.#logger.warn({ err: outcome.why, retryInMs: delayMs, attempt: attempt + 1 }, 'Voicegain session request failed; asking again');
        await this.#wait(delayMs);
      }
      if (this.#state !== 'requesting') return;
    }
  }

  async #post(
    url: URL,
    body: unknown,
  ): Promise<{ kind: 'answer'; status: number; text: string; retryAfter: string | null } | { kind: 'failed'; why: string }> {
    try {
      const response = await requestText(url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          Authorization: `Bearer ${this.#config.JWT_TOKEN ?? ''}`,
        },
        body: JSON.stringify(body),
        timeoutMs: this.#config.VG_REQUEST_TIMEOUT_MS,
        signal: this.#abort.signal,
      });
      const retryAfter = response.headers['retry-after'];
      return { kind: 'answer', status: response.status, text: response.text, retryAfter: retryAfter ?? null };
    } catch (error) {
      return { kind: 'failed', why: (error as Error).message };
    }
  }

  /** Waits, or less when the call ends first. */
  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#abort.signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  #startStreaming(audioUrl: URL, sessionIds: readonly string[]): void {
    this.#logger.info({ sessionIds, audioUrl: audioUrl.origin }, 'Voicegain sessions started');
    this.#stream = new WebsocketStream({
      url: audioUrl,
      connection: { heartbeatSeconds: this.#config.STREAM_HEART_BEAT },
      protocol: RAW_AUDIO,
      logger: this.#logger,
      bufferMs: this.#config.STREAM_BUFFER_MS,
      framesPerMessage: this.#config.STREAM_BUFFER_SIZE / 20,
      ...(this.#onConnected && { onFirstConnected: this.#onConnected }),
      ...(this.#onFrameSent && { onFrameSent: this.#onFrameSent }),
    });
    this.#stream.open();
    this.#state = 'streaming';
    for (const { frame, receivedAtMs } of this.#pending.splice(0)) this.#stream.send(frame, receivedAtMs);
  }

  #fail(message: string): void {
    this.#state = 'failed';
    this.#droppedWhileRequesting += this.#pending.length;
    this.#pending.length = 0;
    this.#logger.error({ url: this.#config.VG_GATEWAY_URL?.origin }, `${message}; the call goes on without transcription`);
  }

  #deliver(stereo: Buffer, receivedAtMs: number | undefined): void {
    if (this.#state === 'streaming') {
      this.#stream!.send(stereo, receivedAtMs);
    } else if (this.#state === 'requesting' || this.#state === 'new') {
      this.#pending.push({ frame: stereo, receivedAtMs });
      if (this.#pending.length > Math.max(1, this.#config.STREAM_BUFFER_MS / 20)) {
        this.#pending.shift();
        this.#droppedWhileRequesting++;
      }
    }
  }

  audio(leg: Leg, frame: Buffer, _receivedAtMs?: number, lostBefore?: number): void {
    this.#aligner.push(leg === 'A' ? 0 : 1, frame, lostBefore);
  }

  /** Voicegain's audio websocket carries audio only: no place for events (a paused call sends silence). */
  event(): boolean {
    return false;
  }

  /**
   * Voicegain's audio websocket carries raw stereo audio only, and its sessions were asked for
   * once with the parties' names: a transfer cannot be said. The new party goes on in the same
   * channel of the same sessions; the change is only logged (docs/transfers.md).
   */
  participant(leg: Leg, identity: StreamIdentity, reason: string): void {
    this.#logger.info({ leg, label: identity.label, sequence: identity.sequence, reason }, 'party changed; Voicegain is not told');
  }

  summaries(): (StreamSummary & { name: string })[] {
    const summary = this.#stream?.summary() ?? {
      state: this.#state === 'failed' || this.#state === 'finished' ? 'ended' : 'connecting',
      bufferedMs: this.#pending.length * 20,
      framesSent: 0,
      framesDropped: this.#droppedWhileRequesting,
      connections: 0,
      reconnects: 0,
      stalls: 0,
    };
    return [{ name: 'voicegain', ...summary }];
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
    this.#logger.info({ alignment: this.#aligner.stats }, 'stream aligned');
    if (this.#state !== 'streaming') {
      this.#abort.abort();
      this.#state = 'finished';
    }
    await this.#requesting;
    await this.#stream?.finish(reason);
    if (this.#droppedWhileRequesting > 0)
      this.#logger.warn({ framesDropped: this.#droppedWhileRequesting }, 'audio dropped while the Voicegain session was requested');
    this.#state = 'finished';
  }
}
