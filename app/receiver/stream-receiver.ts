/**
 * The built-in receiver (`transcription-proxy receive`): a websocket server
 * that accepts our labelled streams, logs each stream's metadata and level,
 * and writes one WAV file per stream. It is the default sink for a first run
 * and a way for users to check their setup before pointing STREAM_URL at a
 * real transcription service.
 *
 * Whoever reaches its port can send to it, so it is bounded: a message larger
 * than MAX_MESSAGE_BYTES closes its connection (1009), a file that cannot be
 * written ends its stream (1011) and never the process, and it keeps no state
 * per stream beyond the connection's own (a reconnected stream's next file
 * name is found on disk). Stream messages are logged by the personal-data
 * policy (logging/pii.ts): numbers masked, DTMF digits left out, unless LOG_PII.
 */
import { createWriteStream, mkdirSync, openSync, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { levelDbfs, sumOfSquares, wavHeader } from '../media/wav.js';

export interface ReceiverOptions {
  host: string;
  port: number;
  directory: string;
  logger: Logger;
}

export interface RunningReceiver {
  port: number;
  /** Resolves with each finished stream's summary (for tests and scripts). */
  onStreamClosed(handler: (summary: StreamSummary) => void): void;
  close(): Promise<void>;
}

export interface StreamSummary {
  label: string;
  callId: string;
  file: string;
  frames: number;
  bytes: number;
  levelDbfs: number;
}

/** The largest message a stream may send: far above a 20 ms frame (1,280 bytes at 16 kHz stereo) or a metadata text. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Files per stream name (reconnections of one call's stream); beyond them the stream is refused (1011), no file overwritten. */
const MAX_FILES_PER_STREAM = 1000;

function safeName(text: string): string {
  return text.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 80) || 'stream';
}

/**
 * Creates the first of nameOf(1), nameOf(2), ... that does not exist yet, atomically (O_EXCL):
 * two connections of one stream at once (a reconnection while the old one is still closing)
 * never get the same file, which a check for the name followed by an open could give them.
 */
function createUniqueFile(nameOf: (seen: number) => string): { fd: number; path: string } {
  for (let seen = 1; ; seen++) {
    const path = nameOf(seen);
    try {
      return { fd: openSync(path, 'wx'), path };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || seen >= MAX_FILES_PER_STREAM) throw error;
    }
  }
}

export async function startReceiver(options: ReceiverOptions): Promise<RunningReceiver> {
  mkdirSync(options.directory, { recursive: true });
  const server = new WebSocketServer({ host: options.host, port: options.port, perMessageDeflate: false, maxPayload: MAX_MESSAGE_BYTES });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const handlers: ((summary: StreamSummary) => void)[] = [];
  let counter = 0;

  server.on('connection', (socket: WebSocket) => {
    let file: WriteStream | undefined;
    let path = '';
    let meta: Record<string, unknown> = {};
    let sampleRate = 8000;
    let channels = 1;
    let frames = 0;
    let bytes = 0;
    let sumSquares = 0;
    let failed = false;
    const logger = options.logger.child({ stream: ++counter });
    socket.on('error', (error) => logger.warn({ err: error }, 'stream connection error'));

    socket.on('message', (data, isBinary) => {
      const buffer = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (!isBinary) {
        const text = buffer.toString('utf8');
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(text) as Record<string, unknown>;
        } catch {
          logger.warn({ text: text.slice(0, 200) }, 'text frame that is not JSON');
          return;
        }
        if (file === undefined && message.event === 'start') {
          meta = message;
          sampleRate = Number(message.sampleRate) || 8000;
          channels = message.channels === 2 ? 2 : 1;
          // A stream that reconnects sends its metadata again: keep each connection's audio in its own file.
          const base = `${safeName(String(message.callId))}-${safeName(String(message.label))}`;
          const nameOf = (seen: number) => join(options.directory, seen === 1 ? `${base}.wav` : `${base}-${seen}.wav`);
          const cannotWrite = (error: unknown) => {
            logger.error({ err: error, file: path }, 'could not write the WAV file; the stream is closed');
            failed = true;
            socket.close(1011, 'cannot write the file');
          };
          let fd: number;
          try {
            ({ fd, path } = createUniqueFile(nameOf));
          } catch (error) {
            cannotWrite(error);
            return;
          }
          const opened = createWriteStream(path, { fd });
          file = opened;
          opened.on('error', cannotWrite);
          opened.write(wavHeader(sampleRate, channels, 0));
          logger.info({ metadata: message, file: path }, 'stream started');
        } else {
          logger.info({ message }, 'stream message');
        }
        return;
      }
      if (failed) return;
      if (file === undefined) {
        logger.warn('audio before metadata; dropped');
        return;
      }
      frames++;
      bytes += buffer.length;
      sumSquares += sumOfSquares(buffer);
      file.write(buffer);
    });

    const finish = async (code: number): Promise<void> => {
      if (file === undefined || failed) return;
      const finished = file;
      await new Promise((resolve) => finished.end(resolve));
      if (failed) return;
      const handle = await open(path, 'r+');
      await handle.write(wavHeader(sampleRate, channels, bytes), 0, 44, 0);
      await handle.close();
      const summary: StreamSummary = {
        label: String(meta.label),
        callId: String(meta.callId),
        file: path,
        frames,
        bytes,
        levelDbfs: Math.round(levelDbfs(sumSquares, bytes >> 1) * 10) / 10,
      };
      logger.info({ ...summary, closeCode: code, seconds: bytes / 2 / channels / sampleRate }, 'stream ended');
      for (const handler of handlers) handler(summary);
    };
    socket.on('close', (code) => {
      finish(code).catch((error: unknown) => logger.error({ err: error, file: path }, 'could not finish the WAV file'));
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    onStreamClosed: (handler) => handlers.push(handler),
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of server.clients) client.terminate();
        server.close(() => resolve());
      }),
  };
}
