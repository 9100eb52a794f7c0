/**
 * One labelled audio stream to the transcription websocket (STREAM_URL).
 * The call never waits on it: audio that arrives before the connection is
 * open is buffered (bounded), a lost connection is retried a few times with
 * backoff, and every new connection starts with the metadata frame again, so a
 * server never sees audio it cannot attribute. Giving up is logged, not thrown.
 */
import WebSocket from 'ws';
import type { Logger } from 'pino';
import { stopMessage, type StreamStartMessage } from './stream-messages.js';

export interface WebsocketStreamOptions {
  url: URL;
  token?: string | undefined;
  start: StreamStartMessage;
  logger: Logger;
  /** Frames kept while not connected; older ones are dropped first. */
  maxBufferedFrames?: number;
  maxReconnectAttempts?: number;
  /** How long finish() waits for the close handshake. */
  closeTimeoutMs?: number;
}

export interface WebsocketStreamStats {
  framesSent: number;
  framesDropped: number;
  connections: number;
  serverMessages: number;
}

export const USER_AGENT = 'asterisk-transcription-proxy/0.1';

/** A connection open at least this long counts as healthy: its loss restarts the retry budget. */
const STABLE_CONNECTION_MS = 10_000;

export class WebsocketStream {
  readonly stats: WebsocketStreamStats = { framesSent: 0, framesDropped: 0, connections: 0, serverMessages: 0 };
  readonly #options: Required<Omit<WebsocketStreamOptions, 'token'>> & { token?: string | undefined };
  readonly #logger: Logger;
  readonly #buffer: Buffer[] = [];
  #socket: WebSocket | undefined;
  #ready = false;
  #closing = false;
  #attempt = 0;
  #openedAt: number | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #finished: Promise<void> | undefined;

  constructor(options: WebsocketStreamOptions) {
    this.#options = { maxBufferedFrames: 250, maxReconnectAttempts: 5, closeTimeoutMs: 2000, ...options };
    this.#logger = options.logger;
  }

  get label(): string {
    return this.#options.start.label;
  }

  /** True while a socket is open or being opened (for leak checks). */
  get isOpen(): boolean {
    return this.#socket !== undefined;
  }

  open(): void {
    this.#connect();
  }

  #connect(): void {
    if (this.#closing) return;
    const headers: Record<string, string> = { 'User-Agent': USER_AGENT };
    if (this.#options.token) headers.Authorization = `Bearer ${this.#options.token}`;
    const socket = new WebSocket(this.#options.url, { headers, perMessageDeflate: false, handshakeTimeout: 5000 });
    this.#socket = socket;
    socket.on('open', () => {
      this.#openedAt = Date.now();
      this.stats.connections++;
      socket.send(JSON.stringify(this.#options.start));
      this.#ready = true;
      for (const frame of this.#buffer.splice(0)) this.#send(frame);
      this.#logger.info({ url: this.#options.url.origin }, 'stream connected');
    });
    socket.on('message', (data, isBinary) => {
      this.stats.serverMessages++;
      if (!isBinary) this.#logger.debug({ serverText: data.toString().slice(0, 2000) }, 'stream server message');
    });
    socket.on('error', (error) => {
      this.#logger.warn({ err: error.message }, 'stream connection error');
    });
    socket.on('close', (code) => {
      this.#ready = false;
      this.#socket = undefined;
      if (this.#closing) return;
      if (code === 1000) {
        // The server ended the stream on purpose: reconnecting would only be refused again.
        this.#logger.warn({ code }, 'stream closed by the server; not reconnecting');
        this.#closing = true;
        return;
      }
      // Only a connection that stayed up a while earns a fresh set of attempts;
      // otherwise a server that accepts and drops at once would be hammered forever.
      if (this.#openedAt !== undefined && Date.now() - this.#openedAt >= STABLE_CONNECTION_MS) this.#attempt = 0;
      this.#openedAt = undefined;
      this.#logger.warn({ code }, 'stream connection closed unexpectedly');
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    if (this.#attempt >= this.#options.maxReconnectAttempts) {
      this.#logger.error({ attempts: this.#attempt }, 'stream given up; the call continues without it');
      return;
    }
    const delayMs = Math.min(250 * 2 ** this.#attempt, 5000);
    this.#attempt++;
    this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #send(frame: Buffer): void {
    this.#socket!.send(frame, { binary: true });
    this.stats.framesSent++;
  }

  /** Queues one frame of little-endian audio. */
  sendAudio(frame: Buffer): void {
    if (this.#closing) return;
    if (this.#ready) {
      this.#send(frame);
      return;
    }
    this.#buffer.push(frame);
    if (this.#buffer.length > this.#options.maxBufferedFrames) {
      this.#buffer.shift();
      this.stats.framesDropped++;
    }
  }

  /** Sends the stop message and closes with 1000; idempotent; resolves once the socket is closed. */
  finish(reason: string): Promise<void> {
    this.#finished ??= this.#finish(reason);
    return this.#finished;
  }

  async #finish(reason: string): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retryTimer);
    const socket = this.#socket;
    this.stats.framesDropped += this.#buffer.splice(0).length;
    if (socket === undefined) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate();
        resolve();
      }, this.#options.closeTimeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.#ready) {
        socket.send(JSON.stringify(stopMessage(this.#options.start, reason)));
        socket.close(1000, 'call ended');
      } else {
        socket.terminate();
      }
    });
    this.#socket = undefined;
  }
}
