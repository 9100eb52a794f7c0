/**
 * The only module that uses `ari-client` (ari-client-loader.ts loads it). It turns the library's dynamic,
 * swagger-generated API into our AriPort for ARI's REST requests: connecting
 * with retries (Asterisk's HTTP port refuses connections for a moment after
 * boot), keeping the swagger warning the library prints off stdout, and
 * bounding every request in time. The event websocket is ours
 * (ari-event-socket.ts), not the library's: ari-client's gives up after a few
 * attempts, runs two reconnect loops after a long outage (its start() both
 * rejects and emits WebSocketMaxRetries) and never pings, so a half-open
 * connection went unnoticed.
 *
 * ari-client quirks handled here: errors lose their HTTP status (the message is
 * the response body), so "already gone" is recognised by the body's text; and
 * resource objects carry a back-reference to the client, so results are copied
 * into plain JSON before they leave this module.
 */
import type { Logger } from 'pino';
import { AppError } from '../errors.js';
import { loadAriClient } from './ari-client-loader.js';
import { AriEventSocket } from './ari-event-socket.js';
import { preflightAri } from './ari-preflight.js';
import type {
  AriAsteriskPort,
  AriBridge,
  AriChannel,
  AriConnectionChange,
  AriEvent,
  AriModule,
  AriPort,
  ExternalMediaRequest,
  OriginateRequest,
  HangupReason,
  TransferProgress,
} from './ari-port.js';

export interface AriConnectOptions {
  url: URL;
  username: string;
  password: string;
  app: string;
  logger: Logger;
  /** How long to keep retrying the first connection. */
  connectTimeoutMs?: number;
}

// ari-client's swagger dependency logs through console.log; keep it out of our JSON stdout.
async function withConsoleCaptured<T>(logger: Logger, action: () => Promise<T>): Promise<T> {
  const original = console.log;
  console.log = (...args: unknown[]) => logger.debug({ library: 'ari-client', output: args }, 'library output');
  try {
    return await action();
  } finally {
    console.log = original;
  }
}

function plain<T>(resource: unknown): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(resource as Record<string, unknown>)) {
    if (!key.startsWith('_') && typeof value !== 'function') out[key] = value;
  }
  return out as T;
}

function isGone(error: unknown): boolean {
  return /not found|Channel not in Stasis|No such channel/i.test(String((error as Error)?.message ?? error));
}

/** Asterisk's 409 body for POST /bridges/{id} on an id in use (it does not update the bridge). */
function isExistingBridge(error: unknown): boolean {
  return /Bridge with id '.*' already exists/.test(String((error as Error)?.message ?? error));
}

function requestFailed(operation: string, error: unknown): AppError {
  return new AppError('ARI_REQUEST_FAILED', `ARI ${operation} failed: ${String((error as Error)?.message ?? error)}`, { cause: error });
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** No ARI request may hang a call's setup or teardown: ari-client sets no time limit of its own. */
const REQUEST_TIMEOUT_MS = 10_000;

function withTimeout<T>(operation: string, request: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AppError('ARI_REQUEST_FAILED', `ARI ${operation}: no answer within ${REQUEST_TIMEOUT_MS} ms`, { retryable: true })),
      REQUEST_TIMEOUT_MS,
    );
  });
  return Promise.race([request, timeout]).finally(() => clearTimeout(timer));
}

/** An ARI connection for one application: REST through ari-client, events through AriEventSocket. */
export class AriClientAdapter implements AriPort, AriAsteriskPort {
  readonly app: string;
  // ari-client's dynamic API: typed loosely here and nowhere else.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly #client: any;
  readonly #options: AriConnectOptions;
  readonly #events: AriEventSocket;
  #closed = false;

  private constructor(client: unknown, options: AriConnectOptions) {
    this.#client = client;
    this.app = options.app;
    this.#options = options;
    this.#events = new AriEventSocket({
      url: options.url,
      username: options.username,
      password: options.password,
      app: options.app,
      logger: options.logger,
    });
  }

  /**
   * Connects ARI's REST side, retrying until connectTimeoutMs; the app is registered only
   * by openEvents(), once the caller listens for its events.
   */
  static async connect(options: AriConnectOptions): Promise<AriClientAdapter> {
    const deadline = Date.now() + (options.connectTimeoutMs ?? 30_000);
    const baseUrl = options.url.href.replace(/\/$/, '');
    for (let attempt = 1; ; attempt++) {
      // ari-client throws an uncaught exception (killing the process) when its first request
      // gets anything but 200, so that request is made here first (ari-preflight.ts).
      const preflight = await preflightAri({ url: options.url, username: options.username, password: options.password, timeoutMs: 5000 });
      if (!preflight.ok && preflight.kind === 'unauthorized') {
        throw new AppError('ARI_UNREACHABLE', preflight.reason);
      }
      if (!preflight.ok) {
        if (Date.now() > deadline) throw new AppError('ARI_UNREACHABLE', preflight.reason, { retryable: true });
        options.logger.debug({ attempt, err: preflight.reason }, 'ARI not reachable yet; retrying');
        await delay(Math.min(250 * attempt, 2000));
        continue;
      }
      try {
        const client = await withConsoleCaptured(options.logger, () =>
          loadAriClient().connect(baseUrl, options.username, options.password),
        );
        options.logger.info({ ariUrl: baseUrl, app: options.app }, 'connected to ARI');
        return new AriClientAdapter(client, options);
      } catch (error) {
        const message = String((error as Error)?.message ?? error);
        if (Date.now() > deadline) {
          throw new AppError('ARI_UNREACHABLE', `cannot reach ARI at ${baseUrl}: ${message}`, { cause: error, retryable: true });
        }
        options.logger.debug({ attempt, err: message }, 'ARI not reachable yet; retrying');
        await delay(Math.min(250 * attempt, 2000));
      }
    }
  }

  /** Event sockets opened so far (1 + reconnections). */
  get eventConnections(): number {
    return this.#events.connections;
  }

  openEvents(): Promise<void> {
    return this.#events.open();
  }

  onEvent(listener: (event: AriEvent) => void): () => void {
    return this.#events.onEvent(listener);
  }

  onConnection(listener: (change: AriConnectionChange) => void): () => void {
    return this.#events.onConnection(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#events.close();
  }

  async #call<T>(operation: string, run: () => Promise<unknown>): Promise<T> {
    try {
      return (await withTimeout(operation, run())) as T;
    } catch (error) {
      if (error instanceof AppError) throw error;
      throw requestFailed(operation, error);
    }
  }

  async #ignoringGone(operation: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await withTimeout(operation, run());
    } catch (error) {
      if (error instanceof AppError) throw error;
      if (!isGone(error)) throw requestFailed(operation, error);
    }
  }

  async originate(request: OriginateRequest): Promise<AriChannel> {
    const channel = await this.#call('channels.originateWithId', () =>
      this.#client.channels.originateWithId({
        channelId: request.channelId,
        endpoint: request.endpoint,
        app: request.app,
        appArgs: request.appArgs,
        timeout: request.timeoutSeconds,
        ...(request.callerId !== undefined && { callerId: request.callerId }),
      }),
    );
    return plain<AriChannel>(channel);
  }

  async subscribe(eventSource: string): Promise<void> {
    await this.#call('applications.subscribe', () => this.#client.applications.subscribe({ applicationName: this.app, eventSource }));
  }

  async createChannel(request: {
    channelId: string;
    endpoint: string;
    appArgs?: string;
    originator?: string;
    variables?: Record<string, string>;
  }): Promise<AriChannel> {
    const channel = await this.#call('channels.create', () =>
      this.#client.channels.create({
        app: this.app,
        channelId: request.channelId,
        endpoint: request.endpoint,
        ...(request.appArgs !== undefined && { appArgs: request.appArgs }),
        ...(request.originator !== undefined && { originator: request.originator }),
        ...(request.variables !== undefined && { variables: request.variables }),
      }),
    );
    return plain<AriChannel>(channel);
  }

  async dial(channelId: string, options: { caller?: string; timeoutSeconds: number }): Promise<void> {
    await this.#call('channels.dial', () =>
      this.#client.channels.dial({
        channelId,
        timeout: options.timeoutSeconds,
        ...(options.caller !== undefined && { caller: options.caller }),
      }),
    );
  }

  async answer(channelId: string): Promise<void> {
    await this.#call('channels.answer', () => this.#client.channels.answer({ channelId }));
  }

  async ring(channelId: string): Promise<void> {
    await this.#call('channels.ring', () => this.#client.channels.ring({ channelId }));
  }

  async ringStop(channelId: string): Promise<void> {
    await this.#ignoringGone('channels.ringStop', () => this.#client.channels.ringStop({ channelId }));
  }

  async hangup(channelId: string, reason: HangupReason = 'normal'): Promise<void> {
    await this.#ignoringGone('channels.hangup', () => this.#client.channels.hangup({ channelId, reason }));
  }

  async snoop(request: { channelId: string; snoopId: string; spy: 'in' | 'out' | 'both'; appArgs: string }): Promise<AriChannel> {
    const channel = await this.#call('channels.snoopChannelWithId', () =>
      this.#client.channels.snoopChannelWithId({
        channelId: request.channelId,
        snoopId: request.snoopId,
        spy: request.spy,
        app: this.app,
        appArgs: request.appArgs,
      }),
    );
    return plain<AriChannel>(channel);
  }

  async externalMedia(request: ExternalMediaRequest): Promise<AriChannel> {
    const channel = await this.#call('channels.externalMedia', () =>
      this.#client.channels.externalMedia({
        app: this.app,
        channelId: request.channelId,
        external_host: request.externalHost,
        format: request.format,
        encapsulation: request.encapsulation,
        transport: request.transport,
        ...(request.data !== undefined && { data: request.data }),
        ...(request.direction !== undefined && { direction: request.direction }),
        ...(request.connectionType !== undefined && { connection_type: request.connectionType }),
      }),
    );
    return plain<AriChannel>(channel);
  }

  async getConfigObject(type: string, name: string): Promise<Record<string, string> | undefined> {
    try {
      const fields = (await withTimeout(
        'asterisk.getObject',
        this.#client.asterisk.getObject({ configClass: 'res_pjsip', objectType: type, id: name }),
      )) as { attribute: string; value: string }[];
      return Object.fromEntries(fields.map(({ attribute, value }) => [attribute, value]));
    } catch (error) {
      if (/not found|could not be found/i.test(String((error as Error)?.message))) return undefined;
      throw requestFailed('asterisk.getObject', error);
    }
  }

  async putConfigObject(type: string, name: string, fields: Record<string, string>): Promise<void> {
    await this.#call('asterisk.updateObject', () =>
      this.#client.asterisk.updateObject({
        configClass: 'res_pjsip',
        objectType: type,
        id: name,
        fields: Object.entries(fields).map(([attribute, value]) => ({ attribute, value })),
      }),
    );
  }

  async deleteConfigObject(type: string, name: string): Promise<void> {
    await this.#ignoringGone('asterisk.deleteObject', () =>
      this.#client.asterisk.deleteObject({ configClass: 'res_pjsip', objectType: type, id: name }),
    );
  }

  async setVariable(channelId: string, name: string, value: string): Promise<void> {
    await this.#call('channels.setChannelVar', () => this.#client.channels.setChannelVar({ channelId, variable: name, value }));
  }

  async getVariable(channelId: string, name: string): Promise<string | undefined> {
    try {
      const result = await withTimeout('channels.getChannelVar', this.#client.channels.getChannelVar({ channelId, variable: name }));
      return (result as { value?: string }).value;
    } catch (error) {
      if (isGone(error) || /Provided variable was not found/i.test(String((error as Error)?.message))) return undefined;
      throw requestFailed('channels.getChannelVar', error);
    }
  }

  async continueInDialplan(channelId: string): Promise<void> {
    await this.#call('channels.continueInDialplan', () => this.#client.channels.continueInDialplan({ channelId }));
  }

  async listAppChannelIds(): Promise<string[]> {
    try {
      const application = await withTimeout('applications.get', this.#client.applications.get({ applicationName: this.app }));
      return [...((application as { channel_ids?: string[] }).channel_ids ?? [])];
    } catch (error) {
      // No connection registers the app right now (or never did): it has no channels.
      if (/not found/i.test(String((error as Error)?.message))) return [];
      throw requestFailed('applications.get', error);
    }
  }

  async createBridge(bridgeId: string, name: string): Promise<void> {
    try {
      await withTimeout('bridges.createWithId', this.#client.bridges.createWithId({ bridgeId, type: 'mixing', name }));
    } catch (error) {
      if (error instanceof AppError) throw error;
      // Our ids are ours alone: the bridge exists because an earlier request made it (one
      // that timed out and was asked again).
      if (!isExistingBridge(error)) throw requestFailed('bridges.createWithId', error);
    }
  }

  async addToBridge(bridgeId: string, channelId: string): Promise<void> {
    await this.#call('bridges.addChannel', () => this.#client.bridges.addChannel({ bridgeId, channel: channelId }));
  }

  async removeFromBridge(bridgeId: string, channelId: string): Promise<void> {
    await this.#ignoringGone('bridges.removeChannel', () => this.#client.bridges.removeChannel({ bridgeId, channel: channelId }));
  }

  async transferProgress(channelId: string, state: TransferProgress): Promise<void> {
    // The swagger's nickname is the method's name.
    await this.#call('channels.transfer_progress', () => this.#client.channels.transfer_progress({ channelId, states: state }));
  }

  async play(channelId: string, playbackId: string, media: string): Promise<void> {
    await this.#call('channels.playWithId', () => this.#client.channels.playWithId({ channelId, playbackId, media }));
  }

  async stopPlayback(playbackId: string): Promise<void> {
    await this.#ignoringGone('playbacks.stop', () => this.#client.playbacks.stop({ playbackId }));
  }

  async destroyBridge(bridgeId: string): Promise<void> {
    await this.#ignoringGone('bridges.destroy', () => this.#client.bridges.destroy({ bridgeId }));
  }

  async listChannels(): Promise<AriChannel[]> {
    const channels = await this.#call<unknown[]>('channels.list', () => this.#client.channels.list());
    return channels.map((channel) => plain<AriChannel>(channel));
  }

  async listBridges(): Promise<AriBridge[]> {
    const bridges = await this.#call<unknown[]>('bridges.list', () => this.#client.bridges.list());
    return bridges.map((bridge) => plain<AriBridge>(bridge));
  }

  async listModules(): Promise<AriModule[]> {
    const modules = await this.#call<unknown[]>('asterisk.listModules', () => this.#client.asterisk.listModules());
    return modules.map((module) => plain<AriModule>(module));
  }

  /** Options this adapter was opened with, minus the password (for `check`-style reports). */
  describe(): { url: string; username: string; app: string } {
    return { url: this.#options.url.href, username: this.#options.username, app: this.app };
  }
}
