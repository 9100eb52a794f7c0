#!/usr/bin/env -S node --max-semi-space-size=1
/**
 * The `transcription-proxy` command. Sub-commands parse their options, load
 * the configuration and run; this file is the only place that turns errors
 * into exit codes: 2 for bad configuration or usage, 1 for anything else, and
 * for `call --wait` 0 answered, 3 busy, 4 no answer, 5 failed.
 * stdout carries only JSON log lines, except for `check`, whose product is a
 * human-readable report, and `call`, which prints the call id; human-readable
 * problems go to stderr.
 *
 * The first line is how the service runs (npx, the npm package's bin, the
 * systemd unit, Docker's entry point, `npm start`, the tests and benchmarks all
 * start this file through it): V8's young generation at most 1 MiB a
 * semi-space instead of 16. Under load, a frame's objects live a few ms, and
 * the default lets the young generation grow to 32 MiB of memory that a
 * scavenge every few ms would not need (docs/benchmarks.md: idle RSS 77 → 68
 * MiB, loaded 1.8 → 0.3 MiB per call at 25 calls, CPU unchanged).
 */
import { Command, Option } from 'commander';
import { AppError, ConfigError } from '../errors.js';
import { formatReport } from '../check/report.js';
import { runCheck } from '../check/run-check.js';
import { describeConfig, loadConfig } from '../config/load-config.js';
import { CONFIG_KEYS, isSecretKey, type ConfigKey } from '../config/keys.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { piiFromEnvironment } from '../logging/pii.js';
import { startReceiver } from '../receiver/stream-receiver.js';
import { startService } from '../service.js';
import { installLastResortHandlers } from '../calls/call-context.js';
import { AriClientAdapter } from '../ari/ari-client-adapter.js';
import { placeCall, type CallOutcome } from '../outbound/place-call.js';
import { checkNumber } from '../routing/dial-validator.js';
import { packageVersion } from './package-version.js';
import { opsRequest, opsTarget } from './ops-client.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_CONFIG = 2;
export const EXIT_CALL: Readonly<Record<CallOutcome, number>> = { answered: 0, busy: 3, 'no-answer': 4, failed: 5 };
/** The control commands (pause, resume, stop, send-text): no such call in progress. */
export const EXIT_NO_SUCH_CALL = 3;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Resolves on SIGINT/SIGTERM so the caller can shut down cleanly. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/** `promise`, or an ARI_UNREACHABLE error after `ms`. */
async function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AppError('ARI_UNREACHABLE', message, { retryable: true })), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What `serve` cannot run without (a password, and some route for calls); `check` demands the same. */
const SERVE_REQUIREMENTS = { required: ['ARI_PASSWORD'] as readonly ConfigKey[], requireRoute: true };

/**
 * `serve` until a signal. SIGTERM (or SIGINT) drains: new calls go to the dialplan fallback,
 * calls in progress stay transcribed until they end or DRAIN_TIMEOUT_MS passes; a second
 * signal ends the drain at once. Either way the calls stay up in Asterisk and the exit code
 * is 0. An instance another one replaced idles until it is stopped: exiting would have a
 * supervisor (systemd, Docker) start it again, and the two would take turns.
 */
async function serve(options: { config?: string; set: string[] }): Promise<number> {
  const loaded = loadConfig({ configFile: options.config, flags: options.set, ...SERVE_REQUIREMENTS });
  const logger = createLogger(loaded.config.LOG_LEVEL, undefined, { showPii: loaded.config.LOG_PII });
  installLastResortHandlers(logger);
  logger.info({ config: describeConfig(loaded), files: loaded.files }, 'configuration loaded');
  for (const warning of loaded.warnings) logger.warn({ warning }, 'configuration warning');
  if (loaded.ignoredKeys.length > 0) logger.warn({ keys: loaded.ignoredKeys }, 'configuration keys not used by any feature yet; ignored');
  const service = await startService(loaded.config, logger);
  void service.replaced.then(() => logger.warn('this instance was replaced by another one: it idles (not ready) until it is stopped'));
  const signal = await untilSignal();
  const drainTimeoutMs = loaded.config.DRAIN_TIMEOUT_MS;
  logger.info({ signal, drainTimeoutMs, calls: service.app.activeCalls }, 'stopping: draining');
  const second = new AbortController();
  const onSecond = (next: NodeJS.Signals) => {
    logger.info({ signal: next }, 'second signal: ending the drain now');
    second.abort();
  };
  process.once('SIGTERM', onSecond);
  process.once('SIGINT', onSecond);
  await service.drain(drainTimeoutMs, second.signal);
  return EXIT_OK;
}

async function check(options: { config?: string; set: string[] }): Promise<number> {
  const loaded = loadConfig({ configFile: options.config, flags: options.set, ...SERVE_REQUIREMENTS });
  const transport = loaded.config.MEDIA_TRANSPORT;
  const results = await runCheck(loaded, { transport, ariTimeoutMs: 5000, streamTimeoutMs: 5000 });
  const secrets = (Object.keys(CONFIG_KEYS) as ConfigKey[])
    .filter(isSecretKey)
    .map((name) => loaded.config[name])
    .filter((value): value is string => typeof value === 'string');
  const report = formatReport(results, { title: `transcription-proxy check (media transport: ${transport})`, secrets });
  process.stdout.write(report.text);
  return report.exitCode === 0 ? EXIT_OK : EXIT_FAILURE;
}

interface CallOptions {
  config?: string;
  set: string[];
  from?: string;
  callerId?: string;
  timeoutMs: string;
  wait?: boolean;
}

async function call(number: string, options: CallOptions): Promise<number> {
  const loaded = loadConfig({ configFile: options.config, flags: options.set, required: ['ARI_PASSWORD'] });
  const { config } = loaded;
  const usage = (message: string) => new AppError('USAGE_INVALID', message);
  const numberVerdict = checkNumber(number);
  if (!numberVerdict.ok) throw usage(`NUMBER "${number}" is not dialable: ${numberVerdict.reason}`);
  const extension = options.from ?? config.OUTBOUND_CALL_EXT;
  if (extension === undefined) throw usage('no agent extension: give --from EXTENSION or set OUTBOUND_CALL_EXT');
  const extensionVerdict = checkNumber(extension);
  if (!extensionVerdict.ok) throw usage(`--from "${extension}" is not an extension: ${extensionVerdict.reason}`);
  if (options.callerId !== undefined && !checkNumber(options.callerId).ok)
    throw usage(`--caller-id "${options.callerId}" is not a plain number`);
  const timeoutMs = Number(options.timeoutMs);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1000) throw usage('--timeout-ms takes a whole number of milliseconds, at least 1000');

  // Logs go to stderr: stdout carries the call id, for scripts.
  const logger = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL, process.stderr, { showPii: config.LOG_PII });
  const ari = await AriClientAdapter.connect({
    url: config.ARI_URL,
    username: config.ARI_USERNAME,
    password: config.ARI_PASSWORD ?? '',
    app: `${config.ARI_APP}-call-${process.pid}`,
    logger,
    connectTimeoutMs: 5000,
  });
  try {
    // This command's own app watches the agent's channel: its events must flow before the call is placed.
    await withDeadline(ari.openEvents(), 5000, 'the ARI event connection did not open within 5 s');
    const placed = await placeCall(ari, {
      number,
      agentEndpoint: config.AGENT_DIAL.replaceAll('{ext}', extension),
      serviceApp: config.ARI_APP,
      callerId: options.callerId,
      timeoutMs,
    });
    process.stdout.write(`${placed.callId}\n`);
    if (!options.wait) return EXIT_OK;
    const outcome = await placed.ended;
    process.stderr.write(`transcription-proxy: call ${placed.callId}: ${outcome}\n`);
    return EXIT_CALL[outcome];
  } finally {
    await ari.close();
  }
}

async function receive(options: { host: string; port: string; dir: string; logLevel: string }): Promise<number> {
  // No configuration file here: LOG_PII=true in the environment shows numbers and messages in clear.
  const logger = createLogger(options.logLevel as Parameters<typeof createLogger>[0], undefined, { showPii: piiFromEnvironment() });
  const receiver = await startReceiver({ host: options.host, port: Number(options.port), directory: options.dir, logger });
  logger.info({ url: `ws://${options.host}:${receiver.port}`, directory: options.dir }, 'receiver listening');
  await untilSignal();
  await receiver.close();
  return EXIT_OK;
}

interface ControlOptions {
  config?: string;
  set: string[];
  ops?: string;
  json?: boolean;
}

/** The service's operations endpoint, from the same configuration `serve` reads (or --ops). */
function controlTarget(options: ControlOptions) {
  const { config } = loadConfig({ configFile: options.config, flags: options.set });
  return opsTarget(config.OPS_LISTEN, config.OPS_TOKEN, options.ops);
}

async function listCalls(options: ControlOptions): Promise<number> {
  const answer = await opsRequest(controlTarget(options), 'GET', '/calls');
  if (answer.status !== 200)
    throw new AppError('OPS_UNREACHABLE', `the operations endpoint answered ${answer.status}: ${String(answer.body.error ?? '')}`);
  const calls = (answer.body.calls ?? []) as {
    callId: string;
    state: string;
    paused: boolean;
    transcribing: boolean;
    direction: string;
    startedAt: string;
    streams: { name: string; state: string; framesSent: number }[];
  }[];
  if (options.json) {
    process.stdout.write(`${JSON.stringify(answer.body)}\n`);
    return EXIT_OK;
  }
  for (const c of calls) {
    const streams = c.streams.map((s) => `${s.name}:${s.state}:${s.framesSent}`).join(' ');
    process.stdout.write(
      `${c.callId}  ${c.state}  ${c.direction}  ${c.paused ? 'paused' : c.transcribing ? 'transcribing' : 'not transcribing'}  since ${c.startedAt}  ${streams}\n`,
    );
  }
  return EXIT_OK;
}

/** One control action on a call: exit 0 done, 3 no such call, 1 the service failed or could not be reached, 2 bad usage. */
async function controlCall(
  callId: string,
  action: 'pause' | 'resume' | 'stop' | 'text',
  options: ControlOptions,
  text?: string,
): Promise<number> {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(callId)) {
    throw new AppError('USAGE_INVALID', `CALL "${callId.slice(0, 64)}" is not a call id (a UUID, as \`calls\` lists them)`);
  }
  const answer = await opsRequest(controlTarget(options), 'POST', `/calls/${callId}/${action}`, text === undefined ? undefined : { text });
  if (answer.status === 404) {
    process.stderr.write(`transcription-proxy: no call ${callId} in progress\n`);
    return EXIT_NO_SUCH_CALL;
  }
  if (answer.status === 400 || answer.status === 413)
    throw new AppError('USAGE_INVALID', String(answer.body.error ?? `refused (${answer.status})`));
  if (answer.status !== 200)
    throw new AppError('OPS_UNREACHABLE', `the operations endpoint answered ${answer.status}: ${String(answer.body.error ?? '')}`);
  process.stdout.write(`${JSON.stringify(answer.body)}\n`);
  return EXIT_OK;
}

function report(error: unknown, logger?: Logger): number {
  if (error instanceof ConfigError) {
    process.stderr.write(`transcription-proxy: invalid configuration\n${error.report()}\n`);
    return EXIT_CONFIG;
  }
  if (error instanceof AppError && error.code === 'USAGE_INVALID') {
    process.stderr.write(`transcription-proxy: ${error.message}\n`);
    return EXIT_CONFIG;
  }
  const message = error instanceof Error ? error.message : String(error);
  const code = error instanceof AppError ? error.code : undefined;
  logger?.fatal({ code, err: message }, 'fatal error');
  process.stderr.write(`transcription-proxy: ${message}\n`);
  return EXIT_FAILURE;
}

export function buildProgram(run: (task: () => Promise<number>) => void): Command {
  const program = new Command('transcription-proxy')
    .description('Real-time call transcription for Asterisk: bridges calls and streams each party, labelled, to a websocket.')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('run the Stasis app: route, bridge and tap calls')
    .option('-c, --config <file>', 'ini file (default: ./config.ini when present)')
    .option('-s, --set <KEY=VALUE>', 'set a configuration key (repeatable; overrides every other source)', collect, [])
    .action((options) => run(() => serve(options)));

  program
    .command('check')
    .description(
      'check a deployment: configuration, ARI, the Asterisk modules needed, STREAM_URL; prints a report (exit 0: all OK, 1: a check failed)',
    )
    .option('-c, --config <file>', 'ini file (default: ./config.ini when present)')
    .option('-s, --set <KEY=VALUE>', 'set a configuration key (repeatable; overrides every other source)', collect, [])
    .action((options) => run(() => check(options)));

  program
    .command('call')
    .description(
      'place an outbound call through the running service: ring the agent, then dial NUMBER through the outbound gateway; prints the call id',
    )
    .argument('<NUMBER>', 'the number to call')
    .option('--from <extension>', "the agent's extension (default: OUTBOUND_CALL_EXT), dialled as AGENT_DIAL")
    .option('--caller-id <number>', "caller ID shown on the agent's phone")
    .option('--timeout-ms <ms>', "how long the agent's phone may ring", '30000')
    .option('--wait', 'stay until the call ends; exit 0 answered, 3 busy, 4 no answer, 5 failed')
    .option('-c, --config <file>', 'ini file (default: ./config.ini when present)')
    .option('-s, --set <KEY=VALUE>', 'set a configuration key (repeatable; overrides every other source)', collect, [])
    .action((number, options) => run(() => call(number, options)));

  program
    .command('receive')
    .description('built-in stream receiver: logs each stream and writes one WAV file per stream')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', '8090')
    .option('--dir <directory>', 'where WAV files are written', 'recordings')
    .addOption(new Option('--log-level <level>', 'log level').default('info').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']))
    .action((options) => run(() => receive(options)));

  const control = (command: Command) =>
    command
      .option('--ops <url>', "the service's operations endpoint (default: from OPS_LISTEN of the configuration)")
      .option('-c, --config <file>', 'ini file (default: ./config.ini when present)')
      .option('-s, --set <KEY=VALUE>', 'set a configuration key (repeatable; overrides every other source)', collect, []);

  control(
    program
      .command('calls')
      .description('list the calls in progress in the running service (through its operations endpoint)')
      .option('--json', 'print the JSON of GET /calls'),
  ).action((options) => run(() => listCalls(options)));
  for (const [name, action, description] of [
    ['pause', 'pause', 'pause transcription of a call: its streams carry silence until resumed (PCI)'],
    ['resume', 'resume', 'resume transcription of a paused call'],
    ['stop', 'stop', 'stop transcribing a call; the call goes on'],
  ] as const) {
    control(
      program
        .command(name)
        .description(`${description}; exit 0 done, 3 no such call, 1 the service could not be reached`)
        .argument('<CALL>', 'the call id, as `calls` lists it'),
    ).action((callId: string, options: ControlOptions) => run(() => controlCall(callId, action, options)));
  }
  control(
    program
      .command('send-text')
      .description("send a text message down a call's streams (as mod_audio_stream's send_text); exit 0 sent, 3 no such call")
      .argument('<CALL>', 'the call id')
      .argument('<TEXT>', 'the text'),
  ).action((callId: string, text: string, options: ControlOptions) => run(() => controlCall(callId, 'text', options, text)));

  return program;
}

function main(): void {
  const run = (task: () => Promise<number>) => {
    task()
      .then(
        (code) => {
          process.exitCode = code;
        },
        (error) => {
          process.exitCode = report(error);
        },
      )
      .finally(() => {
        // Give pino's asynchronous destination a moment to flush, then leave even if a handle lingers.
        setTimeout(() => process.exit(), 200).unref();
      });
  };
  try {
    buildProgram(run).parse(process.argv);
  } catch (error) {
    const exitCode = (error as { exitCode?: number }).exitCode;
    process.exitCode = exitCode === 0 ? EXIT_OK : EXIT_CONFIG;
  }
}

main();
