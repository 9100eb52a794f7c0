/**
 * One websocket to a transcription server, as every provider uses it. The
 * call never waits on it: what is sent before the connection is open is
 * buffered (bounded), a lost connection is retried a few times with backoff,
 * and every new connection starts with the protocol's opening messages
 * (metadata, or Twilio's connected/start), so a server never sees audio it
 * cannot attribute. Giving up is logged, not thrown.
 *
 * What goes on the wire is the protocol's business (StreamProtocol): items are
 * queued as they are and encoded only when sent, because some protocols number
 * their messages per connection. Text the server sends back is counted and
 * logged at debug level under `serverText`.
 */
import type WebSocket from 'ws';
import type { Logger } from 'pino';
import { openWebsocket, type StreamConnection } from './stream-connection.js';

export { USER_AGENT } from './stream-connection.js';

/** The messages of one wire format. */
export interface StreamProtocol<T> {
  /** Sent first on every new connection, before anything queued. */
  opening(): (string | Buffer)[];
  /** One queued item as it goes on the wire: a Buffer is sent BINARY, a string TEXT. */
  encode(item: T): string | Buffer;
  /** Sent last before a clean close, if anything. */
  closing(reason: string): string | undefined;
}

export interface WebsocketStreamOptions<T> {
  url: URL;
  connection: StreamConnection;
  protocol: StreamProtocol<T>;
  logger: Logger;
  /** Items kept while not connected; older ones are dropped first. */
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
  serverTexts: number;
}

/** A connection open at least this long counts as healthy: its loss restarts the retry budget. */
const STABLE_CONNECTION_MS = 10_000;

export class WebsocketStream<T = Buffer> {
  readonly stats: WebsocketStreamStats = { framesSent: 0, framesDropped: 0, connections: 0, serverMessages: 0, serverTexts: 0 };
  readonly #options: Required<WebsocketStreamOptions<T>>;
  readonly #logger: Logger;
  readonly #buffer: T[] = [];
  #socket: WebSocket | undefined;
  #ready = false;
  #closing = false;
  #attempt = 0;
  #openedAt: number | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #finished: Promise<void> | undefined;

  constructor(options: WebsocketStreamOptions<T>) {
    this.#options = { maxBufferedFrames: 250, maxReconnectAttempts: 5, closeTimeoutMs: 2000, ...options };
    this.#logger = options.logger;
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
    const socket = openWebsocket(this.#options.url, this.#options.connection);
    this.#socket = socket;
    socket.on('open', () => {
      this.#openedAt = Date.now();
      this.stats.connections++;
      for (const message of this.#options.protocol.opening()) socket.send(message, { binary: Buffer.isBuffer(message) });
      this.#ready = true;
      for (const item of this.#buffer.splice(0)) this.#send(item);
      this.#startHeartbeat(socket);
      this.#logger.info({ url: this.#options.url.origin, protocol: socket.protocol || undefined }, 'stream connected');
    });
    socket.on('message', (data, isBinary) => {
      this.stats.serverMessages++;
      if (isBinary) return;
      this.stats.serverTexts++;
      this.#logger.debug({ serverText: data.toString().slice(0, 2000) }, 'stream server message');
    });
    socket.on('error', (error) => {
      this.#logger.warn({ err: error.message }, 'stream connection error');
    });
    socket.on('close', (code) => {
      this.#ready = false;
      this.#socket = undefined;
      clearInterval(this.#heartbeat);
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

  /** STREAM_HEART_BEAT: a ping every N seconds; one still unanswered at the next ends the connection (then retried). */
  #startHeartbeat(socket: WebSocket): void {
    const seconds = this.#options.connection.heartbeatSeconds ?? 0;
    if (seconds <= 0) return;
    let answered = true;
    socket.on('pong', () => {
      answered = true;
    });
    this.#heartbeat = setInterval(() => {
      if (!answered) {
        this.#logger.warn({ heartbeatSeconds: seconds }, 'stream server did not answer the ping; reconnecting');
        socket.terminate();
        return;
      }
      answered = false;
      socket.ping();
    }, seconds * 1000);
    this.#heartbeat.unref();
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

  #send(item: T): void {
    let message: string | Buffer;
    try {
      message = this.#options.protocol.encode(item);
    } catch (error) {
      // An item the protocol cannot express is dropped; it never ends the stream or the call.
      this.stats.framesDropped++;
      this.#logger.warn({ err: (error as Error).message }, 'stream item dropped: the protocol cannot send it');
      return;
    }
    this.#socket!.send(message, { binary: Buffer.isBuffer(message) });
    this.stats.framesSent++;
  }

  /** Queues one item (an audio frame, a DTMF event, ...). */
  send(item: T): void {
    if (this.#closing) return;
    if (this.#ready) {
      this.#send(item);
      return;
    }
    this.#buffer.push(item);
    if (this.#buffer.length > this.#options.maxBufferedFrames) {
      this.#buffer.shift();
      this.stats.framesDropped++;
    }
  }

  /** Sends the closing message and closes with 1000; idempotent; resolves once the socket is closed. */
  finish(reason: string): Promise<void> {
    this.#finished ??= this.#finish(reason);
    return this.#finished;
  }

  async #finish(reason: string): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const socket = this.#socket;
    this.stats.framesDropped += this.#buffer.splice(0).length;
    try {
      if (socket !== undefined) await this.#close(socket, reason);
    } finally {
      this.#logger.info({ reason, ...this.stats }, 'stream closed');
    }
  }

  #close(socket: WebSocket, reason: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate();
        resolve();
      }, this.#options.closeTimeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.#ready) {
        const closing = this.#options.protocol.closing(reason);
        if (closing !== undefined) socket.send(closing);
        socket.close(1000, 'call ended');
      } else {
        socket.terminate();
      }
    }).finally(() => {
      this.#socket = undefined;
    });
  }
}
