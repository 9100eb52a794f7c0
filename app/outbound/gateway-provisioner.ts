/**
 * Creates the outbound gateway's PJSIP objects in Asterisk through ARI's
 * dynamic configuration, without anyone editing Asterisk's files. They live in
 * Asterisk's memory only (sorcery `memory` wizard; PROTOCOLS.md), so this runs
 * at every (re)connection. An object whose fields already match is left alone
 * (an unchanged registration is not disturbed); a changed one is written again,
 * except a registration: Asterisk keeps a running registration as it was after
 * a PUT, so a changed one is deleted (un-REGISTER) and created anew.
 */
import type { Logger } from 'pino';
import type { AriPort } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import { gatewayObjects, gatewaySettings, type PjsipObject } from './gateway.js';

export interface ProvisionResult {
  configured: boolean;
  created: string[];
  updated: string[];
  unchanged: string[];
}

// Asterisk reports some values in its own spelling (booleans as true/false).
function sameValue(wanted: string, current: string | undefined): boolean {
  if (current === undefined) return false;
  const canonical = (value: string) => {
    const lower = value.trim().toLowerCase();
    if (['yes', 'true', 'on', '1'].includes(lower)) return 'true';
    if (['no', 'false', 'off', '0'].includes(lower)) return 'false';
    return lower;
  };
  return canonical(wanted) === canonical(current);
}

/** Fields Asterisk reports in another form than it takes them; not compared. */
const NOT_COMPARABLE = new Set(['allow', 'disallow']);

function matches(object: PjsipObject, current: Record<string, string>): boolean {
  return Object.entries(object.fields).every(([field, value]) => NOT_COMPARABLE.has(field) || sameValue(value, current[field]));
}

export async function provisionGateway(ari: AriPort, config: Config, logger: Logger): Promise<ProvisionResult> {
  const result: ProvisionResult = { configured: false, created: [], updated: [], unchanged: [] };
  const settings = gatewaySettings(config);
  if ('missing' in settings) return result;
  result.configured = true;
  for (const object of gatewayObjects(settings)) {
    const label = `${object.type}/${object.name}`;
    const current = await ari.getConfigObject(object.type, object.name);
    if (current !== undefined && matches(object, current)) {
      result.unchanged.push(label);
      continue;
    }
    if (current !== undefined && object.type === 'registration') await ari.deleteConfigObject(object.type, object.name);
    await ari.putConfigObject(object.type, object.name, object.fields);
    (current === undefined ? result.created : result.updated).push(label);
  }
  logger.info(
    // The user name is the agents' extension (OUTBOUND_CALL_EXT): a number, masked like the others.
    { gateway: settings.host, numbers: { username: settings.username }, register: settings.register, ...result },
    'outbound gateway provisioned',
  );
  return result;
}
