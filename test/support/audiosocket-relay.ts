/**
 * A TCP relay between Asterisk's AudioSocket channels and the service, for
 * tests that need to disturb one leg's audio in flight: the service advertises
 * the relay's address (MEDIA_ADVERTISE_HOST) and listens on the same port on
 * another loopback address. Each connection is told apart by the tone it
 * carries, and every audio message passes through `rewrite`, which may drop it
 * (missing packets) or change its samples.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tieSockets } from './tcp-relay.js';
import { AudioSocketDecoder, encodeAudio, encodeHangup, encodeUuid } from '../../app/media/audiosocket-codec.js';

export interface RelayedLeg {
  /** Audio messages seen so far on this connection (dropped ones included). */
  frames: number;
  /** Which party this connection carries, decided from its first frames; undefined until then. */
  party: string | undefined;
}

/** Decides a frame's fate: a Buffer (possibly the same) to forward, or null to drop it. */
export type Rewrite = (leg: RelayedLeg, samples: Buffer, arrivalMs: number) => Buffer | null;

export interface AudioSocketRelay {
  port: number;
  legs: RelayedLeg[];
  close(): Promise<void>;
}

/**
 * Listens on `listenHost:port` and relays to `serviceHost:port`. `classify` names the
 * party of a connection from its first audio (little-endian L16), or returns undefined to see more.
 */
export async function startAudioSocketRelay(options: {
  listenHost: string;
  serviceHost: string;
  port: number;
  classify: (samples: Buffer) => string | undefined;
  rewrite: Rewrite;
}): Promise<AudioSocketRelay> {
  const legs: RelayedLeg[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((fromAsterisk) => {
    const toService = connect(options.port, options.serviceHost);
    tieSockets(fromAsterisk, toService, sockets);
    toService.pipe(fromAsterisk);
    const leg: RelayedLeg = { frames: 0, party: undefined };
    legs.push(leg);
    const decoder = new AudioSocketDecoder();
    const seen: Buffer[] = [];
    fromAsterisk.on('data', (chunk: Buffer) => {
      for (const message of decoder.push(Buffer.from(chunk))) {
        if (message.type === 'uuid') toService.write(encodeUuid(message.uuid));
        else if (message.type === 'hangup') toService.write(encodeHangup());
        else if (message.type === 'audio') {
          leg.frames++;
          if (leg.party === undefined) {
            seen.push(message.payload);
            leg.party = options.classify(Buffer.concat(seen));
          }
          const samples = options.rewrite(leg, Buffer.from(message.payload), performance.now());
          if (samples !== null) toService.write(encodeAudio(message.kind, samples));
        }
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.listenHost, () => resolve());
  });
  return {
    port: options.port,
    legs,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
