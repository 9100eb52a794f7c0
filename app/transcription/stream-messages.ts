/**
 * The text messages of our websocket stream format, version 1 (documented in
 * docs/stream-format.md). A stream is: one TEXT frame with the `start`
 * metadata, then BINARY frames of 20 ms of little-endian L16 audio, then one
 * TEXT `stop` frame and close code 1000. That is the shape a server written for
 * mod_audio_stream's mono stream already reads. Pure builders, no I/O.
 */

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
}

export interface StreamStartMessage extends StreamIdentity {
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

export function startMessage(identity: StreamIdentity, sampleRate: 8000 | 16000): StreamStartMessage {
  return {
    event: 'start',
    version: STREAM_FORMAT_VERSION,
    ...identity,
    encoding: 'L16',
    sampleRate,
    channels: 1,
    endianness: 'little',
    frameMs: 20,
  };
}

export function stopMessage(identity: Pick<StreamIdentity, 'callId' | 'label'>, reason: string): StreamStopMessage {
  return { event: 'stop', callId: identity.callId, label: identity.label, reason };
}
