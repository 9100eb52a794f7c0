/**
 * AudioSocket framing (Asterisk's res_audiosocket; CyCoreSystems/audiosocket),
 * as pure code: bytes in, messages out, and back. Every message is
 *
 *   0                   1                   2
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |     kind      |   payload length (big-endian)  |  payload ...  |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 *   0x00 hangup     (payload ignored; usually empty)
 *   0x01 UUID       (exactly 16 raw bytes)
 *   0x03 DTMF       (exactly one ASCII byte)
 *   0x10 slin 8 kHz, 0x11..0x18 slin 12/16/24/32/44.1/48/96/192 kHz
 *                   (16-bit signed linear, LITTLE-endian, unlike slin over RTP)
 *   0xFF error      (empty, or an error code in the first byte)
 *
 * The decoder is fed TCP chunks as they arrive: a message split anywhere (even
 * inside its 3-byte header) or several messages in one chunk are ordinary
 * cases. Before Asterisk 22.7 / 20.17 every audio frame was labelled 0x10
 * whatever its rate, so the decoder reports the kind and does not decide the
 * rate: the caller knows which format it asked Asterisk for.
 */
import { AppError } from '../errors.js';

export const KIND_HANGUP = 0x00;
export const KIND_UUID = 0x01;
export const KIND_DTMF = 0x03;
export const KIND_SLIN = 0x10;
export const KIND_SLIN12 = 0x11;
export const KIND_SLIN16 = 0x12;
export const KIND_SLIN24 = 0x13;
export const KIND_SLIN32 = 0x14;
export const KIND_SLIN44 = 0x15;
export const KIND_SLIN48 = 0x16;
export const KIND_SLIN96 = 0x17;
export const KIND_SLIN192 = 0x18;
export const KIND_ERROR = 0xff;

export const HEADER_BYTES = 3;
/** 100 ms of 16-bit mono audio at 192 kHz; no sane message (audio or not) is longer. */
export const MAX_AUDIO_PAYLOAD = (192_000 * 2) / 10;

const UUID_BYTES = 16;

const SAMPLE_RATES: ReadonlyMap<number, number> = new Map([
  [KIND_SLIN, 8000],
  [KIND_SLIN12, 12_000],
  [KIND_SLIN16, 16_000],
  [KIND_SLIN24, 24_000],
  [KIND_SLIN32, 32_000],
  [KIND_SLIN44, 44_100],
  [KIND_SLIN48, 48_000],
  [KIND_SLIN96, 96_000],
  [KIND_SLIN192, 192_000],
]);

/**
 * The sample rate a kind announces, or undefined for a kind that is not audio.
 * 0x10 says 8000, but Asterisk before 22.7 / 20.17 used it for every rate.
 */
export function sampleRateOfKind(kind: number): number | undefined {
  return SAMPLE_RATES.get(kind);
}

export function isAudioKind(kind: number): boolean {
  return SAMPLE_RATES.has(kind);
}

export type AudioSocketMessage =
  | { type: 'uuid'; uuid: string }
  /** `payload` may be a view into a pushed chunk: do not modify chunks after pushing them. */
  | { type: 'audio'; kind: number; payload: Buffer }
  | { type: 'dtmf'; digit: string }
  | { type: 'hangup' }
  | { type: 'error'; code?: number }
  | { type: 'unknown'; kind: number; length: number };

/**
 * AUDIOSOCKET_FRAME_INVALID, carrying the messages that were complete in the
 * same push() before the bad one, so audio up to the failure is not lost.
 */
export class AudioSocketFrameError extends AppError {
  readonly messages: readonly AudioSocketMessage[];

  constructor(reason: string, messages: readonly AudioSocketMessage[], cause?: unknown) {
    super('AUDIOSOCKET_FRAME_INVALID', `invalid AudioSocket frame: ${reason}`, cause === undefined ? {} : { cause });
    this.name = 'AudioSocketFrameError';
    this.messages = messages;
  }
}

function invalidInput(reason: string): AppError {
  return new AppError('AUDIOSOCKET_FRAME_INVALID', `cannot encode AudioSocket frame: ${reason}`);
}

/** Why a header can never start a valid message, or undefined if it can. */
function headerProblem(kind: number, length: number): string | undefined {
  if (length > MAX_AUDIO_PAYLOAD) return `kind 0x${kind.toString(16)} with ${length} bytes exceeds ${MAX_AUDIO_PAYLOAD}`;
  if (kind === KIND_UUID && length !== UUID_BYTES) return `UUID of ${length} bytes`;
  if (kind === KIND_DTMF && length !== 1) return `DTMF of ${length} bytes`;
  return undefined;
}

function formatUuid(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function toMessage(kind: number, payload: Buffer): AudioSocketMessage {
  if (isAudioKind(kind)) return { type: 'audio', kind, payload };
  switch (kind) {
    case KIND_UUID:
      return { type: 'uuid', uuid: formatUuid(payload) };
    case KIND_DTMF:
      return { type: 'dtmf', digit: String.fromCharCode(payload[0]!) };
    case KIND_HANGUP:
      return { type: 'hangup' };
    case KIND_ERROR:
      return payload.length === 0 ? { type: 'error' } : { type: 'error', code: payload[0]! };
    default:
      return { type: 'unknown', kind, length: payload.length };
  }
}

/**
 * Turns a stream of chunks into messages. After a bad header it stays failed:
 * every later push() throws too, and the caller closes that connection. It
 * holds at most one incomplete message (3 + MAX_AUDIO_PAYLOAD bytes).
 */
export class AudioSocketDecoder {
  #chunks: Buffer[] = [];
  /** Bytes of #chunks[0] already consumed. */
  #offset = 0;
  #buffered = 0;
  #header: { kind: number; length: number } | undefined;
  #failure: { reason: string; error: AudioSocketFrameError } | undefined;

  /** Bytes held while waiting for the rest of a message (a parsed header is not counted). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Every message completed by `chunk`; throws AudioSocketFrameError on an impossible message. */
  push(chunk: Buffer): AudioSocketMessage[] {
    if (this.#failure !== undefined) throw new AudioSocketFrameError(this.#failure.reason, [], this.#failure.error);
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const messages: AudioSocketMessage[] = [];
    for (;;) {
      if (this.#header === undefined) {
        if (this.#buffered < HEADER_BYTES) break;
        const header = this.#take(HEADER_BYTES);
        const kind = header[0]!;
        const length = header.readUInt16BE(1);
        const problem = headerProblem(kind, length);
        if (problem !== undefined) {
          const error = new AudioSocketFrameError(problem, messages);
          this.#failure = { reason: problem, error };
          this.#chunks = [];
          this.#offset = 0;
          this.#buffered = 0;
          throw error;
        }
        this.#header = { kind, length };
      }
      if (this.#buffered < this.#header.length) break;
      messages.push(toMessage(this.#header.kind, this.#take(this.#header.length)));
      this.#header = undefined;
    }
    // Keep only our own copy of a partly used chunk, not the (maybe large) buffer it views.
    const first = this.#chunks[0];
    if (first !== undefined && this.#offset > 0) {
      this.#chunks[0] = Buffer.from(first.subarray(this.#offset));
      this.#offset = 0;
    }
    return messages;
  }

  /** The next `n` buffered bytes: a view when they lie in one chunk, else a copy. */
  #take(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length - this.#offset >= n) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    let used = 0;
    while (written < n) {
      const chunk = this.#chunks[used]!;
      const copied = chunk.copy(out, written, this.#offset, Math.min(chunk.length, this.#offset + n - written));
      written += copied;
      if (this.#offset + copied === chunk.length) {
        used += 1;
        this.#offset = 0;
      } else {
        this.#offset += copied;
      }
    }
    this.#chunks.splice(0, used);
    return out;
  }
}

/** One message: header and payload. */
export function encodeMessage(kind: number, payload: Buffer): Buffer {
  if (!Number.isInteger(kind) || kind < 0 || kind > 0xff) throw invalidInput(`kind ${kind}`);
  const problem = headerProblem(kind, payload.length);
  if (problem !== undefined) throw invalidInput(problem);
  const message = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  message[0] = kind;
  message.writeUInt16BE(payload.length, 1);
  payload.copy(message, HEADER_BYTES);
  return message;
}

/** The UUID message; `uuid` in canonical 8-4-4-4-12 hex form. */
export function encodeUuid(uuid: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) throw invalidInput(`UUID "${uuid}"`);
  return encodeMessage(KIND_UUID, Buffer.from(uuid.replace(/-/g, ''), 'hex'));
}

/** An audio message; `samples` are 16-bit little-endian PCM. */
export function encodeAudio(kind: number, samples: Buffer): Buffer {
  if (!isAudioKind(kind)) throw invalidInput(`kind 0x${kind.toString(16)} is not audio`);
  if (samples.length % 2 !== 0) throw invalidInput(`${samples.length} bytes is not whole 16-bit samples`);
  return encodeMessage(kind, samples);
}

export function encodeHangup(): Buffer {
  return encodeMessage(KIND_HANGUP, Buffer.alloc(0));
}
