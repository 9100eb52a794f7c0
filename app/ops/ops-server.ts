/**
 * The operations HTTP endpoint (OPS_LISTEN): `GET /health` (the process is
 * alive) and `GET /ready` (it can take calls: ARI connected, the app
 * registered, not draining or replaced; 503 with the reason otherwise), for
 * Docker's HEALTHCHECK, systemd and SIP load balancers. With OPS_TOKEN (which
 * `serve` requires beyond loopback) every other request needs
 * `Authorization: Bearer OPS_TOKEN`, compared in constant time; the two probes
 * stay open, since they tell nothing about any call and probes rarely carry tokens.
 * Routes are added by their owners (metrics, call control) through `route()`.
 *
 * A port already taken (another instance on the same host: a rolling upgrade,
 * or one started by mistake) does not stop the service: it keeps trying to
 * bind every BIND_RETRY_MS and logs once; the calls never depend on it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface Readiness {
  ready: boolean;
  /** Why not, in a word: starting, ari-down, draining, replaced, stopped. */
  reason?: string;
}

export type OpsHandler = (request: IncomingMessage, response: ServerResponse, url: URL) => void | Promise<void>;

export interface OpsServerOptions {
  host: string;
  port: number;
  token?: string | undefined;
  readiness: () => Readiness;
  logger: Logger;
}

/** A JSON answer. */
export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  response.end(text);
}

/** The token a request presents equals `expected`, compared in constant time (digests of equal length). */
export function tokenMatches(header: string | undefined, expected: string): boolean {
  const presented = /^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '';
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented), digest(expected)) && presented.length > 0;
}

const BIND_RETRY_MS = 2000;

export class OpsServer {
  readonly #server: Server;
  readonly #routes = new Map<string, OpsHandler>();
  readonly #options: OpsServerOptions;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(server: Server, options: OpsServerOptions) {
    this.#server = server;
    this.#options = options;
    this.route('GET', '/health', (_request, response) => sendJson(response, 200, { status: 'ok' }));
    this.route('GET', '/ready', (_request, response) => {
      const readiness = options.readiness();
      sendJson(
        response,
        readiness.ready ? 200 : 503,
        readiness.ready ? { status: 'ready' } : { status: 'not ready', reason: readiness.reason },
      );
    });
    server.on('request', (request, response) => this.#handle(request, response));
  }

  /**
   * Listens on OPS_LISTEN. Resolves once listening, or at once when the port is taken
   * (binding is then retried in the background); rejects on any other error (a bad address).
   */
  static async listen(options: OpsServerOptions): Promise<OpsServer> {
    const server = createServer({ requestTimeout: 10_000, headersTimeout: 5000 });
    server.maxHeadersCount = 50;
    const ops = new OpsServer(server, options);
    await ops.#bind();
    return ops;
  }

  #bind(): Promise<void> {
    const { host, port, logger } = this.#options;
    return new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EADDRINUSE') return reject(error);
        if (this.#retry === undefined)
          logger.warn({ host, port }, "the operations endpoint's port is taken (another instance?); retrying until it is free");
        this.#retry = setTimeout(() => {
          if (!this.#closed)
            void this.#bind().catch((next: unknown) => logger.error({ err: next }, 'the operations endpoint cannot listen'));
        }, BIND_RETRY_MS);
        this.#retry.unref();
        resolve();
      };
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        if (this.#retry !== undefined) logger.info({ host, port }, 'operations endpoint listening');
        resolve();
      });
    });
  }

  /** The port listened on; undefined while the port is taken. */
  get port(): number | undefined {
    return (this.#server.address() as AddressInfo | null)?.port;
  }

  /** Adds a route: exact path, or a prefix ending in `/*`. */
  route(method: string, path: string, handler: OpsHandler): void {
    this.#routes.set(`${method} ${path}`, handler);
  }

  #find(method: string, path: string): OpsHandler | undefined {
    const exact = this.#routes.get(`${method} ${path}`);
    if (exact !== undefined) return exact;
    for (const [key, handler] of this.#routes) {
      const [routeMethod, routePath] = key.split(' ') as [string, string];
      if (routeMethod === method && routePath.endsWith('/*') && path.startsWith(routePath.slice(0, -1))) return handler;
    }
    return undefined;
  }

  #handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', 'http://ops.invalid');
    const probe = request.method === 'GET' && (url.pathname === '/health' || url.pathname === '/ready');
    if (!probe && this.#options.token !== undefined && !tokenMatches(request.headers.authorization, this.#options.token)) {
      response.setHeader('WWW-Authenticate', 'Bearer');
      sendJson(response, 401, { error: 'unauthorized' });
      return;
    }
    const handler = this.#find(request.method ?? 'GET', url.pathname);
    if (handler === undefined) {
      sendJson(response, 404, { error: 'not found' });
      return;
    }
    Promise.resolve()
      .then(() => handler(request, response, url))
      .catch((error: unknown) => {
        this.#options.logger.error({ err: error, path: url.pathname }, 'ops request failed');
        if (!response.headersSent) sendJson(response, 500, { error: 'internal error' });
        else response.destroy();
      });
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    if (!this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
