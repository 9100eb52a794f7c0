/**
 * The text messages of our websocket stream format, version 1 (documented in
 * docs/stream-format.md). A stream is: one TEXT frame with the `start`
 * metadata, then BINARY frames of 20 ms of little-endian L16 audio (TEXT `dtmf`
 * events among them when STREAM_DTMF is on), then one TEXT `stop` frame and
 * close code 1000. That is the shape a server written for mod_audio_stream
 * already reads. STREAM_MODE=split sends one mono stream per party; stereo
 * (caller left) and mixed send one stream per call. Pure builders, no I/O.
 */
import type { StreamProtocol, StreamResume } from './websocket-stream.js';

export const STREAM_FORMAT_VERSION = 1;

export interface StreamIdentity {
  label: string;
  leg: 'A' | 'B';
  callId: string;
  channelId: string;
  linkedId: string;
  sipCallId: string;
  direction: 'inbound' | 'outbound';
  caller: string;
  callee: string;
  /** The service instance's name (NODE_NAME): which cell streams the call when there are several. */
  node: string;
  /**
   * The call's own data, for joining the transcript to a CRM record: PASS_HEADERS of leg A's
   * INVITE and the dialplan's HASH(TRANSCRIPTION_META) (call-meta.ts). Sent only when not empty.
   */
  meta?: Readonly<Record<string, string>>;
  /**
   * Which party of the call this leg carries: absent for the one it began with, 2 after its
   * first transfer, 3 after the next (docs/transfers.md). Metadata sent after a transfer (a
   * reconnection, a call adopted by another instance) describes the party the leg has now.
   */
  sequence?: number;
}

/**
 * On every connection of a stream but its very first: after a reconnection, or when the
 * stream continues a call another instance streamed.
 */
export interface StreamResumeFields {
  resumed: true;
  /** Where the first frame that follows sits in the stream's audio, in ms from its start. */
  positionMs: number;
  /** Audio dropped since the previous connection because the outage outlasted STREAM_BUFFER_MS. */
  droppedMs: number;
}

export interface StreamStartMessage extends StreamIdentity, Partial<StreamResumeFields> {
  event: 'start';
  version: typeof STREAM_FORMAT_VERSION;
  encoding: 'L16';
  sampleRate: 8000 | 16000;
  channels: 1;
  endianness: 'little';
  frameMs: 20;
}

export interface StreamStopMessage {
  event: 'stop';
  callId: string;
  label: string;
  reason: string;
}

/** The fields a resumed connection adds to the metadata; none on a stream's first connection. */
export function resumeFields(resume: StreamResume | undefined): StreamResumeFields | Record<string, never> {
  if (resume === undefined) return {};
  return { resumed: true, positionMs: resume.positionMs, droppedMs: resume.droppedMs };
}

/** The identity as the metadata carries it: `meta` only when there is some. */
function withoutEmptyMeta<T extends { meta?: Readonly<Record<string, string>> | undefined }>(identity: T): T {
  if (identity.meta !== undefined && Object.keys(identity.meta).length > 0) return identity;
  const { meta: _meta, ...rest } = identity;
  return rest as T;
}

export function startMessage(identity: StreamIdentity, sampleRate: 8000 | 16000): StreamStartMessage {
  return {
    event: 'start',
    version: STREAM_FORMAT_VERSION,
    ...withoutEmptyMeta(identity),
    encoding: 'L16',
    sampleRate,
    channels: 1,
    endianness: 'little',
    frameMs: 20,
  };
}

export type StreamMode = 'split' | 'stereo' | 'mixed';

/** The metadata of a call's single stream (STREAM_MODE stereo or mixed). */
export interface CallStreamStartMessage extends Partial<StreamResumeFields> {
  event: 'start';
  version: typeof STREAM_FORMAT_VERSION;
  mode: 'stereo' | 'mixed';
  /** Both labels joined with "+": one name for the stream, as split streams have. */
  label: string;
  /** The parties in channel order: stereo's left then right; mixed's parties. */
  labels: [string, string];
  callId: string;
  linkedId: string;
  direction: 'inbound' | 'outbound';
  caller: string;
  callee: string;
  node: string;
  meta?: Readonly<Record<string, string>>;
  legs: Pick<StreamIdentity, 'label' | 'leg' | 'channelId' | 'sipCallId' | 'sequence'>[];
  encoding: 'L16';
  sampleRate: 8000 | 16000;
  channels: 1 | 2;
  endianness: 'little';
  frameMs: 20;
}

export function callStartMessage(
  mode: 'stereo' | 'mixed',
  a: StreamIdentity,
  b: StreamIdentity,
  sampleRate: 8000 | 16000,
): CallStreamStartMessage {
  const leg = (identity: StreamIdentity) => ({
    label: identity.label,
    leg: identity.leg,
    channelId: identity.channelId,
    sipCallId: identity.sipCallId,
    ...(identity.sequence !== undefined && { sequence: identity.sequence }),
  });
  return {
    event: 'start',
    version: STREAM_FORMAT_VERSION,
    mode,
    label: `${a.label}+${b.label}`,
    labels: [a.label, b.label],
    callId: a.callId,
    linkedId: a.linkedId,
    direction: a.direction,
    caller: a.caller,
    callee: b.callee,
    node: a.node,
    ...withoutEmptyMeta({ meta: a.meta }),
    legs: [leg(a), leg(b)],
    encoding: 'L16',
    sampleRate,
    channels: mode === 'stereo' ? 2 : 1,
    endianness: 'little',
    frameMs: 20,
  };
}

/** STREAM_DTMF: a digit pressed on one leg, on that leg's stream (or the call's). */
export interface StreamDtmfMessage {
  event: 'dtmf';
  label: string;
  digit: string;
  durationMs: number;
}

/**
 * A text event of the call on its stream(s), between audio frames: `paused` / `resumed`
 * (transcription paused for the call, e.g. while a card number is taken), `text` (sent by an
 * operator, like mod_audio_stream's send_text), and whatever later features add.
 */
export interface StreamEventMessage {
  event: string;
  label: string;
  [field: string]: unknown;
}

/**
 * The party a leg carries changed (a transfer): on that leg's stream (split) or the call's
 * (stereo, mixed), before the new party's first frame. The fields are the leg's metadata for
 * the new party.
 */
export interface StreamParticipantMessage {
  event: 'participant';
  label: string;
  leg: 'A' | 'B';
  channelId: string;
  sipCallId: string;
  caller: string;
  callee: string;
  sequence: number;
  /** `transfer` (blind) or `attended-transfer`. */
  reason: string;
}

export function participantMessage(identity: StreamIdentity, reason: string): StreamParticipantMessage {
  return {
    event: 'participant',
    label: identity.label,
    leg: identity.leg,
    channelId: identity.channelId,
    sipCallId: identity.sipCallId,
    caller: identity.caller,
    callee: identity.callee,
    sequence: identity.sequence ?? 1,
    reason,
  };
}

/** What our streams carry between start and stop: audio frames, DTMF and other text events. */
export type StreamItem = Buffer | StreamDtmfMessage | StreamEventMessage | StreamParticipantMessage;

/**
 * Our format as a StreamProtocol: the start metadata opens every connection (a resumed one
 * with `resumed`, `positionMs` and `droppedMs` after the identity); stop closes. `start` is
 * read at each connection: after a transfer a reconnection describes the leg's new party.
 */
export function ourStreamProtocol(start: () => StreamStartMessage | CallStreamStartMessage): StreamProtocol<StreamItem> {
  return {
    opening: (resume) => [JSON.stringify(resume === undefined ? start() : insertAfter(start(), 'node', resumeFields(resume)))],
    encode: (item) => (Buffer.isBuffer(item) ? item : JSON.stringify(item)),
    closing: (reason) => JSON.stringify(stopMessage(start(), reason)),
  };
}

export function stopMessage(identity: Pick<StreamIdentity, 'callId' | 'label'>, reason: string): StreamStopMessage {
  return { event: 'stop', callId: identity.callId, label: identity.label, reason };
}

/** `object` with `fields` inserted after `key` (JSON keeps insertion order: the metadata stays readable). */
function insertAfter<T extends object>(object: T, key: keyof T, fields: object): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(object)) {
    out[name] = value;
    if (name === key) Object.assign(out, fields);
  }
  return out as T;
}
