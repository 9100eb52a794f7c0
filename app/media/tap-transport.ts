/**
 * How one leg's tapped audio travels from Asterisk's ExternalMedia channel to
 * us (MEDIA_TRANSPORT, or `transport=` per call):
 *
 *   rtp          RTP over UDP from Asterisk to one of our ports (RTP_PORT_START..END)
 *   audiosocket  Asterisk connects to our TCP server (AUDIOSOCKET_PORT) and says which
 *                leg it is with the UUID we gave it
 *   websocket    we connect to Asterisk's HTTP server, /media/<connection id>
 *
 * Each transport says what ExternalMedia request to make, finishes its side
 * once the channel exists, and hands on little-endian L16 frames. The labelled
 * stream is the same whichever transport produced it.
 */
import type { AriChannel, ExternalMediaRequest } from '../ari/ari-port.js';

export type MediaTransportKind = 'rtp' | 'audiosocket' | 'websocket';
export const MEDIA_TRANSPORTS: readonly MediaTransportKind[] = ['rtp', 'audiosocket', 'websocket'];

export type AudioHandler = (frame: Buffer, lostBefore: number | undefined) => void;

export interface TapTransport {
  readonly kind: MediaTransportKind;
  /** The ExternalMedia request for this transport (without the channel id). */
  readonly request: Omit<ExternalMediaRequest, 'channelId'>;
  /** Finishes the transport's side once Asterisk created the channel (before its StasisStart). */
  attach(external: AriChannel): Promise<void>;
  /**
   * Where little-endian audio frames go, each with the number of frames the transport knows
   * were lost just before it: an RTP sequence gap; on TCP only what we dropped ourselves (a
   * malformed frame); undefined for a connection's first frame, or where it cannot say.
   */
  onAudio(handler: AudioHandler): void;
  /** Counters for the leg's closing summary. */
  stats(): Record<string, number>;
  /** True while it holds a socket or port. */
  readonly holdsSocket: boolean;
  close(): void;
}
