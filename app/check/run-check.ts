/**
 * Performs the checks of `transcription-proxy check` against a deployment:
 * the (already validated) configuration, the ARI connection, the Asterisk
 * modules the media transport needs, and the transcription websocket. This is
 * the one part of the command that does I/O; every step has a time limit, and
 * every failure becomes a FAIL result, never an exception.
 *
 * The check makes REST requests only and never opens ARI's event websocket:
 * registering ARI_APP would make Asterisk hand a running service's app over to
 * the check ("Replacing Stasis app") and leave the service deaf to new calls.
 * (Its adapter still carries a uniquely named app, in case that ever changes.)
 */
import { AriClientAdapter } from '../ari/ari-client-adapter.js';
import type { AriModule } from '../ari/ari-port.js';
import type { LoadedConfig } from '../config/load-config.js';
import { createLogger } from '../logging/logger.js';
import type { CheckResult } from './report.js';
import { preflightAri } from '../ari/ari-preflight.js';
import { findModuleProblems, modulesConfLine, requiredModules, type MediaTransport } from './required-modules.js';
import { probeStream } from './stream-probe.js';
import { streamConnectionFromConfig } from '../transcription/stream-connection.js';
import { checkGateway } from './gateway-check.js';

export interface RunCheckOptions {
  transport: MediaTransport;
  /** How long to keep trying to reach ARI. */
  ariTimeoutMs?: number;
  /** How long the websocket to STREAM_URL may take to open and close. */
  streamTimeoutMs?: number;
}

/** Extra time past the adapter's own retry deadline before a hung connect is abandoned. */
const HUNG_CONNECT_GRACE_MS = 2000;

function messageOf(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

function configurationResult(loaded: LoadedConfig): CheckResult {
  const files = loaded.files.length > 0 ? `files: ${loaded.files.join(', ')}` : 'no configuration file';
  const details = [
    ...loaded.warnings.map((warning) => `note: ${warning}`),
    ...(loaded.ignoredKeys.length > 0 ? [`note: not used by any feature yet, ignored: ${loaded.ignoredKeys.join(', ')}`] : []),
  ];
  return { name: 'configuration', status: 'ok', summary: `valid (${files})`, details };
}

async function connectAri(loaded: LoadedConfig, timeoutMs: number): Promise<AriClientAdapter> {
  const { config } = loaded;
  const connecting = AriClientAdapter.connect({
    url: config.ARI_URL,
    username: config.ARI_USERNAME,
    password: config.ARI_PASSWORD ?? '',
    app: `${config.ARI_APP}-check-${process.pid}`,
    logger: createLogger('silent'),
    connectTimeoutMs: timeoutMs,
  });
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer from ARI at ${config.ARI_URL.href} within ${timeoutMs + HUNG_CONNECT_GRACE_MS} ms`)),
      timeoutMs + HUNG_CONNECT_GRACE_MS,
    );
  });
  try {
    return await Promise.race([connecting, hung]);
  } catch (error) {
    // A connect that completes after we gave up must not stay open.
    connecting.then(
      (late) => late.close(),
      () => undefined,
    );
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function checkModules(ari: AriClientAdapter, transport: MediaTransport): Promise<CheckResult> {
  const required = requiredModules(transport);
  let modules: AriModule[];
  try {
    modules = await ari.listModules();
  } catch (error) {
    return {
      name: 'modules',
      status: 'fail',
      summary: `ARI could not list Asterisk's modules: ${messageOf(error)}`,
      details: [`listing them needs res_ari_asterisk; add to modules.conf: ${modulesConfLine('res_ari_asterisk')}`],
    };
  }
  const problems = findModuleProblems(required, modules);
  if (problems.length === 0) {
    return { name: 'modules', status: 'ok', summary: `all ${required.length} modules the ${transport} media transport needs are running` };
  }
  return {
    name: 'modules',
    status: 'fail',
    summary: `${problems.length} of ${required.length} modules the ${transport} media transport needs ${problems.length === 1 ? 'is' : 'are'} not running: ${problems.map((p) => p.module.name).join(', ')}`,
    details: problems.map(({ module, state }) =>
      state === 'absent'
        ? `${module.name}: not loaded; add to modules.conf: ${modulesConfLine(module.name)}  (${module.why})`
        : `${module.name}: status "${state.status}", see Asterisk's log; modules.conf needs: ${modulesConfLine(module.name)}  (${module.why})`,
    ),
  };
}

async function checkAsterisk(loaded: LoadedConfig, options: RunCheckOptions): Promise<CheckResult[]> {
  const { config } = loaded;
  const timeoutMs = options.ariTimeoutMs ?? 5000;
  const modulesSkipped: CheckResult = { name: 'modules', status: 'skipped', summary: 'not checked: needs a working ARI connection' };
  const preflight = await preflightAri({
    url: config.ARI_URL,
    username: config.ARI_USERNAME,
    password: config.ARI_PASSWORD ?? '',
    timeoutMs,
  });
  if (!preflight.ok) {
    return [
      { name: 'ARI', status: 'fail', summary: preflight.reason, details: preflight.hint === undefined ? [] : [preflight.hint] },
      modulesSkipped,
    ];
  }
  let ari: AriClientAdapter;
  try {
    ari = await connectAri(loaded, timeoutMs);
  } catch (error) {
    return [{ name: 'ARI', status: 'fail', summary: messageOf(error) }, modulesSkipped];
  }
  try {
    const gateway = await checkGateway(ari, config).catch((error): CheckResult => ({
      name: 'gateway',
      status: 'fail',
      summary: messageOf(error),
    }));
    return [
      { name: 'ARI', status: 'ok', summary: `connected to ${config.ARI_URL.href} as ${config.ARI_USERNAME}` },
      await checkModules(ari, options.transport),
      ...(gateway === undefined ? [] : [gateway]),
    ];
  } finally {
    await ari.close();
  }
}

/** The transcription side: STREAM_URL is probed; Voicegain is not (a request opens a billed session). */
function checkStream(config: LoadedConfig['config'], timeoutMs: number): Promise<CheckResult> {
  if (config.PROVIDER === 'voicegain') {
    return Promise.resolve({
      name: 'stream',
      status: 'skipped',
      summary: `PROVIDER=voicegain: a session is requested from ${config.VG_GATEWAY_URL?.origin ?? 'VG_GATEWAY_URL'} when a call is answered; not tried here, since every request opens a billed session`,
    });
  }
  return probeStream({ url: config.STREAM_URL, connection: streamConnectionFromConfig(config), timeoutMs });
}

/** Runs every check; the results are in a fixed order: configuration, ARI, modules, gateway (when configured), stream. */
export async function runCheck(loaded: LoadedConfig, options: RunCheckOptions): Promise<CheckResult[]> {
  const [asterisk, stream] = await Promise.all([
    checkAsterisk(loaded, options),
    checkStream(loaded.config, options.streamTimeoutMs ?? 5000),
  ]);
  return [configurationResult(loaded), ...asterisk, stream];
}
