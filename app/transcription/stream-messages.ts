/**
 * The text messages of our websocket stream format, version 1 (documented in
 * docs/stream-format.md). A stream is: one TEXT frame with the `start`
 * metadata, then BINARY frames of 20 ms of little-endian L16 audio (TEXT `dtmf`
 * events among them when STREAM_DTMF is on), then one TEXT `stop` frame and
 * close code 1000. That is the shape a server written for mod_audio_stream
 * already reads. STREAM_MODE=split sends one mono stream per party; stereo
 * (caller left) and mixed send one stream per call. Pure builders, no I/O.
 */
import type { StreamProtocol } from './websocket-stream.js';

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
}

/** On a stream that continues one streamed before (another instance streamed the call, or a reconnection). */
export interface StreamResumeFields {
  resumed: true;
  /** Where the first frame that follows sits in the call's audio, in ms from the stream's start. */
  positionMs: number;
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

/** The fields a resumed stream adds to its metadata; none on a stream's first connection. */
export function resumeFields(resumedAtMs: number | undefined): StreamResumeFields | Record<string, never> {
  if (resumedAtMs === undefined) return {};
  // Positions are whole frames: 20 ms each.
  return { resumed: true, positionMs: Math.max(0, Math.round(resumedAtMs / 20) * 20) };
}

export function startMessage(identity: StreamIdentity, sampleRate: 8000 | 16000, resumedAtMs?: number): StreamStartMessage {
  return {
    event: 'start',
    version: STREAM_FORMAT_VERSION,
    ...identity,
    ...resumeFields(resumedAtMs),
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
  legs: Pick<StreamIdentity, 'label' | 'leg' | 'channelId' | 'sipCallId'>[];
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
  resumedAtMs?: number,
): CallStreamStartMessage {
  const leg = (identity: StreamIdentity) => ({
    label: identity.label,
    leg: identity.leg,
    channelId: identity.channelId,
    sipCallId: identity.sipCallId,
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
    callee: a.callee,
    node: a.node,
    ...resumeFields(resumedAtMs),
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

/** What our streams carry between start and stop: audio frames and DTMF events. */
export type StreamItem = Buffer | StreamDtmfMessage;

/** Our format as a StreamProtocol: the start metadata opens every connection; stop closes. */
export function ourStreamProtocol(start: StreamStartMessage | CallStreamStartMessage): StreamProtocol<StreamItem> {
  return {
    opening: () => [JSON.stringify(start)],
    encode: (item) => (Buffer.isBuffer(item) ? item : JSON.stringify(item)),
    closing: (reason) => JSON.stringify(stopMessage(start, reason)),
  };
}

export function stopMessage(identity: Pick<StreamIdentity, 'callId' | 'label'>, reason: string): StreamStopMessage {
  return { event: 'stop', callId: identity.callId, label: identity.label, reason };
}
