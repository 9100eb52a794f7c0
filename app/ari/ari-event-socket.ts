/**
 * ARI's event websocket (`/ari/events?app=NAME`), supervised for as long as
 * the service runs: connecting registers the app, and Asterisk then sends the
 * app's events here. One reconnect loop, whatever fails (refused, reset, a
 * handshake that never completes, a 401 while ari.conf is being edited),
 * with exponential backoff and jitter, capped so an ARI that comes back is
 * found again within a few seconds; and a ping every PING_INTERVAL_MS, so a
 * half-open connection (a NAT or firewall that silently dropped it) is noticed
 * within two intervals instead of never.
 *
 * When another connection registers the same app, Asterisk sends this one
 * `ApplicationReplaced` and no more events (stasis/app.c, app_update); the
 * socket stays open. That ends this connection for good: reconnecting would
 * take the app back from the newer instance, and the two would take turns.
 *
 * Credentials travel in the Authorization header, not in the URL's api_key,
 * so no URL that might be logged carries them.
 */
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { AppError } from '../errors.js';
import type { AriConnectionChange, AriEvent } from './ari-port.js';

export const PING_INTERVAL_MS = 5000;
const HANDSHAKE_TIMEOUT_MS = 5000;
/** A connection that lasted this long was healthy: its loss starts the backoff from the beginning. */
const STABLE_CONNECTION_MS = 10_000;

export interface AriEventSocketOptions {
  /** ARI_URL: Asterisk's HTTP server. */
  url: URL;
  username: string;
  password: string;
  app: string;
  logger: Logger;
  pingIntervalMs?: number;
  /** Backoff between attempts: initialMs × 2^n, at most maxMs, each scaled by a random 0.5–1. */
  initialDelayMs?: number;
  maxDelayMs?: number;
}

/** The event types the service acts on; anything else Asterisk sends is ignored. */
const KNOWN_EVENTS = new Set<AriEvent['type']>([
  'StasisStart',
  'StasisEnd',
  'ChannelStateChange',
  'ChannelHangupRequest',
  'ChannelDestroyed',
  'Dial',
  'ChannelVarset',
  'ChannelDtmfReceived',
  'ChannelHold',
  'ChannelUnhold',
  'ChannelTransfer',
]);

/** The delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter. */
export function reconnectDelayMs(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (0.5 + random() / 2));
}

/** One message of the event websocket as our AriEvent, or a connection-level notice; undefined: not ours. */
export function parseAriMessage(text: string): { event: AriEvent } | { replaced: true } | undefined {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof message !== 'object' || message === null) return undefined;
  const type = (message as { type?: unknown }).type;
  if (type === 'ApplicationReplaced') return { replaced: true };
  if (typeof type !== 'string' || !KNOWN_EVENTS.has(type as AriEvent['type'])) return undefined;
  // Asterisk's own JSON, in the shapes ari-port.ts declares; a channel event without a channel is not one.
  const event = message as AriEvent;
  const channelId =
    event.type === 'Dial' ? event.peer?.id : event.type === 'ChannelTransfer' ? event.referred_by?.source_channel?.id : event.channel?.id;
  if (typeof channelId !== 'string') return undefined;
  return { event };
}

export class AriEventSocket {
  readonly #options: Required<AriEventSocketOptions>;
  readonly #logger: Logger;
  readonly #eventListeners = new Set<(event: AriEvent) => void>();
  readonly #connectionListeners = new Set<(change: AriConnectionChange) => void>();
  #socket: WebSocket | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #everUp = false;
  #up = false;
  #closed = false;
  #replaced = false;
  #firstUp: { resolve: () => void; reject: (error: Error) => void } | undefined;
  /** Sockets opened so far (for tests and the closing summary). */
  connections = 0;

  constructor(options: AriEventSocketOptions) {
    this.#options = { pingIntervalMs: PING_INTERVAL_MS, initialDelayMs: 250, maxDelayMs: 5000, ...options };
    this.#logger = options.logger;
  }

  get isUp(): boolean {
    return this.#up;
  }

  get isReplaced(): boolean {
    return this.#replaced;
  }

  onEvent(listener: (event: AriEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  onConnection(listener: (change: AriConnectionChange) => void): () => void {
    this.#connectionListeners.add(listener);
    return () => this.#connectionListeners.delete(listener);
  }

  /** Starts the supervised connection; resolves once it is first up (it keeps retrying until then). */
  open(): Promise<void> {
    if (this.#everUp) return Promise.resolve();
    const firstUp = new Promise<void>((resolve, reject) => {
      this.#firstUp = { resolve, reject };
    });
    if (this.#socket === undefined && this.#retryTimer === undefined) this.#connect();
    return firstUp;
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (this.#closed || this.#replaced) return;
    const url = new URL('/ari/events', this.#options.url.origin);
    url.searchParams.set('app', this.#options.app);
    const authorization = `Basic ${Buffer.from(`${this.#options.username}:${this.#options.password}`).toString('base64')}`;
    const socket = new WebSocket(url, {
      headers: { Authorization: authorization },
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      perMessageDeflate: false,
    });
    this.#socket = socket;
    let openedAt: number | undefined;
    let failure: string | undefined;
    socket.on('unexpected-response', (_request, response) => {
      failure = `HTTP ${response.statusCode}${response.statusCode === 401 ? ' (ARI refused the credentials of ARI_USERNAME)' : ''}`;
      response.resume();
      socket.terminate();
    });
    socket.on('error', (error) => {
      failure ??= error.message;
    });
    socket.on('open', () => {
      openedAt = Date.now();
      this.connections++;
      this.#onUp(socket);
    });
    socket.on('message', (data: Buffer) => this.#onMessage(socket, data));
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      clearInterval(this.#pingTimer);
      const wasUp = this.#up;
      this.#up = false;
      if (this.#closed || this.#replaced) return;
      if (openedAt !== undefined && Date.now() - openedAt >= STABLE_CONNECTION_MS) this.#attempt = 0;
      if (wasUp) {
        this.#logger.warn({ err: failure }, 'ARI event connection lost; reconnecting');
        this.#emitConnection({ state: 'down' });
      } else if (this.#attempt === 0 || this.#attempt % 10 === 0) {
        this.#logger.warn({ attempt: this.#attempt + 1, err: failure }, 'ARI event connection failed; retrying');
      }
      const delayMs = reconnectDelayMs(this.#attempt, this.#options.initialDelayMs, this.#options.maxDelayMs);
      this.#attempt++;
      this.#retryTimer = setTimeout(() => this.#connect(), delayMs);
    });
  }

  #onUp(socket: WebSocket): void {
    const reconnected = this.#everUp;
    this.#everUp = true;
    this.#up = true;
    // A ping every interval; one still unanswered when the next is due ends the connection.
    let answered = true;
    socket.on('pong', () => {
      answered = true;
    });
    this.#pingTimer = setInterval(() => {
      if (!answered) {
        this.#logger.warn({ pingIntervalMs: this.#options.pingIntervalMs }, 'ARI did not answer the ping; dropping the event connection');
        socket.terminate();
        return;
      }
      answered = false;
      socket.ping();
    }, this.#options.pingIntervalMs);
    this.#pingTimer.unref();
    if (reconnected) this.#logger.info('ARI event connection back');
    this.#emitConnection({ state: 'up', reconnected });
    this.#firstUp?.resolve();
    this.#firstUp = undefined;
  }

  #onMessage(socket: WebSocket, data: Buffer): void {
    if (this.#socket !== socket || this.#replaced) return;
    const parsed = parseAriMessage(data.toString('utf8'));
    if (parsed === undefined) return;
    if ('replaced' in parsed) {
      this.#replaced = true;
      this.#up = false;
      clearInterval(this.#pingTimer);
      this.#logger.warn(
        { app: this.#options.app },
        'another connection registered this Stasis app: this instance was replaced and hands its calls over',
      );
      socket.close(1000);
      this.#emitConnection({ state: 'replaced' });
      return;
    }
    for (const listener of this.#eventListeners) listener(parsed.event);
  }

  #emitConnection(change: AriConnectionChange): void {
    for (const listener of this.#connectionListeners) listener(change);
  }

  /** Ends the connection for good (no reconnect); pending open() calls are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    this.#firstUp?.reject(new AppError('ARI_UNREACHABLE', 'the ARI event connection was closed before it came up'));
    this.#firstUp = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#up = false;
    if (socket === undefined) return;
    if (socket.readyState === WebSocket.OPEN) socket.close(1000);
    else socket.terminate();
  }
}
