/**
 * The TCP server Asterisk's AudioSocket ExternalMedia channels connect to
 * (AUDIOSOCKET_PORT). Each connection starts with a UUID message; the leg that
 * registered that UUID receives the connection's audio. A connection with an
 * unknown UUID, or whose bytes cannot be AudioSocket, is counted and closed:
 * it never affects another connection. Framing is app/media/audiosocket-codec.ts.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { AudioSocketDecoder, AudioSocketFrameError, type AudioSocketMessage } from './audiosocket-codec.js';

export interface AudioSocketSink {
  onAudio(frame: Buffer): void;
  onConnection(socket: Socket): void;
}

export class AudioSocketServer {
  readonly stats = { connections: 0, unknownUuid: 0, invalidStreams: 0 };
  readonly #server: Server;
  readonly #sinks = new Map<string, AudioSocketSink>();
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
    server.on('connection', (socket) => this.#accept(socket));
  }

  static async listen(host: string, port: number): Promise<AudioSocketServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return new AudioSocketServer(server);
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
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
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
