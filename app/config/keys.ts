/**
 * Every configuration key the service knows: its default, how its text is
 * parsed and checked, and whether it is a secret (never logged). The seed
 * proxy's `config.ini` keys keep their names and meanings; the ones no feature
 * uses yet are listed in RESERVED_KEYS so a seed file loads without errors.
 */
import { checkDomain, checkEndpointName, checkHeaderName, checkNumber, type Verdict } from '../routing/dial-validator.js';
import { parseNumberMapping, type NumberMapping } from '../routing/number-mapping.js';
import type { RoutingTable } from '../routing/router.js';

export interface KeySpec<T> {
  /** Text default, parsed like any other source; undefined = no default. */
  defaultText?: string;
  secret?: boolean;
  description: string;
  /** Parses a present value; throws an Error whose message says what is wrong. */
  parse(text: string): T;
}

function key<T>(spec: KeySpec<T>): KeySpec<T> {
  return spec;
}

function text(description: string, defaultText?: string, secret = false): KeySpec<string> {
  return { description, defaultText, secret, parse: (value) => value };
}

function url(description: string, protocols: readonly string[], defaultText?: string): KeySpec<URL> {
  return {
    description,
    defaultText,
    parse(value) {
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        throw new Error(`"${value}" is not a URL`);
      }
      if (!protocols.includes(parsed.protocol)) {
        throw new Error(`must start with ${protocols.map((p) => `${p}//`).join(' or ')}`);
      }
      if (parsed.username || parsed.password) throw new Error('must not contain credentials; use the separate keys');
      return parsed;
    },
  };
}

function integer(description: string, min: number, max: number, defaultText?: string): KeySpec<number> {
  return {
    description,
    defaultText,
    parse(value) {
      if (!/^-?\d+$/.test(value)) throw new Error(`"${value}" is not a whole number`);
      const parsed = Number(value);
      if (parsed < min || parsed > max) throw new Error(`${parsed} is outside ${min}..${max}`);
      return parsed;
    },
  };
}

function oneOf<const T extends string>(description: string, choices: readonly T[], defaultText?: T): KeySpec<T> {
  return {
    description,
    defaultText,
    parse(value) {
      const found = choices.find((choice) => choice === value.toLowerCase());
      if (found === undefined) throw new Error(`"${value}" is not one of ${choices.join(', ')}`);
      return found;
    },
  };
}

function label(description: string, defaultText: string): KeySpec<string> {
  return {
    description,
    defaultText,
    parse(value) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new Error(`"${value}" is not a label (letters, digits, _ . -)`);
      return value;
    },
  };
}

function host(description: string, defaultText?: string): KeySpec<string> {
  return {
    description,
    defaultText,
    parse(value) {
      if (!/^[A-Za-z0-9.:-]{1,253}$/.test(value)) throw new Error(`"${value}" is not a host name or IP address`);
      return value;
    },
  };
}

/** A text key whose value must pass one of the dial validator's checks. */
function checked(description: string, check: (value: string) => Verdict, defaultText?: string): KeySpec<string> {
  return {
    description,
    defaultText,
    parse(value) {
      const verdict = check(value);
      if (!verdict.ok) throw new Error(`"${value}": ${verdict.reason}`);
      return value;
    },
  };
}

export const CONFIG_KEYS = {
  ARI_URL: url('Base URL of Asterisk ARI (its HTTP server).', ['http:', 'https:'], 'http://127.0.0.1:8088'),
  ARI_USERNAME: text('ARI user (ari.conf).', 'transcription-proxy'),
  ARI_PASSWORD: text('Password of the ARI user.', undefined, true),
  ARI_APP: key({
    description: 'Name of the Stasis application; the dialplan calls Stasis(ARI_APP).',
    defaultText: 'transcription-proxy',
    parse(value) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new Error(`"${value}" is not an application name (letters, digits, _ -)`);
      return value;
    },
  }),
  DESTINATION_DOMAIN: checked('Where leg B is sent: sip:NUMBER@DESTINATION_DOMAIN (host or host:port).', checkDomain),
  HOST_DOMAIN: checked('When set, only calls whose request URI is for this domain are taken; others get 403 (the seed\'s FREESWITCH_HOST_DOMAIN).', checkDomain),
  SIP_GATEWAY_IP: checked('Trunk mode: when set, leg B goes to sip:NUMBER@SIP_GATEWAY_IP (host or host:port) instead of DESTINATION_DOMAIN.', checkDomain),
  SIP_GATEWAY_ENDPOINT: checked('PJSIP endpoint leg B is dialled through in trunk mode (default: DESTINATION_ENDPOINT).', checkEndpointName),
  DESTINATION_ENDPOINT: checked('PJSIP endpoint leg B is dialled through (its codecs, transport and NAT settings).', checkEndpointName, 'transcription-proxy-out'),
  DIALED_NUMBER_MAPPING: key<NumberMapping>({
    description: 'Dialled-number map, FROM:TO pairs separated by commas (1233:4567,1234:5678).',
    defaultText: '',
    parse: parseNumberMapping,
  }),
  UNIQUE_CALL_ID_HEADER: checked('SIP header on leg B carrying the call id (the callId of the stream metadata).', checkHeaderName, 'uniqueCallId'),
  SESSION_ID_HEADER: checked('SIP header on leg B carrying the session id (the linkedId of the stream metadata).', checkHeaderName, 'OUTBOUND_CALL_SESSION_ID'),
  PASS_HEADERS: key<readonly string[]>({
    description: 'X- headers of leg A passed on to leg B, comma-separated (X-Customer-Id,X-Campaign).',
    defaultText: '',
    parse(value) {
      const names = value.split(',').map((name) => name.trim()).filter((name) => name !== '');
      for (const name of names) {
        if (!/^X-/i.test(name)) throw new Error(`"${name}" is not an X- header`);
        const verdict = checkHeaderName(name);
        if (!verdict.ok) throw new Error(`"${name}": ${verdict.reason}`);
      }
      return names;
    },
  }),
  OUT_SIP_GATEWAY_IP: checked('Outbound gateway (host or host:port) that outbound calls go out through: sip:NUMBER@OUT_SIP_GATEWAY_IP.', checkDomain),
  OUTBOUND_CALL_EXT: checked('User name the service authenticates (and registers) as at the outbound gateway.', checkNumber),
  OUTBOUND_CALLS_SECRET: text('Password for OUTBOUND_CALL_EXT at the outbound gateway.', undefined, true),
  OUTBOUND_CALL_PREFIX: key({
    description: 'Prefix stripped from the number of an outbound call when present (the seed\'s 33).',
    defaultText: '',
    parse(value) {
      if (!/^[0-9*#+]{0,16}$/.test(value)) throw new Error(`"${value}" is not a dialling prefix (digits, * # +)`);
      return value;
    },
  }),
  OUTBOUND_REGISTER: key({
    description: 'Register OUTBOUND_CALL_EXT at the outbound gateway: yes or no.',
    defaultText: 'no',
    parse(value) {
      const normalised = value.toLowerCase();
      if (['yes', 'true', '1', 'on'].includes(normalised)) return true;
      if (['no', 'false', '0', 'off'].includes(normalised)) return false;
      throw new Error(`"${value}" is not yes or no`);
    },
  }),
  AGENT_DIAL: key({
    description: 'How `call` rings the agent: an Asterisk dial string with {ext} for the extension (PJSIP/{ext}).',
    defaultText: 'PJSIP/{ext}',
    parse(value) {
      if (!value.includes('{ext}')) throw new Error(`"${value}" has no {ext}`);
      if (!/^[A-Za-z0-9_./:@{}+-]+$/.test(value)) throw new Error(`"${value}" is not a dial string (letters, digits, _ . / : @ + - and {ext})`);
      return value;
    },
  }),
  AMI_HOST: host('Asterisk Manager Interface host, used only to report the outbound registration\'s state (ARI does not).', '127.0.0.1'),
  AMI_PORT: integer('Asterisk Manager Interface port.', 1, 65535, '5038'),
  AMI_USERNAME: text('AMI user (manager.conf, read=system); without it the registration state is not reported.'),
  AMI_SECRET: text('Its secret.', undefined, true),
  DIAL_TIMEOUT_MS: integer('How long leg B may ring before the call fails as no answer.', 1000, 600_000, '60000'),
  STREAM_URL: url('Transcription websocket that receives the audio streams.', ['ws:', 'wss:'], 'ws://127.0.0.1:8090'),
  STREAM_TOKEN: text('Sent as Authorization: Bearer to STREAM_URL.', undefined, true),
  LEFT_CHANNEL_NAME: label('Label of the caller\'s stream (leg A).', 'CALLER1'),
  RIGHT_CHANNEL_NAME: label('Label of the called party\'s stream (leg B).', 'CALLER2'),
  SAMPLE_RATE: key({
    description: 'Audio sample rate of the streams: 8000 or 16000.',
    defaultText: '16000',
    parse(value) {
      if (value !== '8000' && value !== '16000') throw new Error(`"${value}" is not 8000 or 16000`);
      return Number(value) as 8000 | 16000;
    },
  }),
  MEDIA_BIND_HOST: host('Address the service receives tapped audio (RTP) on.', '127.0.0.1'),
  MEDIA_ADVERTISE_HOST: host('Address Asterisk sends tapped audio to (default: MEDIA_BIND_HOST).'),
  MEDIA_TRANSPORT: oneOf('How tapped audio travels from Asterisk to the service: rtp, audiosocket or websocket.', ['rtp', 'audiosocket', 'websocket'], 'rtp'),
  AUDIOSOCKET_PORT: integer('TCP port of the AudioSocket server on MEDIA_BIND_HOST (0: any free port; set one when a firewall is in between).', 0, 65535, '0'),
  TAP_NO_AUDIO_TIMEOUT_MS: integer('A tap that delivers no audio this long after its leg was bridged (or at any time after) is replaced.', 500, 60_000, '2000'),
  RTP_PORT_START: integer('First UDP port for tapped audio.', 1024, 65535, '30000'),
  RTP_PORT_END: integer('Last UDP port for tapped audio.', 1024, 65535, '30999'),
  LOG_LEVEL: oneOf('Log level.', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
} as const;

/**
 * Keys of the seed proxy's config.ini that no feature of ours uses yet. They
 * are accepted (so a seed file loads), reported once as ignored, and the
 * secrets among them are never logged. WEBSOCKET_SERVER and JWT_TOKEN keep the
 * seed's meaning (where Voicegain delivers results; Voicegain's API token): no
 * audio or token is ever sent to WEBSOCKET_SERVER.
 */
export const RESERVED_KEYS: Readonly<Record<string, { secret: boolean }>> = {
  VG_GATEWAY_URL: { secret: false },
  JWT_TOKEN: { secret: true },
  AUTH_NAME: { secret: false },
  WEBSOCKET_SERVER: { secret: false },
  CONTENT_INCREMENTAL: { secret: false },
  SENSITIVITY: { secret: false },
  AUDIO_CAPTURE: { secret: false },
  NOAUDIOTIMEOUT: { secret: false },
};

export type ConfigKey = keyof typeof CONFIG_KEYS;

type Parsed<S> = S extends KeySpec<infer T> ? T : never;

/** Other names a key is known by (the seed's), mapped to ours. */
export const KEY_ALIASES: Readonly<Record<string, ConfigKey>> = {
  FREESWITCH_HOST_DOMAIN: 'HOST_DOMAIN',
};

/** Keys without a default: undefined unless some source sets them. */
type OptionalKey = 'ARI_PASSWORD' | 'DESTINATION_DOMAIN' | 'STREAM_TOKEN' | 'MEDIA_ADVERTISE_HOST'
  | 'HOST_DOMAIN' | 'SIP_GATEWAY_IP' | 'SIP_GATEWAY_ENDPOINT'
  | 'OUT_SIP_GATEWAY_IP' | 'OUTBOUND_CALL_EXT' | 'OUTBOUND_CALLS_SECRET' | 'AMI_USERNAME' | 'AMI_SECRET';

/** The validated configuration: every key, and the routing table built from them and the rule sections. */
export type Config = {
  readonly [K in ConfigKey]: K extends OptionalKey
    ? Parsed<(typeof CONFIG_KEYS)[K]> | undefined
    : Parsed<(typeof CONFIG_KEYS)[K]>;
} & { readonly routing: RoutingTable };

export function isSecretKey(name: string): boolean {
  const spec = (CONFIG_KEYS as Record<string, KeySpec<unknown>>)[name];
  return spec?.secret === true || RESERVED_KEYS[name]?.secret === true;
}
