/**
 * The JSON text messages of a Twilio Media Stream, built exactly as Twilio
 * sends them to a websocket server, so that a server written for Twilio can
 * take our calls: here the proxy plays Twilio's part. One websocket connection
 * carries `connected`, `start`, then `media` (and, on bidirectional streams
 * only, `dtmf`), then `stop`. Shapes, field order and string-typed numbers follow
 * https://www.twilio.com/docs/voice/media-streams/websocket-messages (copies in
 * test/fixtures/twilio/). Pure: counters and clocks live here, the socket and
 * the time source belong to the caller.
 *
 * Where Twilio's page leaves a detail open, the reading chosen is:
 * - `chunk` counts per track (inbound and outbound each from "1"): the page's
 *   two media examples (outbound chunk 1 at sequence 3, inbound chunk 2 at
 *   sequence 4) fit only that; no live both_tracks capture confirmed it.
 * - `timestamp` is a presentation time: where the frame sits in its track's
 *   audio, in ms from the stream's start (the caller counts 20 ms a frame, so
 *   arrival jitter never shows, and audio dropped during an outage shows as a
 *   jump). Timestamps of the two tracks may repeat each other, as in the
 *   page's examples.
 * - One `media` message is one 20 ms frame (160 µ-law bytes). The page states
 *   no frame size; 20 ms is what third-party captures show.
 * - `sequenceNumber` counts every message after `connected`, starting with
 *   `start` at "1", as the page says (one third-party comment shows a `start`
 *   at "2"; the page wins). Twilio's streams never reconnect; ours do, after an
 *   outage of the server, and then the new connection's `connected` and `start`
 *   continue the numbering (and each track's `chunk`), so the server sees one
 *   stream whose counters never go back.
 * - The order of `start.tracks` is the caller's; for both tracks Twilio's order
 *   is unverified, and ["inbound", "outbound"] is what third-party code expects.
 */
import { randomBytes } from 'node:crypto';
import { encodeUlaw } from '../media/g711.js';
import { frameBytes } from '../media/pcm.js';
import { AppError } from '../errors.js';

export interface TwilioStreamIds {
  accountSid: string;
  callSid: string;
  streamSid: string;
}

export type TwilioTrack = 'inbound' | 'outbound';

export const TWILIO_SAMPLE_RATE = 8000;
export const TWILIO_FRAME_MS = 20;
/** Little-endian L16 bytes of one frame handed to `media()`: 20 ms at 8 kHz. */
export const TWILIO_FRAME_BYTES = frameBytes(TWILIO_SAMPLE_RATE, TWILIO_FRAME_MS);

export interface TwilioConnectedMessage {
  event: 'connected';
  protocol: 'Call';
  version: '1.0.0';
}

export interface TwilioStartMessage {
  event: 'start';
  sequenceNumber: string;
  start: {
    accountSid: string;
    streamSid: string;
    callSid: string;
    tracks: TwilioTrack[];
    mediaFormat: { encoding: 'audio/x-mulaw'; sampleRate: typeof TWILIO_SAMPLE_RATE; channels: 1 };
    customParameters: Record<string, string>;
  };
  streamSid: string;
}

export interface TwilioMediaMessage {
  event: 'media';
  sequenceNumber: string;
  media: { track: TwilioTrack; chunk: string; timestamp: string; payload: string };
  streamSid: string;
}

export interface TwilioDtmfMessage {
  event: 'dtmf';
  streamSid: string;
  sequenceNumber: string;
  /** Twilio: "Value is always `inbound_track`" (not "inbound" as in media). */
  dtmf: { track: 'inbound_track'; digit: string };
}

export interface TwilioStopMessage {
  event: 'stop';
  sequenceNumber: string;
  stop: { accountSid: string; callSid: string };
  streamSid: string;
}

/**
 * Misuse of the encoder (a bad SID, an unknown track, a frame that is not 20 ms,
 * a message before `opening()`). Not retryable: the caller's input is wrong.
 */
export class TwilioMessageError extends AppError {
  constructor(message: string) {
    super('TWILIO_MESSAGE_INVALID', message);
    this.name = 'TwilioMessageError';
  }
}

const HEX32 = /^[0-9a-f]{32}$/i;
const DTMF_DIGIT = /^[0-9A-D*#]$/;

/**
 * Sids in Twilio's shape: prefix + 32 lower-case hex. Random digits when `hex32`
 * is absent; given digits may be upper-case and are lower-cased (Twilio's
 * pattern accepts both, real SIDs are lower-case).
 */
export function twilioSid(prefix: 'AC' | 'CA' | 'MZ', hex32?: string): string {
  if (hex32 === undefined) return prefix + randomBytes(16).toString('hex');
  if (!HEX32.test(hex32)) throw new TwilioMessageError(`SID digits must be 32 hexadecimal digits, got ${hex32.length} characters`);
  return prefix + hex32.toLowerCase();
}

export class TwilioMessageEncoder {
  readonly #ids: TwilioStreamIds;
  readonly #tracks: readonly TwilioTrack[];
  readonly #customParameters: Readonly<Record<string, string>>;
  #opened = false;
  #sequenceNumber = 0;
  readonly #chunks = new Map<TwilioTrack, number>();

  constructor(ids: TwilioStreamIds, tracks: readonly TwilioTrack[], customParameters: Record<string, string>) {
    if (tracks.length === 0) throw new TwilioMessageError('a stream needs at least one track');
    if (new Set(tracks).size !== tracks.length) throw new TwilioMessageError(`tracks repeat: ${tracks.join(', ')}`);
    for (const [name, value] of Object.entries(customParameters)) {
      if (typeof value !== 'string') throw new TwilioMessageError(`custom parameter ${name} is not a string`);
    }
    this.#ids = { ...ids };
    this.#tracks = [...tracks];
    this.#customParameters = { ...customParameters };
  }

  /**
   * A new websocket connection: returns [connected, start] JSON texts. The stream's counters
   * (sequenceNumber, each track's chunk) go on across connections, so a server sees one stream;
   * a resumed connection's start says so in its customParameters (`resumed`, `positionMs`,
   * `droppedMs`), Twilio having no field for it.
   */
  opening(resume?: { positionMs: number; droppedMs: number }): string[] {
    this.#opened = true;
    const connected: TwilioConnectedMessage = { event: 'connected', protocol: 'Call', version: '1.0.0' };
    const resumed: Record<string, string> =
      resume === undefined ? {} : { resumed: 'true', positionMs: String(resume.positionMs), droppedMs: String(resume.droppedMs) };
    const start: TwilioStartMessage = {
      event: 'start',
      sequenceNumber: this.#nextSequenceNumber(),
      start: {
        accountSid: this.#ids.accountSid,
        streamSid: this.#ids.streamSid,
        callSid: this.#ids.callSid,
        tracks: [...this.#tracks],
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: TWILIO_SAMPLE_RATE, channels: 1 },
        customParameters: { ...this.#customParameters, ...resumed },
      },
      streamSid: this.#ids.streamSid,
    };
    return [JSON.stringify(connected), JSON.stringify(start)];
  }

  /**
   * One 20 ms frame of little-endian L16 8 kHz mono for a track → a `media` JSON text (µ-law,
   * base64). `positionMs` is where the frame sits in the track's audio: Twilio's timestamp,
   * so a gap (audio dropped in an outage) shows as a jump.
   */
  media(track: TwilioTrack, l16le: Buffer, positionMs: number): string {
    this.#requireOpened('media');
    const timestamp = Math.max(0, Math.round(finite(positionMs)));
    if (!this.#tracks.includes(track))
      throw new TwilioMessageError(`track ${track} is not one of this stream's tracks (${this.#tracks.join(', ')})`);
    if (l16le.length !== TWILIO_FRAME_BYTES) {
      throw new TwilioMessageError(`a media frame is ${TWILIO_FRAME_BYTES} bytes (20 ms of L16 at 8 kHz), got ${l16le.length}`);
    }
    const chunk = (this.#chunks.get(track) ?? 0) + 1;
    this.#chunks.set(track, chunk);
    const message: TwilioMediaMessage = {
      event: 'media',
      sequenceNumber: this.#nextSequenceNumber(),
      media: {
        track,
        chunk: String(chunk),
        timestamp: String(timestamp),
        payload: encodeUlaw(l16le).toString('base64'),
      },
      streamSid: this.#ids.streamSid,
    };
    return JSON.stringify(message);
  }

  /**
   * `dtmf` JSON text (Twilio: track is always "inbound_track"). Twilio sends
   * these on bidirectional streams only, which carry the inbound track only.
   */
  dtmf(digit: string): string {
    this.#requireOpened('dtmf');
    if (!DTMF_DIGIT.test(digit)) throw new TwilioMessageError(`DTMF digit must be one of 0-9, A-D, * and #, got "${digit}"`);
    const message: TwilioDtmfMessage = {
      event: 'dtmf',
      streamSid: this.#ids.streamSid,
      sequenceNumber: this.#nextSequenceNumber(),
      dtmf: { track: 'inbound_track', digit },
    };
    return JSON.stringify(message);
  }

  /** `stop` JSON text. */
  stop(): string {
    this.#requireOpened('stop');
    const message: TwilioStopMessage = {
      event: 'stop',
      sequenceNumber: this.#nextSequenceNumber(),
      stop: { accountSid: this.#ids.accountSid, callSid: this.#ids.callSid },
      streamSid: this.#ids.streamSid,
    };
    return JSON.stringify(message);
  }

  /** Throws before the first `opening()`. */
  #requireOpened(event: string): void {
    if (!this.#opened) throw new TwilioMessageError(`${event} before opening(): a stream starts with connected and start`);
  }

  #nextSequenceNumber(): string {
    this.#sequenceNumber += 1;
    return String(this.#sequenceNumber);
  }
}

function finite(ms: number): number {
  if (!Number.isFinite(ms)) throw new TwilioMessageError(`time must be a finite number of milliseconds, got ${ms}`);
  return ms;
}
