/**
 * Receives one leg's tapped audio from an ExternalMedia channel over RTP/UDP
 * and hands it on as little-endian L16 frames. It accepts packets only from
 * the Asterisk address and port that the channel reported
 * (UNICASTRTP_LOCAL_ADDRESS / _PORT) and then only the first SSRC seen, so no
 * packet from elsewhere, or of another call, enters this leg's stream.
 * Malformed and unexpected packets are counted and dropped, never thrown.
 */
import type { Socket } from 'node:dgram';
import type { RtpPortPool } from './rtp-port-pool.js';
import { parseRtpPacket } from './rtp-packet.js';
import { swap16InPlace } from './pcm.js';
import type { AudioHandler } from './tap-transport.js';

export interface RtpReceiverStats {
  packets: number;
  bytes: number;
  lostPackets: number;
  droppedBeforeSource: number;
  droppedWrongSource: number;
  droppedWrongSsrc: number;
  droppedMalformed: number;
}

export class RtpTapReceiver {
  readonly port: number;
  readonly stats: RtpReceiverStats = {
    packets: 0,
    bytes: 0,
    lostPackets: 0,
    droppedBeforeSource: 0,
    droppedWrongSource: 0,
    droppedWrongSsrc: 0,
    droppedMalformed: 0,
  };
  readonly #socket: Socket;
  readonly #pool: RtpPortPool;
  #source: { address: string; port: number } | undefined;
  #ssrc: number | undefined;
  #lastSequence: number | undefined;
  #onAudio: AudioHandler | undefined;
  #closed = false;

  private constructor(pool: RtpPortPool, socket: Socket, port: number) {
    this.#pool = pool;
    this.#socket = socket;
    this.port = port;
    socket.on('message', (packet, remote) => this.#receive(packet, remote.address, remote.port));
    socket.on('error', () => this.close());
  }

  static async open(pool: RtpPortPool): Promise<RtpTapReceiver> {
    const { socket, port } = await pool.acquire();
    return new RtpTapReceiver(pool, socket, port);
  }

  /** The only address and port packets are accepted from. */
  expectSource(address: string, port: number): void {
    this.#source = { address, port };
  }

  /** Where little-endian audio frames go, with the packets lost just before each (see TapTransport.onAudio). */
  onAudio(handler: AudioHandler): void {
    this.#onAudio = handler;
  }

  #receive(packet: Buffer, address: string, port: number): void {
    if (this.#source === undefined) {
      this.stats.droppedBeforeSource++;
      return;
    }
    if (address !== this.#source.address || port !== this.#source.port) {
      this.stats.droppedWrongSource++;
      return;
    }
    let rtp;
    try {
      rtp = parseRtpPacket(packet);
    } catch {
      this.stats.droppedMalformed++;
      return;
    }
    if (this.#ssrc === undefined) this.#ssrc = rtp.ssrc;
    else if (rtp.ssrc !== this.#ssrc) {
      this.stats.droppedWrongSsrc++;
      return;
    }
    // Loss is counted from forward jumps only; a late packet (negative gap) is delivered but moves
    // nothing, and nothing is known of what was lost before it (nor before the first packet).
    const first = this.#lastSequence === undefined;
    const gap = first ? 1 : (rtp.sequenceNumber - this.#lastSequence! + 0x10000) & 0xffff;
    let lostBefore: number | undefined;
    if (gap > 0 && gap < 0x8000) {
      if (gap > 1) this.stats.lostPackets += gap - 1;
      this.#lastSequence = rtp.sequenceNumber;
      if (!first) lostBefore = gap - 1;
    }
    this.stats.packets++;
    this.stats.bytes += rtp.payload.length;
    // The datagram's buffer is this packet's alone (dgram allocates one per message): the
    // samples are swapped where they are, and the frame is a view into it.
    this.#onAudio?.(swap16InPlace(rtp.payload), lostBefore);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.removeAllListeners('message');
    try {
      this.#socket.close();
    } catch {
      // already closed by an error
    }
    this.#pool.release(this.port);
  }
}
