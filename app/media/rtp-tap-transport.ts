/**
 * The `rtp` tap transport: ExternalMedia rtp/udp to a port of our pool. Only
 * packets from the address and port Asterisk reports for the channel
 * (UNICASTRTP_LOCAL_ADDRESS / _PORT) are accepted (RtpTapReceiver).
 */
import type { AriChannel } from '../ari/ari-port.js';
import type { RtpPortPool } from './rtp-port-pool.js';
import { RtpTapReceiver } from './rtp-tap-receiver.js';
import type { AudioHandler, TapTransport } from './tap-transport.js';

export class RtpTapTransport implements TapTransport {
  readonly kind = 'rtp';
  readonly request;
  readonly #receiver: RtpTapReceiver;
  readonly #lookup: (name: string) => Promise<string | undefined>;
  #closed = false;

  private constructor(
    receiver: RtpTapReceiver,
    advertiseHost: string,
    format: 'slin' | 'slin16',
    lookup: (name: string) => Promise<string | undefined>,
  ) {
    this.#receiver = receiver;
    this.#lookup = lookup;
    this.request = { externalHost: `${advertiseHost}:${receiver.port}`, format, encapsulation: 'rtp', transport: 'udp' } as const;
  }

  /** `lookup` reads one of the channel's variables (when the create response lacks them). */
  static async open(
    pool: RtpPortPool,
    advertiseHost: string,
    format: 'slin' | 'slin16',
    lookup: (name: string) => Promise<string | undefined>,
  ): Promise<RtpTapTransport> {
    return new RtpTapTransport(await RtpTapReceiver.open(pool), advertiseHost, format, lookup);
  }

  get holdsSocket(): boolean {
    return !this.#closed;
  }

  async attach(external: AriChannel): Promise<void> {
    const address = external.channelvars?.UNICASTRTP_LOCAL_ADDRESS ?? (await this.#lookup('UNICASTRTP_LOCAL_ADDRESS'));
    const port = external.channelvars?.UNICASTRTP_LOCAL_PORT ?? (await this.#lookup('UNICASTRTP_LOCAL_PORT'));
    if (address === undefined || port === undefined) throw new Error('ExternalMedia channel reported no local RTP address');
    this.#receiver.expectSource(address, Number(port));
  }

  onAudio(handler: AudioHandler): void {
    this.#receiver.onAudio(handler);
  }

  stats(): Record<string, number> {
    return { port: this.#receiver.port, ...this.#receiver.stats };
  }

  close(): void {
    this.#closed = true;
    this.#receiver.close();
  }
}
