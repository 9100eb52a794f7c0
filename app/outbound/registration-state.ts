/**
 * The outbound gateway's registration state, which Asterisk 22 publishes only
 * on AMI: read once with PJSIPShowRegistrationsOutbound, then followed through
 * `Registry` events. The service logs every state it learns; `check` prints
 * the current one. Without AMI settings the state is simply not known, and the
 * logs and `check` say so.
 */
import type { Logger } from 'pino';
import { AmiClient } from '../ami/ami-client.js';
import { AppError } from '../errors.js';
import type { Config } from '../config/keys.js';
import { GATEWAY_ENDPOINT } from './gateway.js';

export function amiConfigured(config: Config): boolean {
  return config.AMI_USERNAME !== undefined && config.AMI_SECRET !== undefined;
}

function connectAmi(config: Config, events: string): Promise<AmiClient> {
  return AmiClient.connect({
    host: config.AMI_HOST,
    port: config.AMI_PORT,
    username: config.AMI_USERNAME ?? '',
    secret: config.AMI_SECRET ?? '',
    events,
  });
}

/** The registration's current status (`Registered`, `Rejected`, `Unregistered`, ...), or undefined when it does not exist. */
export async function readRegistrationState(client: AmiClient): Promise<string | undefined> {
  const messages = await client.action('PJSIPShowRegistrationsOutbound');
  return messages.find((m) => m.Event === 'OutboundRegistrationDetail' && m.ObjectName === GATEWAY_ENDPOINT)?.Status;
}

/** Reads the state once (for `check`). */
export async function registrationStateOnce(config: Config): Promise<string | undefined> {
  const client = await connectAmi(config, 'off');
  try {
    return await readRegistrationState(client);
  } finally {
    client.close();
  }
}

/** The longest pause between two attempts to reach AMI again. */
const MAX_RETRY_DELAY_MS = 10_000;

/**
 * Logs the registration's state now and at every change, while the service runs.
 * A lost AMI connection (an Asterisk restart, say) is made again, with growing
 * pauses, and the state is read afresh each time: changes of the gap are not lost.
 */
class RegistrationWatcher {
  readonly #config: Config;
  readonly #logger: Logger;
  #client: AmiClient | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #closed = false;

  constructor(config: Config, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
  }

  async connect(): Promise<void> {
    this.#retryTimer = undefined;
    let client: AmiClient;
    try {
      client = await connectAmi(this.#config, 'system');
    } catch (error) {
      if (this.#closed) return;
      if (error instanceof AppError && !error.retryable) {
        // Wrong credentials: asking again would only be refused again.
        this.#logger.error({ err: error.message }, 'outbound registration state not reported');
        return;
      }
      this.#logger.warn(
        { err: (error as Error).message, attempt: this.#attempt + 1 },
        'outbound registration state not known: AMI unavailable; trying again',
      );
      this.#retry();
      return;
    }
    if (this.#closed) {
      client.close();
      return;
    }
    this.#client = client;
    const gateway = this.#config.OUT_SIP_GATEWAY_IP;
    const clientUri = `sip:${this.#config.OUTBOUND_CALL_EXT}@${gateway}`;
    client.on('event', (event: Record<string, string>) => {
      if (event.Event === 'Registry' && event.Username === clientUri) {
        this.#logger.info({ registration: event.Status, cause: event.Cause, gateway }, 'outbound gateway registration');
      }
    });
    client.on('close', () => {
      this.#client = undefined;
      if (this.#closed) return;
      this.#logger.warn('AMI connection lost: reconnecting to keep reporting the outbound registration');
      this.#retry();
    });
    try {
      const state = await readRegistrationState(client);
      this.#attempt = 0;
      this.#logger.info({ registration: state ?? 'not created', gateway }, 'outbound gateway registration');
    } catch (error) {
      // The connection is unusable: closing it brings the next attempt (see 'close').
      this.#logger.warn({ err: (error as Error).message }, 'could not read the outbound registration state');
      client.close();
    }
  }

  #retry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#attempt++;
    this.#retryTimer = setTimeout(() => void this.connect(), Math.min(1000 * this.#attempt, MAX_RETRY_DELAY_MS));
    this.#retryTimer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#client?.close();
  }
}

export async function watchRegistration(config: Config, logger: Logger): Promise<{ close(): void } | undefined> {
  if (!config.OUTBOUND_REGISTER) return undefined;
  if (!amiConfigured(config)) {
    logger.info('outbound registration state not reported: Asterisk publishes it on AMI only; set AMI_USERNAME and AMI_SECRET');
    return undefined;
  }
  const watcher = new RegistrationWatcher(config, logger);
  // The first attempt is awaited, so the state (or why it is unknown) is logged before "service ready".
  await watcher.connect();
  return watcher;
}
