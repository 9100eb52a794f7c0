/**
 * Builds the configuration from its sources, each overriding the one before:
 * defaults, an ini file (--config FILE, else ./config.ini when present), a
 * .env file in the working directory, environment variables, and --set flags.
 * Every problem is collected and reported together, each naming its key and
 * the source of the bad value; nothing is half-applied.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { maskNumber } from '../logging/pii.js';
import { gatewaySettings } from '../outbound/gateway.js';
import type { Destination } from '../routing/destination.js';
import { mappingRules, parseRule, type RoutingRule } from '../routing/rules.js';
import type { RoutingTable } from '../routing/router.js';
import { checkSecurity, isLoopbackHost } from './security-checks.js';
import { CONFIG_KEYS, KEY_ALIASES, RESERVED_KEYS, isSecretKey, type Config, type ConfigKey, type KeySpec } from './keys.js';
import { readDotEnvFile, readEnvironment, readFlags, readIniFile, type ConfigSource, type SourcedValue } from './sources.js';

export interface LoadOptions {
  /** --config FILE; when absent, ./config.ini is used if it exists. */
  configFile?: string | undefined;
  /** --set KEY=VALUE flags. */
  flags?: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Keys the command cannot run without. */
  required?: readonly ConfigKey[];
  /** The command routes calls: there must be at least one destination. */
  requireRoute?: boolean;
}

export interface LoadedConfig {
  config: Config;
  /** Where each key's value came from ("defaults" when nothing set it). */
  origins: Readonly<Record<ConfigKey, string>>;
  /** Non-fatal findings, to be logged once at start-up. */
  warnings: string[];
  /** Seed keys that were set but are not used by any feature yet. */
  ignoredKeys: string[];
  files: string[];
}

const KNOWN_KEYS = Object.keys(CONFIG_KEYS) as ConfigKey[];

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const problems: ConfigProblem[] = [];
  const sources: ConfigSource[] = [];

  const iniPath = options.configFile !== undefined ? resolve(cwd, options.configFile) : join(cwd, 'config.ini');
  if (options.configFile !== undefined && !existsSync(iniPath)) {
    problems.push({ key: '--config', source: 'command line', message: `file ${iniPath} does not exist` });
  } else if (existsSync(iniPath)) {
    sources.push(readIniFile(iniPath));
  }
  const dotEnvPath = join(cwd, '.env');
  if (existsSync(dotEnvPath)) sources.push(readDotEnvFile(dotEnvPath));
  sources.push(readEnvironment(options.env ?? process.env, [...KNOWN_KEYS, ...Object.keys(KEY_ALIASES), ...Object.keys(RESERVED_KEYS)]));
  sources.push(readFlags(options.flags ?? []));

  const merged = new Map<string, SourcedValue>();
  const warnings: string[] = [];
  for (const source of sources) {
    warnings.push(...source.warnings);
    problems.push(...source.problems);
    for (const [given, sourced] of source.values) {
      const name = KEY_ALIASES[given] ?? given;
      if (!(name in CONFIG_KEYS) && !(name in RESERVED_KEYS)) {
        if (source.name === 'command line') problems.push({ key: name, source: sourced.source, message: 'unknown key' });
        else warnings.push(`unknown key ${name} in ${sourced.source}; ignored`);
        continue;
      }
      merged.set(name, sourced);
    }
  }

  const values: Record<string, unknown> = {};
  const origins = {} as Record<ConfigKey, string>;
  for (const name of KNOWN_KEYS) {
    const spec = CONFIG_KEYS[name] as KeySpec<unknown>;
    const sourced = merged.get(name);
    // An empty value means "not set", so a template line like `STREAM_TOKEN=` falls back to the default.
    const chosen = sourced !== undefined && (sourced.value !== '' || spec.emptyIsValue === true) ? sourced : undefined;
    const textValue = chosen?.value ?? spec.defaultText;
    origins[name] = chosen?.source ?? 'defaults';
    if (textValue === undefined) continue;
    try {
      values[name] = spec.parse(textValue);
    } catch (error) {
      problems.push({ key: name, source: origins[name], message: (error as Error).message });
    }
  }

  const config = values as Config;
  if (config.MEDIA_ADVERTISE_HOST === undefined && typeof values.MEDIA_BIND_HOST === 'string') {
    if (['0.0.0.0', '::'].includes(values.MEDIA_BIND_HOST)) {
      problems.push({
        key: 'MEDIA_ADVERTISE_HOST',
        source: 'defaults',
        message: `required when MEDIA_BIND_HOST is ${values.MEDIA_BIND_HOST}: the address Asterisk can send audio to`,
      });
    }
    values.MEDIA_ADVERTISE_HOST = values.MEDIA_BIND_HOST;
  }
  if (typeof values.RTP_PORT_START === 'number' && typeof values.RTP_PORT_END === 'number' && values.RTP_PORT_START > values.RTP_PORT_END) {
    problems.push({
      key: 'RTP_PORT_END',
      source: origins.RTP_PORT_END,
      message: `must not be below RTP_PORT_START (${values.RTP_PORT_START})`,
    });
  }
  resolveProvider(values, origins, problems);
  checkOpsEndpoint(values, origins, problems);
  checkSecurity(values, origins, problems);
  checkFeatureCodes(values, origins, problems);
  checkMessageSize(values, origins, problems);
  values.routing = buildRouting(sources, values, origins, problems, warnings, options.requireRoute ?? false);
  for (const name of options.required ?? []) {
    if (values[name] === undefined && !problems.some((p) => p.key === name)) {
      problems.push({ key: name, source: origins[name], message: 'required, but set in no configuration source' });
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const ignoredKeys = [...merged.keys()].filter((name) => name in RESERVED_KEYS).sort();
  return {
    config,
    origins,
    warnings,
    ignoredKeys,
    files: sources.map((s) => s.name).filter((n) => n !== 'environment' && n !== 'command line'),
  };
}

/** The configuration as log fields, secrets replaced by "[set]". */
export function describeConfig(loaded: LoadedConfig): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of KNOWN_KEYS) {
    const value = loaded.config[name];
    if (value === undefined) continue;
    if (isSecretKey(name)) out[name] = '[set]';
    else if (name === 'OUTBOUND_CALL_EXT' && typeof value === 'string' && !loaded.config.LOG_PII) out[name] = maskNumber(value);
    else if (value instanceof Map) {
      // The mapping's numbers are numbers like any other in the logs: masked unless LOG_PII.
      const shown = (number: string) => (loaded.config.LOG_PII ? number : maskNumber(number));
      out[name] = [...value].map(([from, to]) => `${shown(String(from))}:${shown(String(to))}`).join(',');
    } else if (Array.isArray(value))
      out[name] = value.map((item: unknown) => (item instanceof RegExp ? item.source : String(item))).join(',');
    else out[name] = String(value);
  }
  return out;
}

const RULE_SECTION = /^rule\s+([A-Za-z0-9_-]{1,64})$/;

/** The routing table: the ini file's [rule NAME] sections in order, then DIALED_NUMBER_MAPPING. */
function buildRouting(
  sources: readonly ConfigSource[],
  values: Record<string, unknown>,
  origins: Record<ConfigKey, string>,
  problems: ConfigProblem[],
  warnings: string[],
  requireRoute: boolean,
): RoutingTable {
  const fileRules: RoutingRule[] = [];
  const ruleSource = new Map<RoutingRule, string>();
  for (const source of sources) {
    for (const [section, { source: where, values: keys }] of source.sections) {
      const match = RULE_SECTION.exec(section);
      if (!match) {
        warnings.push(`unknown section [${section}] in ${where}; ignored (rules are [rule NAME])`);
        continue;
      }
      try {
        const rule = parseRule(match[1] ?? '', keys);
        fileRules.push(rule);
        ruleSource.set(rule, where);
      } catch (error) {
        problems.push({ key: `[${section}]`, source: where, message: (error as Error).message });
      }
    }
  }
  const mapping = values.DIALED_NUMBER_MAPPING;
  const rules = mapping instanceof Map ? [...fileRules, ...mappingRules(mapping)] : fileRules;

  let defaultDestination: Destination | undefined;
  if (typeof values.SIP_GATEWAY_IP === 'string') {
    defaultDestination = { kind: 'trunk', host: values.SIP_GATEWAY_IP };
    if (typeof values.DESTINATION_DOMAIN === 'string') {
      warnings.push(`SIP_GATEWAY_IP (${origins.SIP_GATEWAY_IP}) is set: trunk mode, DESTINATION_DOMAIN is not used`);
    }
  } else if (typeof values.DESTINATION_DOMAIN === 'string') {
    defaultDestination = { kind: 'domain', host: values.DESTINATION_DOMAIN };
  }
  const gateway = gatewaySettings(values as Config);
  if (defaultDestination === undefined) {
    const noDefault = 'gives no destination, and neither SIP_GATEWAY_IP nor DESTINATION_DOMAIN is set';
    for (const rule of fileRules.filter((r) => r.destination === undefined)) {
      problems.push({ key: `[rule ${rule.name}]`, source: ruleSource.get(rule) ?? 'rules', message: noDefault });
    }
    if (mapping instanceof Map && mapping.size > 0) {
      problems.push({ key: 'DIALED_NUMBER_MAPPING', source: origins.DIALED_NUMBER_MAPPING, message: noDefault });
    }
    if (requireRoute && rules.length === 0 && 'missing' in gateway) {
      problems.push({
        key: 'DESTINATION_DOMAIN',
        source: origins.DESTINATION_DOMAIN,
        message:
          'no route: set DESTINATION_DOMAIN, SIP_GATEWAY_IP, the outbound gateway (OUT_SIP_GATEWAY_IP, ...), or [rule NAME] sections with a destination',
      });
    }
  }
  const outbound = 'missing' in gateway ? { missing: gateway.missing } : { prefix: String(values.OUTBOUND_CALL_PREFIX ?? '') };
  return { rules, defaultDestination, outbound };
}

/**
 * PROVIDER and what it fixes. Voicegain (chosen by VG_GATEWAY_URL, as in the seed)
 * takes stereo L16 at 8 kHz; Twilio Media Streams take µ-law at 8 kHz with two
 * tracks on one connection. STREAM_MODE and SAMPLE_RATE are for the generic
 * websocket only: an explicit value a provider cannot take is an error now, at
 * start-up, not at the first call. The resolved values replace the defaults, so the
 * taps ask Asterisk for the provider's rate (the app never resamples).
 */
function resolveProvider(values: Record<string, unknown>, origins: Record<ConfigKey, string>, problems: ConfigProblem[]): void {
  if (values.PROVIDER === undefined && origins.PROVIDER === 'defaults') {
    values.PROVIDER = values.VG_GATEWAY_URL !== undefined ? 'voicegain' : 'websocket';
    origins.PROVIDER = values.VG_GATEWAY_URL !== undefined ? `defaults (VG_GATEWAY_URL is set in ${origins.VG_GATEWAY_URL})` : 'defaults';
  }
  const provider = values.PROVIDER;
  const explicit = (name: ConfigKey) => origins[name] !== 'defaults';
  const require = (name: ConfigKey, why: string) => {
    if (values[name] === undefined && !problems.some((p) => p.key === name))
      problems.push({ key: name, source: origins[name], message: why });
  };
  if (provider === 'voicegain') {
    require('VG_GATEWAY_URL', "required with PROVIDER=voicegain: the URL of Voicegain's async transcription API");
    require('JWT_TOKEN', 'required with PROVIDER=voicegain: the Voicegain API token');
    require('WEBSOCKET_SERVER', 'required with PROVIDER=voicegain: where Voicegain delivers the transcripts');
    if (explicit('STREAM_MODE') && values.STREAM_MODE !== 'stereo') {
      problems.push({
        key: 'STREAM_MODE',
        source: origins.STREAM_MODE,
        message: `PROVIDER=voicegain streams stereo, not ${String(values.STREAM_MODE)}`,
      });
    }
    if (explicit('SAMPLE_RATE') && values.SAMPLE_RATE !== 8000) {
      problems.push({
        key: 'SAMPLE_RATE',
        source: origins.SAMPLE_RATE,
        message: `PROVIDER=voicegain takes 8000, not ${String(values.SAMPLE_RATE)}`,
      });
    }
    values.STREAM_MODE = 'stereo';
    values.SAMPLE_RATE = 8000;
  } else if (provider === 'twilio') {
    if (explicit('STREAM_MODE')) {
      problems.push({
        key: 'STREAM_MODE',
        source: origins.STREAM_MODE,
        message: 'PROVIDER=twilio sends both parties as two tracks of one stream; STREAM_MODE is for PROVIDER=websocket',
      });
    }
    if (explicit('SAMPLE_RATE') && values.SAMPLE_RATE !== 8000) {
      problems.push({
        key: 'SAMPLE_RATE',
        source: origins.SAMPLE_RATE,
        message: `PROVIDER=twilio takes 8000 (µ-law), not ${String(values.SAMPLE_RATE)}`,
      });
    }
    values.SAMPLE_RATE = 8000;
  }
  if ((values.STREAM_TLS_CERT_FILE === undefined) !== (values.STREAM_TLS_KEY_FILE === undefined)) {
    const missing: ConfigKey = values.STREAM_TLS_CERT_FILE === undefined ? 'STREAM_TLS_CERT_FILE' : 'STREAM_TLS_KEY_FILE';
    problems.push({ key: missing, source: origins[missing], message: 'STREAM_TLS_CERT_FILE and STREAM_TLS_KEY_FILE go together' });
  }
}

/** Loopback addresses: the only ones the operations endpoint may listen on without OPS_TOKEN. */
export { isLoopbackHost };

/** Two codes keyed on a phone where one begins the other: the shorter would always win. */
function checkFeatureCodes(values: Record<string, unknown>, origins: Record<ConfigKey, string>, problems: ConfigProblem[]): void {
  const pause = values.PAUSE_DTMF_CODE;
  const transfer = values.BLIND_TRANSFER_CODE;
  if (typeof pause !== 'string' || typeof transfer !== 'string' || pause === '' || transfer === '') return;
  if (!pause.startsWith(transfer) && !transfer.startsWith(pause)) return;
  problems.push({
    key: 'BLIND_TRANSFER_CODE',
    source: origins.BLIND_TRANSFER_CODE,
    message: `"${transfer}" and PAUSE_DTMF_CODE "${pause}" (${origins.PAUSE_DTMF_CODE}) begin alike: keying one would run the other`,
  });
}

/** Twilio Media Streams carry 20 ms per media message: a longer STREAM_BUFFER_SIZE would not be Twilio's protocol. */
function checkMessageSize(values: Record<string, unknown>, origins: Record<ConfigKey, string>, problems: ConfigProblem[]): void {
  if (values.PROVIDER !== 'twilio' || values.STREAM_BUFFER_SIZE === 20) return;
  problems.push({
    key: 'STREAM_BUFFER_SIZE',
    source: origins.STREAM_BUFFER_SIZE,
    message: `${String(values.STREAM_BUFFER_SIZE)} with PROVIDER=twilio (${origins.PROVIDER}): Twilio Media Streams carry 20 ms per message`,
  });
}

/** The operations endpoint can pause and stop calls: beyond loopback, only with a token. */
function checkOpsEndpoint(values: Record<string, unknown>, origins: Record<ConfigKey, string>, problems: ConfigProblem[]): void {
  const listen = values.OPS_LISTEN as { host: string; port: number } | undefined;
  if (listen === undefined || isLoopbackHost(listen.host) || values.OPS_TOKEN !== undefined) return;
  problems.push({
    key: 'OPS_TOKEN',
    source: origins.OPS_TOKEN,
    message: `required when OPS_LISTEN (${origins.OPS_LISTEN}) listens beyond loopback (${listen.host}): the endpoint controls calls`,
  });
}
