/**
 * The outbound gateway (the seed's OUT_SIP_GATEWAY_IP, OUTBOUND_CALL_EXT,
 * OUTBOUND_CALLS_SECRET, OUTBOUND_REGISTER) as the PJSIP objects Asterisk
 * needs: an auth, an AOR, an endpoint and, when asked, an outbound
 * registration. The service creates them through ARI's dynamic configuration
 * (app/outbound/gateway-provisioner.ts); this module only describes them.
 */
import type { Config } from '../config/keys.js';

export const GATEWAY_ENDPOINT = 'transcription-proxy-gateway';
const GATEWAY_AUTH = 'transcription-proxy-gateway-auth';

export interface GatewaySettings {
  host: string;
  username: string;
  secret: string;
  register: boolean;
}

export interface PjsipObject {
  /** The sorcery type as ARI addresses it under /asterisk/config/dynamic/res_pjsip/. */
  type: 'auth' | 'aor' | 'endpoint' | 'registration';
  name: string;
  fields: Record<string, string>;
  /** Field names whose values are secrets (never logged). */
  secretFields?: readonly string[];
}

/** The gateway's settings, or the keys that are missing for one. */
export function gatewaySettings(config: Config): GatewaySettings | { missing: string[] } {
  const missing = (['OUT_SIP_GATEWAY_IP', 'OUTBOUND_CALL_EXT', 'OUTBOUND_CALLS_SECRET'] as const).filter(
    (name) => config[name] === undefined,
  );
  if (missing.length > 0) return { missing };
  return {
    host: config.OUT_SIP_GATEWAY_IP!,
    username: config.OUTBOUND_CALL_EXT!,
    secret: config.OUTBOUND_CALLS_SECRET!,
    register: config.OUTBOUND_REGISTER,
  };
}

/**
 * The objects, in the order they must be created: the registration last, since one
 * that REGISTERs before its auth exists is rejected for good.
 */
export function gatewayObjects(settings: GatewaySettings, transport = 'transport-udp'): PjsipObject[] {
  const objects: PjsipObject[] = [
    {
      type: 'auth',
      name: GATEWAY_AUTH,
      fields: { auth_type: 'userpass', username: settings.username, password: settings.secret },
      secretFields: ['password'],
    },
    { type: 'aor', name: GATEWAY_ENDPOINT, fields: { contact: `sip:${settings.host}` } },
    {
      type: 'endpoint',
      name: GATEWAY_ENDPOINT,
      fields: {
        transport,
        context: 'transcription-proxy-out',
        disallow: 'all',
        allow: 'ulaw,alaw',
        aors: GATEWAY_ENDPOINT,
        outbound_auth: GATEWAY_AUTH,
        from_user: settings.username,
        direct_media: 'no',
        rtp_symmetric: 'yes',
        force_rport: 'yes',
        rewrite_contact: 'yes',
      },
    },
  ];
  if (settings.register) {
    objects.push({
      type: 'registration',
      name: GATEWAY_ENDPOINT,
      fields: {
        transport,
        server_uri: `sip:${settings.host}`,
        client_uri: `sip:${settings.username}@${settings.host}`,
        outbound_auth: GATEWAY_AUTH,
        retry_interval: '30',
        expiration: '300',
        // Asterisk waits up to 10 s (random) before the first REGISTER by default.
        max_random_initial_delay: '0',
      },
    });
  }
  return objects;
}

/** What an Asterisk needs in sorcery.conf so the gateway's objects can be created at run time. */
export const SORCERY_CONF_LINES = [
  '[res_pjsip]',
  'endpoint=config,pjsip.conf,criteria=type=endpoint',
  'endpoint=memory',
  'aor=config,pjsip.conf,criteria=type=aor',
  'aor=memory',
  'auth=config,pjsip.conf,criteria=type=auth',
  'auth=memory',
  '[res_pjsip_outbound_registration]',
  'registration=config,pjsip.conf,criteria=type=registration',
  'registration=memory',
] as const;
