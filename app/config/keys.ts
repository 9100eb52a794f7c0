/**
 * Every configuration key the service knows: its default, how its text is
 * parsed and checked, and whether it is a secret (never logged). The seed
 * proxy's `config.ini` keys keep their names and meanings; the ones no feature
 * uses yet are listed in RESERVED_KEYS so a seed file loads without errors.
 */
import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import { checkDomain, checkEndpointName, checkHeaderName, checkNumber, type Verdict } from '../routing/dial-validator.js';
import { parseNumberMapping, type NumberMapping } from '../routing/number-mapping.js';
import {
  bearerTokenProblem,
  httpHeaderNameProblem,
  httpHeaderValueProblem,
  subprotocolsProblem,
} from '../transcription/handshake-values.js';
import type { RoutingTable } from '../routing/router.js';
import { parseNamePatterns, type NamePatterns } from '../routing/call-origin.js';

export interface KeySpec<T> {
  /** Text default, parsed like any other source; undefined = no default. */
  defaultText?: string;
  secret?: boolean;
  /** An empty value is a value (parsed), not "unset, use the default": `OPS_LISTEN=` turns the endpoint off. */
  emptyIsValue?: boolean;
  description: string;
  /** Parses a present value; throws an Error whose message says what is wrong. */
  parse(text: string): T;
}

/** A comma-separated value's items, trimmed, empty ones left out. */
function commaList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
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

/** A code keyed on a phone: 2 to 8 DTMF digits; empty turns it off. */
function dtmfCode(description: string, defaultText: string): KeySpec<string> {
  return {
    description,
    defaultText,
    emptyIsValue: true,
    parse(value) {
      if (value !== '' && !/^[0-9*#A-D]{2,8}$/.test(value)) throw new Error(`"${value}" is not a DTMF code (2 to 8 of 0-9 * # A-D)`);
      return value;
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

function yesNo(description: string, defaultText: 'yes' | 'no'): KeySpec<boolean> {
  return {
    description,
    defaultText,
    parse(value) {
      const normalised = value.toLowerCase();
      if (['yes', 'true', '1', 'on'].includes(normalised)) return true;
      if (['no', 'false', '0', 'off'].includes(normalised)) return false;
      throw new Error(`"${value}" is not yes or no`);
    },
  };
}

/** A file the service reads at start-up (TLS material): its path must be readable now, not at the first call. */
function readableFile(description: string): KeySpec<string> {
  return {
    description,
    parse(value) {
      try {
        accessSync(value, constants.R_OK);
      } catch {
        throw new Error(`cannot read file ${value}`);
      }
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
  HOST_DOMAIN: checked(
    "When set, only calls whose request URI is for this domain are taken; others get 403 (the seed's FREESWITCH_HOST_DOMAIN).",
    checkDomain,
  ),
  SIP_GATEWAY_IP: checked(
    'Trunk mode: when set, leg B goes to sip:NUMBER@SIP_GATEWAY_IP (host or host:port) instead of DESTINATION_DOMAIN.',
    checkDomain,
  ),
  SIP_GATEWAY_ENDPOINT: checked(
    'PJSIP endpoint leg B is dialled through in trunk mode (default: DESTINATION_ENDPOINT).',
    checkEndpointName,
  ),
  DESTINATION_ENDPOINT: checked(
    'PJSIP endpoint leg B is dialled through (its codecs, transport and NAT settings).',
    checkEndpointName,
    'transcription-proxy-out',
  ),
  DIALED_NUMBER_MAPPING: key<NumberMapping>({
    description: 'Dialled-number map, FROM:TO pairs separated by commas (1233:4567,1234:5678).',
    defaultText: '',
    parse: parseNumberMapping,
  }),
  UNIQUE_CALL_ID_HEADER: checked(
    'SIP header on leg B carrying the call id (the callId of the stream metadata).',
    checkHeaderName,
    'uniqueCallId',
  ),
  SESSION_ID_HEADER: checked(
    'SIP header on leg B carrying the session id (the linkedId of the stream metadata).',
    checkHeaderName,
    'OUTBOUND_CALL_SESSION_ID',
  ),
  PASS_HEADERS: key<readonly string[]>({
    description: 'X- headers of leg A passed on to leg B, comma-separated (X-Customer-Id,X-Campaign).',
    defaultText: '',
    parse(value) {
      const names = commaList(value);
      for (const name of names) {
        if (!/^X-/i.test(name)) throw new Error(`"${name}" is not an X- header`);
        const verdict = checkHeaderName(name);
        if (!verdict.ok) throw new Error(`"${name}": ${verdict.reason}`);
      }
      return names;
    },
  }),
  OUT_SIP_GATEWAY_IP: checked(
    'Outbound gateway (host or host:port) that outbound calls go out through: sip:NUMBER@OUT_SIP_GATEWAY_IP.',
    checkDomain,
  ),
  OUTBOUND_CALL_EXT: checked('User name the service authenticates (and registers) as at the outbound gateway.', checkNumber),
  OUTBOUND_CALLS_SECRET: text('Password for OUTBOUND_CALL_EXT at the outbound gateway.', undefined, true),
  OUTBOUND_CALL_PREFIX: key({
    description: "Prefix stripped from the number of an outbound call when present (the seed's 33).",
    defaultText: '',
    parse(value) {
      if (!/^[0-9*#+]{0,16}$/.test(value)) throw new Error(`"${value}" is not a dialling prefix (digits, * # +)`);
      return value;
    },
  }),
  INTERNAL_CONTEXTS: key<NamePatterns>({
    description:
      "Dialplan contexts (comma-separated, * for any characters) whose calls are agents' calls: only those may leave through the outbound gateway by the length rule (more than 10 digits).",
    defaultText: '',
    parse: parseNamePatterns,
  }),
  INTERNAL_ENDPOINTS: key<NamePatterns>({
    description: "PJSIP endpoints (comma-separated, * for any characters, e.g. 2*) whose calls are agents' calls, as INTERNAL_CONTEXTS.",
    defaultText: '',
    parse: parseNamePatterns,
  }),
  OUTBOUND_REGISTER: yesNo('Register OUTBOUND_CALL_EXT at the outbound gateway: yes or no.', 'no'),
  AGENT_DIAL: key({
    description: 'How `call` rings the agent: an Asterisk dial string with {ext} for the extension (PJSIP/{ext}).',
    defaultText: 'PJSIP/{ext}',
    parse(value) {
      if (!value.includes('{ext}')) throw new Error(`"${value}" has no {ext}`);
      if (!/^[A-Za-z0-9_./:@{}+-]+$/.test(value))
        throw new Error(`"${value}" is not a dial string (letters, digits, _ . / : @ + - and {ext})`);
      return value;
    },
  }),
  AMI_HOST: host("Asterisk Manager Interface host, used only to report the outbound registration's state (ARI does not).", '127.0.0.1'),
  AMI_PORT: integer('Asterisk Manager Interface port.', 1, 65535, '5038'),
  AMI_USERNAME: text('AMI user (manager.conf, read=system); without it the registration state is not reported.'),
  AMI_SECRET: text('Its secret.', undefined, true),
  DIAL_TIMEOUT_MS: integer('How long leg B may ring before the call fails as no answer.', 1000, 600_000, '60000'),
  PROVIDER: oneOf(
    'Where the audio goes: websocket (STREAM_URL, our stream format), voicegain (Voicegain real-time API) or twilio (Twilio Media Streams to STREAM_URL). Default: voicegain when VG_GATEWAY_URL is set, else websocket.',
    ['websocket', 'voicegain', 'twilio'],
  ),
  STREAM_URL: url(
    'Transcription websocket that receives the audio streams (PROVIDER websocket and twilio).',
    ['ws:', 'wss:'],
    'ws://127.0.0.1:8090',
  ),
  STREAM_TOKEN: key({
    description: 'Sent as Authorization: Bearer to STREAM_URL.',
    secret: true,
    parse(value) {
      const problem = bearerTokenProblem(value);
      if (problem !== undefined) throw new Error(problem);
      return value;
    },
  }),
  STREAM_MODE: oneOf(
    'PROVIDER=websocket: split (a mono stream per party), stereo (one stream per call, caller left) or mixed (one stream per call, both parties in one channel).',
    ['split', 'stereo', 'mixed'],
    'split',
  ),
  STREAM_EXTRA_HEADERS: key<Readonly<Record<string, string>>>({
    description:
      'Extra headers of the websocket handshake, a JSON object of strings ({"X-Tenant":"a"}); an Authorization here wins over STREAM_TOKEN.',
    defaultText: '{}',
    secret: true,
    parse(value) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(value);
      } catch (error) {
        throw new Error(`not JSON: ${(error as Error).message}`, { cause: error });
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('must be a JSON object of header names to strings');
      const seen = new Set<string>();
      for (const [name, headerValue] of Object.entries(parsed)) {
        const nameProblem = httpHeaderNameProblem(name);
        if (nameProblem !== undefined) throw new Error(nameProblem);
        if (seen.has(name.toLowerCase())) throw new Error(`${name} is given twice (header names are case-insensitive)`);
        seen.add(name.toLowerCase());
        if (typeof headerValue !== 'string') throw new Error(`the value of ${name} must be a string`);
        const valueProblem = httpHeaderValueProblem(name, headerValue);
        if (valueProblem !== undefined) throw new Error(valueProblem);
      }
      return parsed as Record<string, string>;
    },
  }),
  STREAM_SUBPROTOCOL: key<readonly string[]>({
    description: 'Websocket subprotocol(s) to ask for (Sec-WebSocket-Protocol), comma-separated, each once.',
    defaultText: '',
    parse(value) {
      const names = commaList(value);
      const problem = subprotocolsProblem(names);
      if (problem !== undefined) throw new Error(problem);
      return names;
    },
  }),
  STREAM_TLS_CA_FILE: key({
    description: "wss://: CA certificate(s) (PEM) the server's certificate must chain to; SYSTEM (default): the system's trusted CAs.",
    defaultText: 'SYSTEM',
    parse(value) {
      if (value === 'SYSTEM') return value;
      if (value === 'NONE') throw new Error("NONE (no certificate check) is not supported: give the CA file of the server's certificate");
      return readableFile('').parse(value);
    },
  }),
  STREAM_TLS_CERT_FILE: readableFile('wss://: client certificate (PEM) for servers that require one; needs STREAM_TLS_KEY_FILE.'),
  STREAM_TLS_KEY_FILE: readableFile('wss://: private key (PEM) of STREAM_TLS_CERT_FILE.'),
  STREAM_TLS_DISABLE_HOSTNAME_VALIDATION: yesNo(
    'wss://: accept a server certificate issued for another host name (the chain is still checked).',
    'no',
  ),
  STREAM_BUFFER_MS: integer(
    'Audio each stream keeps while its server is unreachable, in ms; an outage shorter than this loses nothing (memory: 32 kB a second per 16 kHz mono stream).',
    0,
    600_000,
    '30000',
  ),
  STREAM_BUFFER_SIZE: {
    description:
      "Audio per binary websocket message, in ms, a multiple of 20 (mod_audio_stream's variable): 20 sends each frame as it comes; more sends fewer, larger messages (less CPU, that much more latency). PROVIDER websocket and voicegain; Twilio Media Streams keep 20.",
    defaultText: '20',
    parse(value: string) {
      const parsed = integer('', 20, 1000).parse(value);
      if (parsed % 20 !== 0) throw new Error(`${parsed} is not a multiple of 20`);
      return parsed;
    },
  },
  STREAM_HEART_BEAT: integer(
    'Seconds between websocket pings to the transcription server (0: none, and then a server that stops reading goes unnoticed); no pong within max(5 s, 3 pings) is an outage: the connection is dropped and retried, and what the server did not acknowledge is sent again.',
    0,
    3600,
    '1',
  ),
  STREAM_MESSAGE_DEFLATE: yesNo(
    "Offer permessage-deflate compression (off by default: audio hardly compresses). Note: mod_audio_stream's variable of this name does the opposite.",
    'no',
  ),
  PAUSE_DTMF_CODE: dtmfCode(
    'Keyed on either phone during a call (digits less than 2 s apart), pauses the transcription, and keyed again resumes it (PCI); empty: no code.',
    '*81',
  ),
  BLIND_TRANSFER_CODE: dtmfCode(
    "Keyed on either phone of an answered call (digits less than 2 s apart), then the target's number and # (or a pause of TRANSFER_DIGIT_TIMEOUT_MS): a blind transfer, as a REFER to that number would be (docs/transfers.md); FreePBX's default blindxfer; empty: no code.",
    '##',
  ),
  TRANSFER_DIGIT_TIMEOUT_MS: integer(
    "BLIND_TRANSFER_CODE: how long the service waits for each digit of the target's number before it takes the number as complete, in ms (features.conf's transferdigittimeout).",
    1000,
    30_000,
    '3000',
  ),
  STREAM_DTMF: yesNo('Send DTMF pressed on a leg as a text message on its stream.', 'no'),
  PAUSE_ON_HOLD: yesNo(
    'Pause the transcription of a call while a party has it on hold (its streams carry silence; docs/transfers.md): yes or no.',
    'no',
  ),
  VG_GATEWAY_URL: url("Voicegain real-time API (the seed's key): POST URL of async transcription; setting it selects PROVIDER=voicegain.", [
    'https:',
    'http:',
  ]),
  JWT_TOKEN: text('Voicegain API token (JWT), sent as Authorization: Bearer.', undefined, true),
  WEBSOCKET_SERVER: url('Where Voicegain delivers the transcripts (your websocket server); no audio is sent there.', ['ws:', 'wss:']),
  AUTH_NAME: text('Name of the Auth Configuration in the Voicegain console that Voicegain uses to log in to WEBSOCKET_SERVER.'),
  CONTENT_INCREMENTAL: key<readonly string[]>({
    description: 'What Voicegain sends to WEBSOCKET_SERVER as it goes: words or segments (comma-separated).',
    defaultText: 'words',
    parse(value) {
      const kinds = commaList(value).map((kind) => kind.toLowerCase());
      const allowed = ['words', 'segments', 'progress', 'word-tree', 'transcript', 'captions', 'metadata'];
      for (const kind of kinds) if (!allowed.includes(kind)) throw new Error(`"${kind}" is not one of ${allowed.join(', ')}`);
      if (kinds.length === 0) throw new Error('name at least one of words, segments');
      return kinds;
    },
  }),
  SENSITIVITY: key({
    description: "Voicegain speech detection sensitivity, 0 (least) to 1 (most); Voicegain's default when unset.",
    parse(value) {
      const parsed = Number(value);
      if (value.trim() === '' || !Number.isFinite(parsed) || parsed < 0 || parsed > 1)
        throw new Error(`"${value}" is not a number from 0 to 1`);
      return parsed;
    },
  }),
  AUDIO_CAPTURE: yesNo("Ask Voicegain to keep the call's audio.", 'no'),
  NOAUDIOTIMEOUT: integer('Voicegain ends a session that receives no audio this many milliseconds.', 5000, 1_800_000, '30000'),
  VG_REQUEST_TIMEOUT_MS: integer(
    'How long the Voicegain session request may take before this call is streamed nowhere.',
    500,
    60_000,
    '5000',
  ),
  TWILIO_ACCOUNT_SID: key({
    description: 'PROVIDER=twilio: the accountSid our messages carry (AC and 32 hex digits).',
    defaultText: 'AC00000000000000000000000000000000',
    parse(value) {
      if (!/^AC[0-9a-fA-F]{32}$/.test(value)) throw new Error(`"${value}" is not AC followed by 32 hex digits`);
      return value;
    },
  }),
  LEFT_CHANNEL_NAME: label("Label of the caller's stream (leg A).", 'CALLER1'),
  RIGHT_CHANNEL_NAME: label("Label of the called party's stream (leg B).", 'CALLER2'),
  SAMPLE_RATE: key({
    description: 'PROVIDER=websocket: audio sample rate of the streams, 8000 or 16000 (Voicegain and Twilio take 8000).',
    defaultText: '16000',
    parse(value) {
      if (value !== '8000' && value !== '16000') throw new Error(`"${value}" is not 8000 or 16000`);
      return Number(value) as 8000 | 16000;
    },
  }),
  MEDIA_BIND_HOST: host('Address the service receives tapped audio (RTP) on.', '127.0.0.1'),
  MEDIA_ADVERTISE_HOST: host('Address Asterisk sends tapped audio to (default: MEDIA_BIND_HOST).'),
  MEDIA_TRANSPORT: oneOf(
    'How tapped audio travels from Asterisk to the service: rtp, audiosocket or websocket.',
    ['rtp', 'audiosocket', 'websocket'],
    'rtp',
  ),
  AUDIOSOCKET_PORT: integer(
    'TCP port of the AudioSocket server on MEDIA_BIND_HOST (0: any free port; set one when a firewall is in between).',
    0,
    65535,
    '0',
  ),
  TAP_NO_AUDIO_TIMEOUT_MS: integer(
    'A tap that delivers no audio this long after its leg was bridged (or at any time after) is replaced.',
    500,
    60_000,
    '2000',
  ),
  RTP_PORT_START: integer('First UDP port for tapped audio.', 1024, 65535, '30000'),
  RTP_PORT_END: integer('Last UDP port for tapped audio.', 1024, 65535, '30999'),
  NODE_NAME: key({
    description:
      'Name of this instance of the service, sent as `node` in the stream metadata (several cells behind one dispatcher). Default: the host name.',
    defaultText: hostname().slice(0, 64) || 'transcription-proxy',
    parse(value) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(value)) throw new Error(`"${value}" is not a node name (letters, digits, _ . -, at most 64)`);
      return value;
    },
  }),
  DRAIN_TIMEOUT_MS: integer(
    'On SIGTERM, how long calls in progress stay transcribed before the service exits anyway (they stay up in Asterisk for the next instance to adopt).',
    0,
    86_400_000,
    '60000',
  ),
  OPS_LISTEN: key<{ host: string; port: number } | undefined>({
    description:
      'HOST:PORT of the operations HTTP endpoint (/health, /ready, /metrics, /calls); empty: none. Beyond loopback it needs OPS_TOKEN.',
    defaultText: '127.0.0.1:9464',
    emptyIsValue: true,
    parse(value) {
      if (value.trim() === '' || value.trim().toLowerCase() === 'off') return undefined;
      const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253}):(\d{1,5})$/.exec(value.trim());
      const port = Number(match?.[2]);
      if (match === null || !Number.isInteger(port) || port > 65535) throw new Error(`"${value}" is not HOST:PORT (port 0: any free port)`);
      return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
    },
  }),
  OPS_TOKEN: text('Bearer token the operations endpoint requires (required when OPS_LISTEN is not a loopback address).', undefined, true),
  LOG_PII: yesNo(
    'Log personal data in clear (phone numbers, DTMF digits, text from the transcription server), for debugging only; default: numbers masked, digits and text left out.',
    'no',
  ),
  ALLOW_INSECURE_TRANSPORT: yesNo(
    'Allow sending a token (STREAM_TOKEN, JWT_TOKEN) unencrypted (ws://, http://) to a host that is not loopback; refused at start otherwise.',
    'no',
  ),
  LOG_LEVEL: oneOf('Log level.', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
} as const;

/**
 * Keys of the seed proxy's config.ini that no feature of ours uses yet: accepted
 * (so a seed file loads), reported once as ignored, never logged when secret.
 * Every seed key is in use now; the list stays for the next one.
 */
export const RESERVED_KEYS: Readonly<Record<string, { secret: boolean }>> = {};

export type ConfigKey = keyof typeof CONFIG_KEYS;

type Parsed<S> = S extends KeySpec<infer T> ? T : never;

/** Other names a key is known by (the seed's), mapped to ours. */
export const KEY_ALIASES: Readonly<Record<string, ConfigKey>> = {
  FREESWITCH_HOST_DOMAIN: 'HOST_DOMAIN',
};

/** Keys without a default: undefined unless some source sets them. */
type OptionalKey =
  | 'ARI_PASSWORD'
  | 'DESTINATION_DOMAIN'
  | 'STREAM_TOKEN'
  | 'MEDIA_ADVERTISE_HOST'
  | 'STREAM_TLS_CERT_FILE'
  | 'STREAM_TLS_KEY_FILE'
  | 'VG_GATEWAY_URL'
  | 'JWT_TOKEN'
  | 'WEBSOCKET_SERVER'
  | 'AUTH_NAME'
  | 'SENSITIVITY'
  | 'HOST_DOMAIN'
  | 'SIP_GATEWAY_IP'
  | 'SIP_GATEWAY_ENDPOINT'
  | 'OUT_SIP_GATEWAY_IP'
  | 'OUTBOUND_CALL_EXT'
  | 'OUTBOUND_CALLS_SECRET'
  | 'AMI_USERNAME'
  | 'AMI_SECRET'
  | 'OPS_TOKEN';

/** The validated configuration: every key, and the routing table built from them and the rule sections. */
export type Config = {
  readonly [K in ConfigKey]: K extends OptionalKey ? Parsed<(typeof CONFIG_KEYS)[K]> | undefined : Parsed<(typeof CONFIG_KEYS)[K]>;
} & { readonly routing: RoutingTable };

export function isSecretKey(name: string): boolean {
  const spec = (CONFIG_KEYS as Record<string, KeySpec<unknown>>)[name];
  return spec?.secret === true || RESERVED_KEYS[name]?.secret === true;
}
