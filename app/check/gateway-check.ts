/**
 * The outbound gateway's part of `transcription-proxy check`: whether this
 * Asterisk lets the service create PJSIP objects at run time (a `memory`
 * sorcery wizard; proven by creating and deleting a throwaway auth), whether
 * the gateway's endpoint is there (the running service creates it), and what
 * can be said about its registration.
 */
import { randomUUID } from 'node:crypto';
import type { AriPort } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import { GATEWAY_ENDPOINT, SORCERY_CONF_LINES, gatewaySettings } from '../outbound/gateway.js';
import type { CheckResult } from './report.js';
import { amiConfigured, registrationStateOnce } from '../outbound/registration-state.js';

const GATEWAY_KEYS = ['OUT_SIP_GATEWAY_IP', 'OUTBOUND_CALL_EXT', 'OUTBOUND_CALLS_SECRET'] as const;

/** undefined when no outbound gateway is configured at all (nothing to check). */
export async function checkGateway(
  ari: Pick<AriPort, 'putConfigObject' | 'deleteConfigObject' | 'getConfigObject'>,
  config: Config,
): Promise<CheckResult | undefined> {
  const settings = gatewaySettings(config);
  if ('missing' in settings) {
    if (settings.missing.length === GATEWAY_KEYS.length) return undefined;
    return { name: 'gateway', status: 'fail', summary: `outbound gateway half configured: missing ${settings.missing.join(', ')}` };
  }
  const probe = `transcription-proxy-check-${process.pid}`;
  try {
    await ari.putConfigObject('auth', probe, { auth_type: 'userpass', username: 'check', password: randomUUID() });
    await ari.deleteConfigObject('auth', probe);
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    return {
      name: 'gateway',
      status: 'fail',
      summary: `Asterisk cannot create PJSIP objects at run time (${message}); the outbound gateway needs a memory sorcery wizard`,
      details: ['add to sorcery.conf, then restart Asterisk:', ...SORCERY_CONF_LINES.map((line) => `  ${line}`)],
    };
  }
  const endpoint = await ari.getConfigObject('endpoint', GATEWAY_ENDPOINT);
  const details = [
    endpoint === undefined
      ? `endpoint ${GATEWAY_ENDPOINT} not there yet: the service creates it when it connects`
      : `endpoint ${GATEWAY_ENDPOINT} present, to ${settings.host} as ${settings.username}`,
  ];
  let status: CheckResult['status'] = 'ok';
  if (settings.register) {
    if (!amiConfigured(config)) {
      details.push(
        'registration state: Asterisk 22 publishes it on AMI only; set AMI_USERNAME and AMI_SECRET to see it here (or: asterisk -rx "pjsip show registrations")',
      );
    } else {
      try {
        const state = await registrationStateOnce(config);
        details.push(`registration: ${state ?? 'not created yet (the service creates it when it connects)'}`);
        if (state !== undefined && state !== 'Registered') status = 'fail';
      } catch (error) {
        details.push(`registration state unknown: ${(error as Error).message}`);
        status = 'fail';
      }
    }
  }
  const summary = `run-time PJSIP objects work; outbound gateway ${settings.host}`;
  return { name: 'gateway', status, summary: status === 'ok' ? summary : `${summary}, but it is not registered`, details };
}
