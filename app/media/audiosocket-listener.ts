/**
 * The AudioSocket server, listening only once AudioSocket is used: at start
 * when MEDIA_TRANSPORT=audiosocket (a taken AUDIOSOCKET_PORT then fails the
 * start, not the first call), else when the first call asks for it with the
 * Stasis argument transport=audiosocket. A service that never taps over
 * AudioSocket opens no TCP port for it.
 */
import { AudioSocketServer } from './audiosocket-server.js';

export class AudioSocketListener {
  readonly #host: string;
  readonly #port: number;
  #server: Promise<AudioSocketServer> | undefined;
  #listening: AudioSocketServer | undefined;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  /** The server, listening from the first call on (a failed listen is tried again next time). */
  server(): Promise<AudioSocketServer> {
    this.#server ??= AudioSocketServer.listen(this.#host, this.#port).then(
      (server) => {
        this.#listening = server;
        return server;
      },
      (error: unknown) => {
        this.#server = undefined;
        throw error;
      },
    );
    return this.#server;
  }

  /** The port it listens on; undefined while it does not. */
  get port(): number | undefined {
    return this.#listening?.port;
  }

  async close(): Promise<void> {
    const server = await this.#server?.catch(() => undefined);
    this.#server = undefined;
    this.#listening = undefined;
    await server?.close();
  }
}
