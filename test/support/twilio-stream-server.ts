/**
 * A websocket server that reads Twilio Media Streams as strictly as a server
 * written for Twilio would: TEXT JSON only; `connected` first, then `start`
 * (sequenceNumber "1"), then `media` of the announced tracks and `stop` last;
 * one sequenceNumber counter and a chunk counter per track, which a
 * reconnection of the same stream (same streamSid) continues, every
 * number a string, 160 bytes of µ-law per media message. Everything else is
 * recorded as a violation. Each track's audio is decoded to L16 for tone checks.
 */
import { startRecordingServer, type StreamRecordingServer } from './recording-server.js';
import { ulawToL16 } from './tones.js';

/** A parsed Twilio message: JSON whose shape the checks below verify field by field. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type TwilioJson = Record<string, any>;

export interface ReceivedTwilioStream {
  start: TwilioJson | undefined;
  stopped: boolean;
  events: string[];
  /** Decoded audio (little-endian L16, 8 kHz) per track. */
  tracks: Map<string, Buffer[]>;
  /** When each media message of a track arrived (performance.now()). */
  arrivals: Map<string, number[]>;
  dtmf: TwilioJson[];
  violations: string[];
  closeCode: number | undefined;
}

export type TwilioStreamServer = StreamRecordingServer<ReceivedTwilioStream>;

export function startTwilioStreamServer(): Promise<TwilioStreamServer> {
  // Where each stream's counters stood when its last connection ended: a reconnection continues them.
  const counters = new Map<string, { sequence: number; chunks: Map<string, number> }>();
  return startRecordingServer<ReceivedTwilioStream>('Twilio streams', (socket, _request, notifyClosed) => {
    const stream: ReceivedTwilioStream = {
      start: undefined,
      stopped: false,
      events: [],
      tracks: new Map(),
      arrivals: new Map(),
      dtmf: [],
      violations: [],
      closeCode: undefined,
    };
    let sequence = 0;
    let chunks = new Map<string, number>();
    const violation = (text: string) => {
      if (stream.violations.length < 20) stream.violations.push(text);
    };

    socket.on('message', (data, isBinary) => {
      if (isBinary) return violation('binary frame');
      let message: TwilioJson;
      try {
        message = JSON.parse((data as Buffer).toString('utf8')) as TwilioJson;
      } catch {
        return violation('text frame that is not JSON');
      }
      const event = String(message.event);
      stream.events.push(event);
      if (stream.stopped) violation(`${event} after stop`);
      if (event === 'connected') {
        if (stream.events.length !== 1) violation('connected is not the first message');
        if (message.protocol !== 'Call' || message.version !== '1.0.0') violation('connected without protocol Call, version 1.0.0');
        return;
      }
      if (event === 'start') {
        const earlier = counters.get(String(message.streamSid));
        if (earlier !== undefined) {
          sequence = earlier.sequence;
          chunks = earlier.chunks;
        }
        counters.set(String(message.streamSid), { sequence, chunks });
      }
      sequence++;
      const kept = counters.get(String(stream.start?.streamSid ?? message.streamSid));
      if (kept !== undefined) kept.sequence = sequence;
      if (message.sequenceNumber !== String(sequence))
        violation(`${event}: sequenceNumber ${JSON.stringify(message.sequenceNumber)}, expected "${sequence}"`);
      if (event !== 'start' && message.streamSid !== stream.start?.streamSid) violation(`${event}: streamSid differs from start`);
      switch (event) {
        case 'start': {
          const start = message.start as TwilioJson | undefined;
          if (stream.events.length !== 2) violation('start is not the second message');
          if (!/^MZ[0-9a-f]{32}$/.test(String(message.streamSid)) || start?.streamSid !== message.streamSid)
            violation('start: bad streamSid');
          if (!/^AC[0-9a-fA-F]{32}$/.test(String(start?.accountSid)) || !/^CA[0-9a-f]{32}$/.test(String(start?.callSid)))
            violation('start: bad accountSid or callSid');
          const format = start?.mediaFormat as Record<string, unknown> | undefined;
          if (format?.encoding !== 'audio/x-mulaw' || format.sampleRate !== 8000 || format.channels !== 1)
            violation('start: mediaFormat is not audio/x-mulaw 8000 1');
          if (!Array.isArray(start?.tracks)) violation('start: no tracks');
          stream.start = { ...start, streamSid: message.streamSid };
          return;
        }
        case 'media': {
          const media = message.media as Record<string, unknown> | undefined;
          const track = String(media?.track);
          if (!(stream.start?.tracks as string[] | undefined)?.includes(track)) return violation(`media of unannounced track ${track}`);
          const chunk = (chunks.get(track) ?? 0) + 1;
          chunks.set(track, chunk);
          if (media?.chunk !== String(chunk)) violation(`media ${track}: chunk ${JSON.stringify(media?.chunk)}, expected "${chunk}"`);
          if (typeof media?.timestamp !== 'string' || !/^\d+$/.test(media.timestamp))
            violation(`media ${track}: timestamp is not a string of digits`);
          const payload = Buffer.from(String(media?.payload), 'base64');
          if (payload.length !== 160) violation(`media ${track}: ${payload.length} bytes of µ-law, expected 160`);
          const list = stream.tracks.get(track) ?? [];
          list.push(ulawToL16(payload));
          stream.tracks.set(track, list);
          stream.arrivals.set(track, [...(stream.arrivals.get(track) ?? []), performance.now()]);
          return;
        }
        case 'dtmf':
          stream.dtmf.push(message.dtmf as TwilioJson);
          return;
        case 'stop':
          stream.stopped = true;
          if (message.stop?.callSid !== stream.start?.callSid || message.stop?.accountSid !== stream.start?.accountSid)
            violation('stop: sids differ from start');
          return;
        default:
          violation(`unknown event ${event}`);
      }
    });
    socket.on('close', (code) => {
      stream.closeCode = code;
      notifyClosed();
    });
    return stream;
  });
}
