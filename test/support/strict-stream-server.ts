/**
 * A transcription websocket server as strict as one written for
 * mod_audio_stream's mono stream: the first frame must be TEXT (the metadata),
 * then BINARY audio only, each a whole number of 16-bit samples; a final TEXT
 * frame (the stop message) is allowed only as the last frame before close.
 * TEXT events may come between (`dtmf` with STREAM_DTMF; `paused`, `resumed`,
 * `text`, ...), and are recorded, in order, with the number of audio frames
 * received before each.
 * It records every stream and every violation, so tests can assert on both.
 * Like a real transcription server it answers each stream's metadata with a
 * transcript (TRANSCRIPT_REPLY), which must never reach the service's logs
 * (log-audit.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { auditTexts } from './log-audit.js';
import { startRecordingServer, type StreamRecordingServer } from './recording-server.js';

/** What the server "heard": sent as a transcript message to every stream, searched for in the logs. */
export const TRANSCRIPT_REPLY = 'my card number is nine four one seven';

export interface ReceivedStream {
  headers: IncomingHttpHeaders;
  metadata: Record<string, unknown> | undefined;
  frames: Buffer[];
  frameArrivalMs: number[];
  stop: Record<string, unknown> | undefined;
  dtmf: Record<string, unknown>[];
  /** Text events other than the metadata and stop, with `framesBefore` added. */
  events: Record<string, unknown>[];
  closeCode: number | undefined;
  violations: string[];
  closed: Promise<void>;
}

export type StrictStreamServer = StreamRecordingServer<ReceivedStream>;

/** `host`: the local address to listen on (a lab's hostAddress, for services in network namespaces). */
export function startStrictStreamServer(host = '127.0.0.1'): Promise<StrictStreamServer> {
  return startRecordingServer<ReceivedStream>(
    'streams',
    (socket, request, notifyClosed) => {
      let resolveClosed!: () => void;
      const stream: ReceivedStream = {
        headers: request.headers,
        metadata: undefined,
        frames: [],
        frameArrivalMs: [],
        stop: undefined,
        dtmf: [],
        events: [],
        closeCode: undefined,
        violations: [],
        closed: new Promise((resolve) => {
          resolveClosed = resolve;
        }),
      };
      socket.on('message', (data, isBinary) => {
        const buffer = data as Buffer;
        if (stream.stop !== undefined) stream.violations.push('frame after the stop message');
        if (!isBinary) {
          let parsed: Record<string, unknown> | undefined;
          try {
            parsed = JSON.parse(buffer.toString('utf8')) as Record<string, unknown>;
          } catch {
            stream.violations.push('text frame that is not JSON');
          }
          if (parsed?.event === 'dtmf' && stream.metadata !== undefined) {
            stream.dtmf.push(parsed);
          } else if (stream.metadata !== undefined && parsed !== undefined && parsed.event !== 'stop' && parsed.event !== 'start') {
            stream.events.push({ ...parsed, framesBefore: stream.frames.length });
          } else if (stream.metadata === undefined) {
            if (stream.frames.length > 0) stream.violations.push('metadata after audio');
            stream.metadata = parsed;
            auditTexts(TRANSCRIPT_REPLY);
            socket.send(JSON.stringify({ event: 'transcript', label: parsed?.label, text: TRANSCRIPT_REPLY }));
          } else {
            stream.stop = parsed;
          }
          return;
        }
        if (stream.metadata === undefined) stream.violations.push('audio before metadata');
        if (buffer.length % 2 !== 0) stream.violations.push(`odd-sized audio frame of ${buffer.length} bytes`);
        stream.frames.push(Buffer.from(buffer));
        stream.frameArrivalMs.push(performance.now());
      });
      socket.on('close', (code) => {
        stream.closeCode = code;
        resolveClosed();
        notifyClosed();
      });
      return stream;
    },
    host,
  );
}
