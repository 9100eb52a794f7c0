/**
 * Hands out UDP sockets bound to ports of RTP_PORT_START..RTP_PORT_END. A
 * released port rests for `quarantineMs` before it is handed out again, so a
 * late packet of an ended call cannot land in the stream of the next call that
 * would otherwise get the same port. Ports taken by other programs are skipped.
 */
import { createSocket, type Socket } from 'node:dgram';
import { AppError } from '../errors.js';

export interface RtpPortPoolOptions {
  bindHost: string;
  portStart: number;
  portEnd: number;
  quarantineMs?: number;
}

export interface BoundSocket {
  socket: Socket;
  port: number;
}

export class RtpPortPool {
  readonly #options: Required<RtpPortPoolOptions>;
  readonly #inUse = new Set<number>();
  readonly #restingUntil = new Map<number, number>();
  #next: number;

  constructor(options: RtpPortPoolOptions) {
    this.#options = { quarantineMs: 5000, ...options };
    this.#next = options.portStart;
  }

  get inUseCount(): number {
    return this.#inUse.size;
  }

  /** Binds a socket to the next free port, round-robin over the range. */
  async acquire(): Promise<BoundSocket> {
    const { portStart, portEnd, bindHost } = this.#options;
    const size = portEnd - portStart + 1;
    for (let tried = 0; tried < size; tried++) {
      const port = this.#next;
      this.#next = port >= portEnd ? portStart : port + 1;
      if (this.#inUse.has(port) || (this.#restingUntil.get(port) ?? 0) > Date.now()) continue;
      const socket = await bindUdp(bindHost, port);
      if (socket === undefined) continue;
      this.#inUse.add(port);
      this.#restingUntil.delete(port);
      return { socket, port };
    }
    throw new AppError('MEDIA_PORTS_EXHAUSTED', `no free UDP port in ${portStart}..${portEnd}`, { retryable: true });
  }

  release(port: number): void {
    if (!this.#inUse.delete(port)) return;
    this.#restingUntil.set(port, Date.now() + this.#options.quarantineMs);
  }
}

function bindUdp(host: string, port: number): Promise<Socket | undefined> {
  const family = host.includes(':') ? 'udp6' : 'udp4';
  return new Promise((resolve) => {
    const socket = createSocket(family);
    socket.once('error', () => {
      socket.close();
      resolve(undefined);
    });
    socket.bind(port, host, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}
