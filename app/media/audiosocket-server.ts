/**
 * The TCP server Asterisk's AudioSocket ExternalMedia channels connect to
 * (AUDIOSOCKET_PORT). Each connection starts with a UUID message; the leg that
 * registered that UUID receives the connection's audio. A connection with an
 * unknown UUID, or whose bytes cannot be AudioSocket, is counted and closed:
 * it never affects another connection. Framing is app/media/audiosocket-codec.ts.
 *
 * Anyone who can reach the port can connect, so a connection must earn its
 * place: one that has not named its leg within UUID_TIMEOUT_MS is closed, and
 * at most MAX_PENDING connections wait for their UUID at a time (beyond that
 * the oldest waiting one is closed). Asterisk sends the UUID as the first bytes
 * right after connecting, so idle connections cannot keep a call from being
 * tapped. The server listens only once AudioSocket is used (audiosocket-listener.ts).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { AudioSocketDecoder, AudioSocketFrameError, type AudioSocketMessage } from './audiosocket-codec.js';

export interface AudioSocketSink {
  onAudio(frame: Buffer): void;
  onConnection(socket: Socket): void;
}

/** How long a new connection may take to send its UUID. */
export const UUID_TIMEOUT_MS = 2000;
/** Connections waiting for their UUID at once; the oldest is closed to make room. */
export const MAX_PENDING = 256;

export interface AudioSocketServerLimits {
  uuidTimeoutMs?: number;
  maxPending?: number;
}

export class AudioSocketServer {
  readonly stats = { connections: 0, unknownUuid: 0, invalidStreams: 0, uuidTimeouts: 0, pendingEvicted: 0 };
  readonly #server: Server;
  readonly #sinks = new Map<string, AudioSocketSink>();
  readonly #sockets = new Set<Socket>();
  /** Connections that have not named their leg yet, oldest first (a Set keeps insertion order). */
  readonly #pending = new Set<Socket>();
  readonly #uuidTimeoutMs: number;
  readonly #maxPending: number;

  private constructor(server: Server, limits: AudioSocketServerLimits) {
    this.#server = server;
    this.#uuidTimeoutMs = limits.uuidTimeoutMs ?? UUID_TIMEOUT_MS;
    this.#maxPending = limits.maxPending ?? MAX_PENDING;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async listen(host: string, port: number, limits: AudioSocketServerLimits = {}): Promise<AudioSocketServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return new AudioSocketServer(server, limits);
  }

  /** Connections still waiting for their UUID. */
  get pendingConnections(): number {
    return this.#pending.size;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Routes the connection that announces `uuid` to `sink`; returns the removal. */
  register(uuid: string, sink: AudioSocketSink): () => void {
    this.#sinks.set(uuid.toLowerCase(), sink);
    return () => {
      this.#sinks.delete(uuid.toLowerCase());
    };
  }

  #accept(socket: Socket): void {
    this.stats.connections++;
    if (this.#pending.size >= this.#maxPending) {
      const oldest = this.#pending.values().next().value;
      if (oldest !== undefined) {
        this.#pending.delete(oldest);
        this.stats.pendingEvicted++;
        oldest.destroy();
      }
    }
    this.#sockets.add(socket);
    this.#pending.add(socket);
    const uuidTimer = setTimeout(() => {
      if (!this.#pending.delete(socket)) return;
      this.stats.uuidTimeouts++;
      socket.destroy();
    }, this.#uuidTimeoutMs);
    uuidTimer.unref();
    socket.on('close', () => {
      clearTimeout(uuidTimer);
      this.#pending.delete(socket);
      this.#sockets.delete(socket);
    });
    socket.on('error', () => socket.destroy());
    const decoder = new AudioSocketDecoder();
    const connection: { sink?: AudioSocketSink } = {};
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#deliver(socket, connection, decoder.push(chunk));
      } catch (error) {
        // Frames decoded before the bad bytes still belong to the leg; then this connection ends.
        if (error instanceof AudioSocketFrameError) this.#deliver(socket, connection, error.messages);
        this.stats.invalidStreams++;
        socket.destroy();
      }
    });
  }

  /** The first message names the leg (its UUID); audio then goes to that leg. */
  #deliver(socket: Socket, connection: { sink?: AudioSocketSink }, messages: readonly AudioSocketMessage[]): void {
    for (const message of messages) {
      if (connection.sink === undefined) {
        const sink = message.type === 'uuid' ? this.#sinks.get(message.uuid) : undefined;
        if (sink === undefined) {
          this.stats.unknownUuid++;
          socket.destroy();
          return;
        }
        connection.sink = sink;
        this.#pending.delete(socket);
        sink.onConnection(socket);
      } else if (message.type === 'audio') {
        connection.sink.onAudio(message.payload);
      } else if (message.type === 'hangup') {
        socket.end();
      }
    }
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
