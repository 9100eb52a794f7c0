/**
 * One websocket to a transcription server, as every provider uses it, kept
 * going for as long as the call lasts. The call never waits on it, and
 * nothing about the server can end the call or the process.
 *
 *   connecting ──open──▶ open ──lost (reset, 1001, 1006, …) / stalled──▶ waiting ──backoff──▶ connecting
 *        │                 │
 *        │                 └── server closes with 1000 ──▶ ended (the server ended this stream; as mod_audio_stream)
 *        └── handshake 401/403 ──▶ waiting AUTH_RETRY_MS (logged once per outage) ──▶ connecting
 *
 * Audio that cannot be sent is kept, up to `bufferMs` of it (STREAM_BUFFER_MS),
 * the oldest dropped first and counted. Every new connection starts with the
 * protocol's opening messages; a connection after the first (or the first of a
 * stream that continues one another instance streamed) says it is resumed and
 * where its first frame sits in the call's audio (`StreamResume`), then carries
 * the buffered items in order, then live ones.
 *
 * Stalls are outages too: a ping goes out every `heartbeatMs`, carrying the
 * count of items written so far; its pong tells which items the server has
 * read (websocket frames are read in order). No pong for `pongTimeoutMs`, or
 * more than `maxSocketBufferBytes` queued in the socket, and the connection is
 * dropped: everything written after the last acknowledged item is sent again on
 * the next connection (the server may have read up to one heartbeat of it; a
 * server that reads positions can tell). A connection that breaks abruptly
 * (reset, close) while the server was reading loses at most what was on the
 * wire at that instant; the protocol has no acknowledgement that could say.
 *
 * What goes on the wire is the protocol's business (StreamProtocol): items are
 * queued as they are and encoded only when sent. With `framesPerMessage` above
 * 1, that many consecutive frames go out as one binary message; each frame
 * keeps its own position, buffer budget and acknowledgement (the message's
 * write number), so outages and stalls treat them as before.
 */
import type WebSocket from 'ws';
import type { Logger } from 'pino';
import { openWebsocket, type StreamConnection } from './stream-connection.js';

export { USER_AGENT } from './stream-connection.js';

/** Where a resumed connection's first frame sits in the stream's audio. */
export interface StreamResume {
  /** Position of the first frame that follows, in ms of the stream's audio. */
  positionMs: number;
  /** Audio this stream dropped since the previous connection (its buffer overflowed). */
  droppedMs: number;
}

/** The messages of one wire format. */
export interface StreamProtocol<T> {
  /** Sent first on every new connection, before anything queued; `resume` on every connection but a new stream's first. */
  opening(resume: StreamResume | undefined): (string | Buffer)[];
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
  /** Whether an item is a frame of audio (counted in positions and in the buffer's budget); default: a Buffer. */
  isAudio?: (item: T) => boolean;
  /** Audio kept while it cannot be sent (STREAM_BUFFER_MS); older frames are dropped first. */
  bufferMs?: number;
  /** Duration of one frame of the call. */
  frameMs?: number;
  /** Audio items per frame of the call (2 for a stream carrying two tracks as separate messages). */
  itemsPerFrame?: number;
  /**
   * Consecutive audio items sent as one binary message (STREAM_BUFFER_SIZE / 20; default 1): fewer
   * writes, each frame that much later. The protocol must encode audio as a Buffer. An event
   * sends the frames before it at once, so the order on the wire is the order of send().
   */
  framesPerMessage?: number;
  /** The stream continues one streamed before (another instance): its position at the start, in ms. */
  resumedAtMs?: number | undefined;
  /** Reconnect backoff: initialMs × 2^n, at most maxMs, each scaled by a random 0.5–1. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
  /** After a 401 or 403 at the handshake, the next attempt waits this long. */
  authRetryMs?: number;
  /** Ping interval (STREAM_HEART_BEAT); 0: no pings, so no stall detection. */
  heartbeatMs?: number;
  /** A ping unanswered this long means the server stopped reading. */
  pongTimeoutMs?: number;
  /** Bytes queued in the socket beyond which the server counts as not reading. */
  maxSocketBufferBytes?: number;
  /** How long finish() waits for the close handshake. */
  closeTimeoutMs?: number;
  random?: () => number;
  /** Called once, when the stream's first connection is open (the call's set-up time ends there). */
  onFirstConnected?: () => void;
  /** Called for each audio frame put on the wire, with the ms since it was handed to send() (its `receivedAtMs`). */
  onFrameSent?: (latencyMs: number) => void;
}

export interface WebsocketStreamStats {
  framesSent: number;
  framesDropped: number;
  /** Items sent again after a stall or a lost connection. */
  itemsResent: number;
  connections: number;
  reconnects: number;
  stalls: number;
  serverMessages: number;
  serverTexts: number;
}

export type WebsocketStreamState = 'idle' | 'connecting' | 'open' | 'waiting' | 'ended';

export interface StreamSummary {
  state: WebsocketStreamState;
  bufferedMs: number;
  framesSent: number;
  framesDropped: number;
  connections: number;
  reconnects: number;
  stalls: number;
}

interface Entry<T> {
  item: T;
  audio: boolean;
  /** Audio position of the entry (an event: of the audio that follows it). */
  positionMs: number;
  /** Number of the write on the current connection (0 until written). */
  writeSeq: number;
  /** When the audio reached the service (performance.now()), for the latency histogram. */
  receivedAtMs: number | undefined;
}

/** A connection open at least this long counts as healthy: its loss restarts the backoff. */
const STABLE_CONNECTION_MS = 10_000;
const MAX_EVENTS_BUFFERED = 1000;
/** ws's send options, shared (ws copies them): no object made per frame. */
const BINARY = { binary: true } as const;
const TEXT = { binary: false } as const;

/** The delay before attempt `attempt` (0-based): exponential, capped, with jitter. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  return Math.round(Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20)) * (0.5 + random() / 2));
}

export class WebsocketStream<T = Buffer> {
  readonly stats: WebsocketStreamStats = {
    framesSent: 0,
    framesDropped: 0,
    itemsResent: 0,
    connections: 0,
    reconnects: 0,
    stalls: 0,
    serverMessages: 0,
    serverTexts: 0,
  };
  readonly #options: Required<Omit<WebsocketStreamOptions<T>, 'resumedAtMs' | 'onFirstConnected' | 'onFrameSent'>> &
    Pick<WebsocketStreamOptions<T>, 'resumedAtMs' | 'onFirstConnected' | 'onFrameSent'>;
  readonly #logger: Logger;
  /** Items not written to any socket yet, oldest first. */
  #pending: Entry<T>[] = [];
  /** Audio items for the current socket's next message, while framesPerMessage > 1 (fewer than that many). */
  #batch: Entry<T>[] = [];
  /** Items written to the current socket that the server has not acknowledged yet. */
  #unacked: Entry<T>[] = [];
  #pendingAudio = 0;
  #unackedAudio = 0;
  #pendingEvents = 0;
  #state: WebsocketStreamState = 'idle';
  #socket: WebSocket | undefined;
  #attempt = 0;
  #openedAt: number | undefined;
  #writeSeq = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  /** The socket dropped as stalled: on its close, what it did not acknowledge is sent again. */
  #stalledSocket: WebSocket | undefined;
  #nextPositionMs: number;
  #droppedSinceConnectionMs = 0;
  #everConnected = false;
  #outageLogged = false;
  #finished: Promise<void> | undefined;
  /** Audio items the buffer holds at most (bufferMs of audio). */
  readonly #maxFrames: number;

  constructor(options: WebsocketStreamOptions<T>) {
    this.#options = {
      isAudio: (item: T) => Buffer.isBuffer(item),
      bufferMs: 30_000,
      frameMs: 20,
      itemsPerFrame: 1,
      framesPerMessage: 1,
      reconnectInitialMs: 100,
      reconnectMaxMs: 1000,
      authRetryMs: 30_000,
      heartbeatMs: (options.connection.heartbeatSeconds ?? 0) * 1000,
      pongTimeoutMs: Math.max(5000, 3 * (options.connection.heartbeatSeconds ?? 0) * 1000),
      maxSocketBufferBytes: 512 * 1024,
      closeTimeoutMs: 2000,
      random: Math.random,
      ...options,
      resumedAtMs: options.resumedAtMs,
    };
    this.#logger = options.logger;
    this.#maxFrames = Math.max(1, Math.floor((this.#options.bufferMs / this.#options.frameMs) * this.#options.itemsPerFrame));
    this.#nextPositionMs = Math.max(0, Math.round((options.resumedAtMs ?? 0) / this.#options.frameMs) * this.#options.frameMs);
  }

  get state(): WebsocketStreamState {
    return this.#state;
  }

  /** True while a socket is open or being opened (for leak checks). */
  get isOpen(): boolean {
    return this.#socket !== undefined;
  }

  /** The stream as the operations endpoint shows it. */
  summary(): StreamSummary {
    return {
      state: this.#state,
      bufferedMs: Math.round(this.bufferedMs),
      framesSent: this.stats.framesSent,
      framesDropped: this.stats.framesDropped,
      connections: this.stats.connections,
      reconnects: this.stats.reconnects,
      stalls: this.stats.stalls,
    };
  }

  /** Audio held in memory (not yet written, or written and not yet acknowledged), in ms. */
  get bufferedMs(): number {
    return ((this.#pendingAudio + this.#batch.length + this.#unackedAudio) * this.#options.frameMs) / this.#options.itemsPerFrame;
  }

  open(): void {
    if (this.#state !== 'idle') return;
    this.#connect();
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (this.#finished !== undefined || this.#state === 'ended') return;
    this.#state = 'connecting';
    let socket: WebSocket;
    try {
      socket = openWebsocket(this.#options.url, this.#options.connection);
    } catch (error) {
      // Only a value the configuration check should have refused gets here: no retry could help.
      this.#state = 'ended';
      this.#logger.error({ err: error }, 'the stream cannot be opened with these settings; the call goes on without it');
      this.#dropAll();
      return;
    }
    this.#socket = socket;
    let refusedStatus: number | undefined;
    let lastError: string | undefined;
    socket.on('unexpected-response', (_request, response) => {
      refusedStatus = response.statusCode;
      response.resume();
      socket.terminate();
    });
    socket.on('open', () => this.#onOpen(socket));
    socket.on('message', (data, isBinary) => {
      this.stats.serverMessages++;
      if (isBinary) return;
      this.stats.serverTexts++;
      this.#logger.debug({ serverText: data.toString().slice(0, 2000) }, 'stream server message');
    });
    socket.on('pong', (data: Buffer) => {
      if (data.length === 4) this.#acknowledge(data.readUInt32BE(0));
    });
    socket.on('error', (error) => {
      lastError = error.message;
    });
    socket.on('close', (code) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      clearInterval(this.#heartbeat);
      if (this.#finished !== undefined) return;
      const wasOpen = this.#state === 'open';
      const stalled = this.#stalledSocket === socket;
      this.#stalledSocket = undefined;
      // Frames gathered for a message that never went out are the oldest of what waits.
      this.#unbatch();
      // A stalled server read nothing since its last pong: send that again. After a reset or
      // a close, what was written is taken as delivered (nothing could tell otherwise).
      this.#reclaim(stalled ? this.#unacked.length : 0);
      if (code === 1000) {
        // The server ended the stream on purpose: reconnecting would only be refused again.
        this.#state = 'ended';
        this.#logger.warn({ code }, 'stream closed by the server; not reconnecting');
        this.#dropAll();
        return;
      }
      if (this.#openedAt !== undefined && Date.now() - this.#openedAt >= STABLE_CONNECTION_MS) this.#attempt = 0;
      this.#openedAt = undefined;
      this.#state = 'waiting';
      const auth = refusedStatus === 401 || refusedStatus === 403;
      const delayMs = auth
        ? this.#options.authRetryMs
        : backoffMs(this.#attempt, this.#options.reconnectInitialMs, this.#options.reconnectMaxMs, this.#options.random);
      if (wasOpen || !this.#outageLogged) {
        this.#outageLogged = true;
        const fields = { code, status: refusedStatus, err: lastError, stalled, retryInMs: delayMs };
        if (auth)
          this.#logger.warn(
            fields,
            `the stream server refused the handshake (HTTP ${refusedStatus}); retrying every ${this.#options.authRetryMs / 1000} s`,
          );
        else if (wasOpen) this.#logger.warn(fields, 'stream connection lost; buffering and reconnecting');
        else this.#logger.warn(fields, 'stream connection failed; buffering and retrying');
      } else {
        this.#logger.debug({ code, status: refusedStatus, err: lastError, attempt: this.#attempt }, 'stream connection attempt failed');
      }
      this.#attempt++;
      this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
    });
  }

  #onOpen(socket: WebSocket): void {
    if (this.#socket !== socket) return;
    this.#openedAt = Date.now();
    this.stats.connections++;
    if (this.#everConnected) this.stats.reconnects++;
    const resumed = this.#everConnected || this.#options.resumedAtMs !== undefined;
    if (!this.#everConnected) this.#options.onFirstConnected?.();
    const first = this.#pending.find((entry) => entry.audio);
    const resume = resumed
      ? { positionMs: first?.positionMs ?? this.#nextPositionMs, droppedMs: this.#droppedSinceConnectionMs }
      : undefined;
    this.#everConnected = true;
    this.#droppedSinceConnectionMs = 0;
    this.#writeSeq = 0;
    for (const message of this.#options.protocol.opening(resume)) socket.send(message, Buffer.isBuffer(message) ? BINARY : TEXT);
    this.#state = 'open';
    if (this.#outageLogged || resumed) {
      this.#logger.info(
        { url: this.#options.url.origin, resumed, ...resume, backlogMs: this.#pendingAudio * this.#options.frameMs },
        'stream connected',
      );
    } else {
      this.#logger.info({ url: this.#options.url.origin, protocol: socket.protocol || undefined }, 'stream connected');
    }
    this.#outageLogged = false;
    const backlog = this.#pending;
    this.#pending = [];
    this.#pendingAudio = 0;
    this.#pendingEvents = 0;
    for (const entry of backlog) this.#submit(socket, entry);
    this.#startHeartbeat(socket);
  }

  /** STREAM_HEART_BEAT: a ping every interval carrying the write count; no pong within pongTimeoutMs is a stall. */
  #startHeartbeat(socket: WebSocket): void {
    const intervalMs = this.#options.heartbeatMs;
    if (intervalMs <= 0) return;
    let oldestUnanswered: number | undefined;
    socket.on('pong', () => {
      oldestUnanswered = undefined;
    });
    this.#heartbeat = setInterval(() => {
      const now = Date.now();
      if (oldestUnanswered !== undefined && now - oldestUnanswered >= this.#options.pongTimeoutMs) {
        this.#stall(socket, 'the stream server did not answer the ping');
        return;
      }
      oldestUnanswered ??= now;
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(this.#writeSeq >>> 0, 0);
      socket.ping(payload);
    }, intervalMs);
    this.#heartbeat.unref();
  }

  /** The server stopped reading: drop the connection; what it has not acknowledged is sent again. */
  #stall(socket: WebSocket, why: string): void {
    if (this.#socket !== socket) return;
    this.stats.stalls++;
    this.#logger.warn({ unacknowledged: this.#unacked.length, bufferedBytes: socket.bufferedAmount }, `${why}; reconnecting`);
    this.#stalledSocket = socket;
    socket.terminate();
  }

  #acknowledge(writeSeq: number): void {
    let count = 0;
    while (count < this.#unacked.length && this.#unacked[count]!.writeSeq <= writeSeq) count++;
    if (count === 0) return;
    for (const entry of this.#unacked.splice(0, count)) if (entry.audio) this.#unackedAudio--;
  }

  /** Puts the last `count` unacknowledged items back in front of the pending ones; forgets the rest. */
  #reclaim(count: number): void {
    const again = count > 0 ? this.#unacked.slice(-count) : [];
    this.#unacked = [];
    this.#unackedAudio = 0;
    if (again.length === 0) return;
    this.stats.itemsResent += again.length;
    for (const entry of again) {
      if (entry.audio) {
        this.stats.framesSent--;
        this.#pendingAudio++;
      } else {
        this.#pendingEvents++;
      }
    }
    this.#pending = [...again, ...this.#pending];
    this.#trim();
  }

  /** One item for an open socket: written now, or (audio, framesPerMessage > 1) gathered for the next message. */
  #submit(socket: WebSocket, entry: Entry<T>): void {
    if (this.#options.framesPerMessage <= 1) {
      this.#write(socket, [entry]);
      return;
    }
    if (entry.audio) {
      this.#batch.push(entry);
      if (this.#batch.length >= this.#options.framesPerMessage) this.#write(socket, this.#batch.splice(0));
      return;
    }
    if (this.#batch.length > 0) this.#write(socket, this.#batch.splice(0));
    this.#write(socket, [entry]);
  }

  /** Frames gathered for a message that was not sent go back in front of the pending items. */
  #unbatch(): void {
    if (this.#batch.length === 0) return;
    this.#pendingAudio += this.#batch.length;
    this.#pending = [...this.#batch.splice(0), ...this.#pending];
  }

  /** One message: one item, or several audio items' Buffers end to end. */
  #encode(entries: readonly Entry<T>[]): string | Buffer {
    const { protocol } = this.#options;
    if (entries.length === 1) return protocol.encode(entries[0]!.item);
    return Buffer.concat(
      entries.map((entry) => {
        const encoded = protocol.encode(entry.item);
        if (!Buffer.isBuffer(encoded)) throw new Error('framesPerMessage needs audio encoded as binary');
        return encoded;
      }),
    );
  }

  #write(socket: WebSocket, entries: Entry<T>[]): void {
    let message: string | Buffer;
    try {
      message = this.#encode(entries);
    } catch (error) {
      // An item the protocol cannot express is dropped; it never ends the stream or the call.
      this.stats.framesDropped += entries.length;
      this.#logger.warn({ err: error }, 'stream item dropped: the protocol cannot send it');
      return;
    }
    const writeSeq = ++this.#writeSeq;
    socket.send(message, Buffer.isBuffer(message) ? BINARY : TEXT);
    const now = performance.now();
    for (const entry of entries) {
      entry.writeSeq = writeSeq;
      this.#unacked.push(entry);
      if (!entry.audio) continue;
      this.stats.framesSent++;
      this.#unackedAudio++;
      if (entry.receivedAtMs !== undefined) this.#options.onFrameSent?.(now - entry.receivedAtMs);
    }
    if (this.#options.heartbeatMs <= 0) {
      // Without pings nothing is ever acknowledged, and nothing is sent again.
      this.#unacked.length = 0;
      this.#unackedAudio = 0;
    } else {
      this.#trim();
    }
    if (socket.bufferedAmount > this.#options.maxSocketBufferBytes)
      this.#stall(socket, 'the stream server stopped reading (socket buffer full)');
  }

  /** Holds memory to bufferMs of audio: the oldest unacknowledged frames go first, then the oldest pending. */
  #trim(): void {
    const maxFrames = this.#maxFrames;
    while (this.#pendingAudio + this.#unackedAudio > maxFrames && this.#unacked.length > 0) {
      if (this.#unacked.shift()!.audio) this.#unackedAudio--;
    }
    while (this.#pendingAudio > maxFrames || this.#pendingEvents > MAX_EVENTS_BUFFERED) {
      const index =
        this.#pendingAudio > maxFrames ? this.#pending.findIndex((entry) => entry.audio) : this.#pending.findIndex((entry) => !entry.audio);
      const [dropped] = this.#pending.splice(index, 1);
      if (dropped!.audio) {
        this.#pendingAudio--;
        this.stats.framesDropped++;
        this.#droppedSinceConnectionMs += this.#options.frameMs / this.#options.itemsPerFrame;
      } else {
        this.#pendingEvents--;
      }
    }
  }

  #dropAll(): void {
    this.stats.framesDropped += this.#pendingAudio;
    this.#pending = [];
    this.#pendingAudio = 0;
    this.#pendingEvents = 0;
  }

  /**
   * Queues one item (an audio frame, a DTMF event, ...); sends it now when connected.
   * `receivedAtMs`: when its audio reached the service (performance.now()), for onFrameSent.
   */
  send(item: T, receivedAtMs?: number): void {
    if (this.#finished !== undefined || this.#state === 'ended') return;
    const audio = this.#options.isAudio(item);
    const entry: Entry<T> = { item, audio, positionMs: this.#nextPositionMs, writeSeq: 0, receivedAtMs };
    if (audio) this.#nextPositionMs += this.#options.frameMs / this.#options.itemsPerFrame;
    // A socket that is closing (its close event not yet handled) takes nothing: it would be lost.
    if (this.#state === 'open' && this.#socket !== undefined && this.#socket.readyState === this.#socket.OPEN) {
      this.#submit(this.#socket, entry);
      return;
    }
    this.#pending.push(entry);
    if (audio) this.#pendingAudio++;
    else this.#pendingEvents++;
    this.#trim();
  }

  /** Sends the closing message and closes with 1000; idempotent; resolves once the socket is closed. */
  finish(reason: string): Promise<void> {
    this.#finished ??= this.#finish(reason);
    return this.#finished;
  }

  async #finish(reason: string): Promise<void> {
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeat);
    const socket = this.#socket;
    const open = this.#state === 'open';
    // The last frames gathered for a message go out before the close.
    if (open && socket !== undefined && this.#batch.length > 0) this.#write(socket, this.#batch.splice(0));
    this.#unbatch();
    this.#state = 'ended';
    // Audio that never got out: the server was unreachable to the end.
    this.#dropAll();
    try {
      if (socket !== undefined) await this.#close(socket, reason, open);
    } finally {
      this.#unacked = [];
      this.#unackedAudio = 0;
      this.#logger.info({ reason, ...this.stats }, 'stream closed');
    }
  }

  #close(socket: WebSocket, reason: string, open: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        socket.terminate();
        resolve();
      }, this.#options.closeTimeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (open) {
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
