/**
 * The `websocket` tap transport (chan_websocket, Asterisk 22.6+): ExternalMedia
 * with transport=websocket, connection_type=server, direction=in; we connect
 * to Asterisk's HTTP server at /media/<MEDIA_WEBSOCKET_CONNECTION_ID> (from the
 * create response's channelvars). Asterisk then sends a TEXT `MEDIA_START ...`
 * and BINARY frames of raw audio in host byte order (little-endian on the
 * x86/ARM hosts Asterisk runs on). The channel enters Stasis only once we are
 * connected, so attach() connects before the tap waits for its StasisStart.
 * Other TEXT control messages (MEDIA_XOFF/XON, DTMF_END, HANGUP, ...) are
 * counted; a malformed one (even invalid UTF-8, which ws would otherwise
 * answer by closing the connection) is counted and ignored.
 *
 * close() ends the connection with the closing handshake, not by dropping
 * TCP: Asterisk reads our CLOSE, hangs its channel up and answers with its
 * own. A connection dropped under a channel Asterisk is still reading and
 * writing once left both of a call's WebSocket channels behind in Asterisk
 * (seen once in CI; docs/media-transports.md).
 */
import WebSocket from 'ws';
import type { AriChannel } from '../ari/ari-port.js';
import type { AudioHandler, TapTransport } from './tap-transport.js';

/** How long close() waits for Asterisk's answering CLOSE before it drops the connection anyway. */
export const CLOSE_HANDSHAKE_MS = 2000;

export class WebsocketTapTransport implements TapTransport {
  readonly kind = 'websocket';
  readonly request;
  readonly #mediaBaseUrl: URL;
  readonly #counters = { frames: 0, bytes: 0, controlMessages: 0, droppedOddFrames: 0, droppedBeforeStart: 0 };
  #socket: WebSocket | undefined;
  #started = false;
  #onAudio: AudioHandler | undefined;
  /** Frames dropped since the last one delivered; undefined before the first. */
  #lost: number | undefined;
  #closed = false;
  readonly #closeHandshakeMs: number;

  /** `ariUrl`: Asterisk's HTTP server (ARI_URL); /media/ID is on the same server. */
  constructor(ariUrl: URL, format: 'slin' | 'slin16', closeHandshakeMs = CLOSE_HANDSHAKE_MS) {
    this.#closeHandshakeMs = closeHandshakeMs;
    this.#mediaBaseUrl = new URL(ariUrl.href);
    this.#mediaBaseUrl.protocol = ariUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    // external_host is required by ARI but unused in server mode.
    this.request = {
      externalHost: 'INCOMING',
      format,
      encapsulation: 'none',
      transport: 'websocket',
      connectionType: 'server',
      direction: 'in',
    } as const;
  }

  get holdsSocket(): boolean {
    return this.#socket !== undefined;
  }

  async attach(external: AriChannel): Promise<void> {
    const id = external.channelvars?.MEDIA_WEBSOCKET_CONNECTION_ID;
    if (id === undefined || !/^[A-Za-z0-9-]{1,64}$/.test(id)) throw new Error('ExternalMedia channel reported no websocket connection id');
    if (this.#closed) return;
    const url = new URL(`/media/${id}`, this.#mediaBaseUrl);
    const socket = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5000, skipUTF8Validation: true });
    this.#socket = socket;
    socket.on('message', (data, isBinary) => this.#receive(data as Buffer, isBinary));
    socket.on('close', () => {
      this.#socket = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', (error) => reject(new Error(`cannot connect to ${url.origin}/media/…: ${error.message}`)));
    });
    socket.on('error', () => socket.terminate());
  }

  #receive(data: Buffer, isBinary: boolean): void {
    if (this.#closed) return; // what still arrives during the closing handshake
    if (!isBinary) {
      this.#counters.controlMessages++;
      if (data.toString('utf8').startsWith('MEDIA_START')) this.#started = true;
      return;
    }
    if (!this.#started) {
      this.#counters.droppedBeforeStart++;
      return;
    }
    if (data.length % 2 !== 0) {
      this.#counters.droppedOddFrames++;
      if (this.#lost !== undefined) this.#lost++;
      return;
    }
    this.#counters.frames++;
    this.#counters.bytes += data.length;
    const lost = this.#lost;
    this.#lost = 0;
    this.#onAudio?.(data, lost);
  }

  onAudio(handler: AudioHandler): void {
    this.#onAudio = handler;
  }

  stats(): Record<string, number> {
    return { ...this.#counters };
  }

  /** Starts the closing handshake; the connection is gone within #closeHandshakeMs whatever Asterisk does. */
  close(): void {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket === undefined) return;
    if (socket.readyState !== WebSocket.OPEN) {
      socket.terminate();
      return;
    }
    socket.close(1000);
    const deadline = setTimeout(() => socket.terminate(), this.#closeHandshakeMs).unref();
    socket.once('close', () => clearTimeout(deadline));
  }
}
