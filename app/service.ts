/**
 * Starts and stops the whole service: the media port pool, the ARI
 * connection, the outbound gateway's objects in Asterisk, the Stasis app and
 * the operations endpoint. The CLI's `serve` and the end-to-end tests both
 * start it through here. Configuration is projected here, once, into what
 * each part needs (tap transports, stream factories).
 *
 * Stopping never hangs up a call: drain() lets calls in progress finish (new
 * ones go to the dialplan fallback) for as long as it is given, then stop()
 * lets go of what is left, up in Asterisk, for the next instance to adopt.
 */
import type { Logger } from 'pino';
import { AriClientAdapter } from './ari/ari-client-adapter.js';
import { StasisApp } from './calls/stasis-app.js';
import type { Config } from './config/keys.js';
import { RtpPortPool } from './media/rtp-port-pool.js';
import { AudioSocketListener } from './media/audiosocket-listener.js';
import { tapTransportFactory } from './media/tap-transports.js';
import { addOperationsRoutes } from './ops/call-control.js';
import { createMetrics } from './ops/metrics.js';
import { OpsServer, type Readiness } from './ops/ops-server.js';
import { provisionGateway } from './outbound/gateway-provisioner.js';
import { watchRegistration } from './outbound/registration-state.js';
import { callStreamsFactory } from './transcription/call-streams.js';
import { streamConnectionFromConfig } from './transcription/stream-connection.js';

export interface RunningService {
  app: StasisApp;
  pool: RtpPortPool;
  /** The TCP port AudioSocket taps connect to (AUDIOSOCKET_PORT, or the one chosen for 0); undefined until AudioSocket is used. */
  readonly audioSocketPort: number | undefined;
  /** The operations endpoint's port (OPS_LISTEN, or the one chosen for port 0); undefined when off. */
  opsPort: number | undefined;
  readiness(): Readiness;
  /** Resolves when another instance took the app over (this one then only idles). */
  replaced: Promise<void>;
  /**
   * Stops taking calls and waits for those in progress to end, at most `timeoutMs` or until
   * `abort` fires; then stops. Resolves with the number of calls left up in Asterisk.
   */
  drain(timeoutMs: number, abort?: AbortSignal): Promise<number>;
  /** Lets go of every call (left up in Asterisk) and closes everything. Idempotent. */
  stop(): Promise<void>;
}

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const pool = new RtpPortPool({
    bindHost: config.MEDIA_BIND_HOST,
    portStart: config.RTP_PORT_START,
    portEnd: config.RTP_PORT_END,
  });
  // Listening only once AudioSocket is used: now for MEDIA_TRANSPORT=audiosocket, else at a call's transport=audiosocket.
  const audioSocketServer = new AudioSocketListener(config.MEDIA_BIND_HOST, config.AUDIOSOCKET_PORT);
  if (config.MEDIA_TRANSPORT === 'audiosocket') await audioSocketServer.server();
  const ari = await AriClientAdapter.connect({
    url: config.ARI_URL,
    username: config.ARI_USERNAME,
    password: config.ARI_PASSWORD ?? '',
    app: config.ARI_APP,
    logger,
  }).catch(async (error: unknown) => {
    await audioSocketServer.close();
    throw error;
  });
  // The gateway's objects live in Asterisk's memory: create them at every connection
  // (an Asterisk restart drops them).
  const provision = () =>
    provisionGateway(ari, config, logger).catch((error: unknown) => {
      logger.error({ err: error }, 'creating the outbound gateway in Asterisk failed');
    });
  let ariUp = false;
  let resolveReplaced!: () => void;
  const replaced = new Promise<void>((resolve) => {
    resolveReplaced = resolve;
  });
  ari.onConnection((change) => {
    ariUp = change.state === 'up';
    if (change.state === 'up' && change.reconnected) void provision();
    if (change.state === 'replaced') resolveReplaced();
  });
  await provision();
  const registration = await watchRegistration(config, logger);
  // The metrics read the app when scraped; the app is made just below.
  const ref: { app?: StasisApp } = {};
  const metrics = createMetrics({
    activeCalls: () => ref.app?.activeCalls ?? 0,
    liveStreams: () => ref.app?.liveStreams() ?? [],
    callsAdopted: () => ref.app?.stats.callsAdopted ?? 0,
    ariReconnects: () => Math.max(0, ari.eventConnections - 1),
  });
  const app = new StasisApp({
    metrics,
    ari,
    config,
    logger,
    transports: tapTransportFactory({
      pool,
      audioSocket: audioSocketServer,
      advertiseHost: config.MEDIA_ADVERTISE_HOST ?? config.MEDIA_BIND_HOST,
      ariUrl: config.ARI_URL,
    }),
    createStreams: callStreamsFactory(config, streamConnectionFromConfig(config)),
  });
  ref.app = app;
  const readiness = (): Readiness => {
    if (app.state === 'starting') return { ready: false, reason: 'starting' };
    if (app.state !== 'running') return { ready: false, reason: app.state };
    if (!ariUp) return { ready: false, reason: 'ari-down' };
    return { ready: true };
  };
  const ops =
    config.OPS_LISTEN === undefined
      ? undefined
      : await OpsServer.listen({ ...config.OPS_LISTEN, token: config.OPS_TOKEN, readiness, logger }).catch(async (error: unknown) => {
          registration?.close();
          await ari.close();
          await audioSocketServer.close();
          throw error;
        });
  if (ops !== undefined) addOperationsRoutes(ops, app, metrics.registry);
  await app.start();
  const sink =
    config.PROVIDER === 'voicegain'
      ? { provider: config.PROVIDER, voicegain: config.VG_GATEWAY_URL?.origin }
      : {
          provider: config.PROVIDER,
          streamUrl: config.STREAM_URL.origin,
          ...(config.PROVIDER === 'websocket' && { streamMode: config.STREAM_MODE }),
        };
  logger.info(
    {
      app: config.ARI_APP,
      node: config.NODE_NAME,
      ...sink,
      sampleRate: config.SAMPLE_RATE,
      mediaTransport: config.MEDIA_TRANSPORT,
      audioSocketPort: audioSocketServer.port,
      opsPort: ops?.port,
    },
    'service ready',
  );

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await app.stop();
      registration?.close();
      await ari.close();
      await ops?.close();
      await audioSocketServer.close();
      logger.info('service stopped');
    })();
    return stopped;
  };
  return {
    app,
    pool,
    get audioSocketPort() {
      return audioSocketServer.port;
    },
    opsPort: ops?.port,
    readiness,
    replaced,
    async drain(timeoutMs, abort) {
      const drained = app.drain();
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        drained.then(() => 'drained' as const),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        }),
        new Promise<'aborted'>((resolve) => {
          if (abort?.aborted) resolve('aborted');
          abort?.addEventListener('abort', () => resolve('aborted'), { once: true });
        }),
      ]);
      clearTimeout(timer);
      const left = app.activeCalls;
      logger.info(
        { how: ended, callsLeft: left },
        ended === 'drained' ? 'drained: no call left' : 'drain ended with calls in progress; they stay up in Asterisk',
      );
      await stop();
      return left;
    },
    stop,
  };
}
