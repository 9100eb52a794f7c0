/**
 * The `audiosocket` tap transport: ExternalMedia with encapsulation=audiosocket,
 * transport=tcp and a UUID of ours in `data`; Asterisk connects to our
 * AudioSocketServer and announces that UUID, and the channel enters Stasis
 * only then. Audio arrives little-endian (kind 0x12 for slin16; older Asterisk
 * labels every rate 0x10).
 *
 * We also send: a short frame of silence every KEEPALIVE_MS. Asterisk's AudioSocket
 * reader (res_audiosocket.c, ast_audiosocket_receive_frame) waits for data in a
 * loop while holding the channel's lock whenever it is asked to read and nothing
 * has come; a receive-only peer that never sends leaves that channel stuck: no
 * audio reaches us, and hanging it up gets no answer (seen here as whole silent
 * legs and 10 s ARI timeouts at teardown). The silence ends any such wait within
 * KEEPALIVE_MS; the snoop channel on the other side of the tap bridge drops it.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { encodeAudio, KIND_SLIN } from './audiosocket-codec.js';
import type { AudioSocketServer } from './audiosocket-server.js';
import type { AudioHandler, TapTransport } from './tap-transport.js';

const KEEPALIVE_MS = 100;
/** 20 ms of 8 kHz silence as kind 0x10, the audio kind every Asterisk version reads. */
const KEEPALIVE_FRAME = encodeAudio(KIND_SLIN, Buffer.alloc(320));

export class AudioSocketTapTransport implements TapTransport {
  readonly kind = 'audiosocket';
  readonly request;
  readonly uuid = randomUUID();
  readonly #counters = { frames: 0, bytes: 0, droppedOddFrames: 0 };
  readonly #unregister: () => void;
  #socket: Socket | undefined;
  #onAudio: AudioHandler | undefined;
  /** Frames dropped since the last one delivered; undefined before a connection's first. */
  #lost: number | undefined;

  constructor(server: AudioSocketServer, advertiseHost: string, format: 'slin' | 'slin16') {
    this.request = {
      externalHost: `${advertiseHost}:${server.port}`,
      format,
      encapsulation: 'audiosocket',
      transport: 'tcp',
      data: this.uuid,
    } as const;
    this.#unregister = server.register(this.uuid, {
      onConnection: (socket) => {
        this.#socket = socket;
        this.#lost = undefined;
        const keepalive = setInterval(() => socket.write(KEEPALIVE_FRAME), KEEPALIVE_MS);
        keepalive.unref();
        socket.once('close', () => {
          clearInterval(keepalive);
          if (this.#socket === socket) this.#socket = undefined;
        });
      },
      onAudio: (frame) => {
        if (frame.length % 2 !== 0) {
          this.#counters.droppedOddFrames++;
          if (this.#lost !== undefined) this.#lost++;
          return;
        }
        this.#counters.frames++;
        this.#counters.bytes += frame.length;
        const lost = this.#lost;
        this.#lost = 0;
        this.#onAudio?.(frame, lost);
      },
    });
  }

  get holdsSocket(): boolean {
    return this.#socket !== undefined;
  }

  async attach(): Promise<void> {
    // Asterisk connects to us by itself.
  }

  onAudio(handler: AudioHandler): void {
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
