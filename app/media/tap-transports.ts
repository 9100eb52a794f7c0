/**
 * Makes the tap transport a leg asked for (tap-transport.ts), with what each
 * needs from the service: the RTP port pool, the AudioSocket server (listening on first use), the
 * address Asterisk sends to, and Asterisk's HTTP server for WebSocket taps.
 * Built once at the composition root (service.ts); call-flow tests give
 * LegTap a factory of their own instead.
 */
import type { AudioSocketListener } from './audiosocket-listener.js';
import { AudioSocketTapTransport } from './audiosocket-tap-transport.js';
import type { RtpPortPool } from './rtp-port-pool.js';
import { RtpTapTransport } from './rtp-tap-transport.js';
import type { MediaTransportKind, TapTransport } from './tap-transport.js';
import { WebsocketTapTransport } from './websocket-tap-transport.js';

export type TapFormat = 'slin' | 'slin16';

export interface TapTransportFactory {
  /** `lookup` reads a variable of the ExternalMedia channel about to be created (RTP: Asterisk's source address). */
  open(kind: MediaTransportKind, format: TapFormat, lookup: (name: string) => Promise<string | undefined>): Promise<TapTransport>;
}

export interface TapTransportDeps {
  pool: RtpPortPool;
  /** Listens on first use (audiosocket-listener.ts). */
  audioSocket: AudioSocketListener;
  /** Where Asterisk sends RTP and connects AudioSocket to (MEDIA_ADVERTISE_HOST). */
  advertiseHost: string;
  /** Asterisk's HTTP server (ARI_URL): WebSocket taps connect to its /media/ID. */
  ariUrl: URL;
}

export function tapTransportFactory(deps: TapTransportDeps): TapTransportFactory {
  return {
    open(kind, format, lookup) {
      switch (kind) {
        case 'audiosocket':
          return deps.audioSocket.server().then((server) => new AudioSocketTapTransport(server, deps.advertiseHost, format));
        case 'websocket':
          return Promise.resolve(new WebsocketTapTransport(deps.ariUrl, format));
        default:
          return RtpTapTransport.open(deps.pool, deps.advertiseHost, format, lookup);
      }
    },
  };
}
