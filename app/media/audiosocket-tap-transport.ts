/**
 * The `audiosocket` tap transport: ExternalMedia with encapsulation=audiosocket,
 * transport=tcp and a UUID of ours in `data`; Asterisk connects to our
 * AudioSocketServer and announces that UUID, and the channel enters Stasis
 * only then. Audio arrives little-endian (kind 0x12 for slin16; older Asterisk
 * labels every rate 0x10).
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { AudioSocketServer } from './audiosocket-server.js';
import type { TapTransport } from './tap-transport.js';

export class AudioSocketTapTransport implements TapTransport {
  readonly kind = 'audiosocket';
  readonly request;
  readonly uuid = randomUUID();
  readonly #counters = { frames: 0, bytes: 0, droppedOddFrames: 0 };
  readonly #unregister: () => void;
  #socket: Socket | undefined;
  #onAudio: ((frame: Buffer) => void) | undefined;

  constructor(server: AudioSocketServer, advertiseHost: string, format: 'slin' | 'slin16') {
    this.request = { externalHost: `${advertiseHost}:${server.port}`, format, encapsulation: 'audiosocket', transport: 'tcp', data: this.uuid } as const;
    this.#unregister = server.register(this.uuid, {
      onConnection: (socket) => {
        this.#socket = socket;
        socket.once('close', () => { if (this.#socket === socket) this.#socket = undefined; });
      },
      onAudio: (frame) => {
        if (frame.length % 2 !== 0) {
          this.#counters.droppedOddFrames++;
          return;
        }
        this.#counters.frames++;
        this.#counters.bytes += frame.length;
        this.#onAudio?.(frame);
      },
    });
  }

  get holdsSocket(): boolean {
    return this.#socket !== undefined;
  }

  async attach(): Promise<void> {
    // Asterisk connects to us by itself.
  }

  onAudio(handler: (frame: Buffer) => void): void {
    this.#onAudio = handler;
  }

  stats(): Record<string, number> {
    return { ...this.#counters };
  }

  close(): void {
    this.#unregister();
    this.#socket?.destroy();
    this.#socket = undefined;
  }
}
