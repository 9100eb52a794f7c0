/**
 * Starts and stops the whole service: the media port pool, the ARI
 * connection, the outbound gateway's objects in Asterisk, and the Stasis app. The CLI's `serve` and the end-to-end tests
 * both start it through here.
 */
import type { Logger } from 'pino';
import { AriClientAdapter } from './ari/ari-client-adapter.js';
import { StasisApp } from './calls/stasis-app.js';
import type { Config } from './config/keys.js';
import { RtpPortPool } from './media/rtp-port-pool.js';
import { AudioSocketServer } from './media/audiosocket-server.js';
import { provisionGateway } from './outbound/gateway-provisioner.js';
import { watchRegistration } from './outbound/registration-state.js';
import { streamConnectionFromConfig } from './transcription/stream-connection.js';

export interface RunningService {
  app: StasisApp;
  pool: RtpPortPool;
  /** The TCP port AudioSocket taps connect to (AUDIOSOCKET_PORT, or the one chosen for 0). */
  audioSocketPort: number;
  stop(): Promise<void>;
}

export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  const pool = new RtpPortPool({
    bindHost: config.MEDIA_BIND_HOST,
    portStart: config.RTP_PORT_START,
    portEnd: config.RTP_PORT_END,
  });
  // Always listening: a call can choose AudioSocket with the Stasis argument transport=audiosocket.
  const audioSocketServer = await AudioSocketServer.listen(config.MEDIA_BIND_HOST, config.AUDIOSOCKET_PORT);
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
  // The gateway's objects live in Asterisk's memory: create them now and after every
  // reconnection (an Asterisk restart drops them).
  const provision = () =>
    provisionGateway(ari, config, logger).catch((error) => {
      logger.error({ err: (error as Error).message }, 'creating the outbound gateway in Asterisk failed');
    });
  await provision();
  ari.on('connected', () => void provision());
  const registration = await watchRegistration(config, logger);
  const app = new StasisApp({ ari, config, logger, pool, audioSocketServer, streamConnection: streamConnectionFromConfig(config) });
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
      ...sink,
      sampleRate: config.SAMPLE_RATE,
      mediaTransport: config.MEDIA_TRANSPORT,
      audioSocketPort: audioSocketServer.port,
    },
    'service ready',
  );
  let stopped: Promise<void> | undefined;
  return {
    app,
    pool,
    audioSocketPort: audioSocketServer.port,
    stop() {
      stopped ??= (async () => {
        await app.stop();
        registration?.close();
        await ari.close();
        await audioSocketServer.close();
        logger.info('service stopped');
      })();
      return stopped;
    },
  };
}
