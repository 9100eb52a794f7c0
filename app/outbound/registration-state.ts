/**
 * The outbound gateway's registration state, which Asterisk 22 publishes only
 * on AMI: read once with PJSIPShowRegistrationsOutbound, then followed through
 * `Registry` events. The service logs every state it learns; `check` prints
 * the current one. Without AMI settings the state is simply not known, and the
 * logs and `check` say so.
 */
import type { Logger } from 'pino';
import { AmiClient } from '../ami/ami-client.js';
import type { Config } from '../config/keys.js';
import { GATEWAY_ENDPOINT } from './gateway.js';

export function amiConfigured(config: Config): boolean {
  return config.AMI_USERNAME !== undefined && config.AMI_SECRET !== undefined;
}

function connectAmi(config: Config, events: string): Promise<AmiClient> {
  return AmiClient.connect({
    host: config.AMI_HOST, port: config.AMI_PORT, username: config.AMI_USERNAME ?? '', secret: config.AMI_SECRET ?? '', events,
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

/** Logs the registration's state now and at every change, while the service runs. */
export async function watchRegistration(config: Config, logger: Logger): Promise<{ close(): void } | undefined> {
  if (!config.OUTBOUND_REGISTER) return undefined;
  if (!amiConfigured(config)) {
    logger.info('outbound registration state not reported: Asterisk publishes it on AMI only; set AMI_USERNAME and AMI_SECRET');
    return undefined;
  }
  try {
    const client = await connectAmi(config, 'system');
    const clientUri = `sip:${config.OUTBOUND_CALL_EXT}@${config.OUT_SIP_GATEWAY_IP}`;
    client.on('event', (event: Record<string, string>) => {
      if (event.Event === 'Registry' && event.Username === clientUri) {
        logger.info({ registration: event.Status, cause: event.Cause, gateway: config.OUT_SIP_GATEWAY_IP }, 'outbound gateway registration');
      }
    });
    let closing = false;
    client.on('close', () => {
      if (!closing) logger.warn('AMI connection closed: outbound registration changes are no longer reported');
    });
    const state = await readRegistrationState(client);
    logger.info({ registration: state ?? 'not created', gateway: config.OUT_SIP_GATEWAY_IP }, 'outbound gateway registration');
    return {
      close: () => {
        closing = true;
        client.close();
      },
    };
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'outbound registration state not reported: AMI unavailable');
    return undefined;
  }
}
