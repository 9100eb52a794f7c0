/**
 * The STREAM_* connection options against real websocket servers on port 0:
 * headers (User-Agent always, Authorization from STREAM_EXTRA_HEADERS over
 * STREAM_TOKEN), subprotocol, deflate, heartbeat, server text, and TLS with a
 * CA file, a client certificate and the hostname check (certificates made
 * with openssl for the test).
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { handshakeHeaders, openWebsocket, USER_AGENT, type StreamConnection } from '../../app/transcription/stream-connection.js';
import { WebsocketStream } from '../../app/transcription/websocket-stream.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

interface Accepted {
  socket: WebSocket;
  headers: IncomingHttpHeaders;
}

async function wsServer(options: ServerOptions = {}): Promise<{ url: URL; next: () => Promise<Accepted> }> {
  const server = new WebSocketServer(options.server ? options : { host: '127.0.0.1', port: 0, ...options });
  if (!options.server) await once(server, 'listening');
  cleanups.push(() => {
    for (const c of server.clients) c.terminate();
    server.close();
  });
  const queue: Accepted[] = [];
  const waiters: ((a: Accepted) => void)[] = [];
  server.on('connection', (socket, request) => {
    const accepted = { socket, headers: request.headers };
    const waiter = waiters.shift();
    if (waiter) waiter(accepted);
    else queue.push(accepted);
  });
  const address = (options.server?.address() ?? server.address()) as AddressInfo;
  return {
    url: new URL(`${options.server ? 'wss' : 'ws'}://127.0.0.1:${address.port}`),
    next: () =>
      new Promise((resolve) => {
        const a = queue.shift();
        if (a) resolve(a);
        else waiters.push(resolve);
      }),
  };
}

function connectAndWait(url: URL, connection: StreamConnection): Promise<WebSocket> {
  const socket = openWebsocket(url, connection, 2000);
  cleanups.push(() => socket.terminate());
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('handshake headers', () => {
  it('always sends our User-Agent; the token as Bearer; an Authorization in the extra headers wins, whatever its case', () => {
    expect(handshakeHeaders({})).toEqual({ 'User-Agent': USER_AGENT });
    expect(handshakeHeaders({ token: 't' })).toEqual({ 'User-Agent': USER_AGENT, Authorization: 'Bearer t' });
    expect(handshakeHeaders({ token: 't', extraHeaders: { authorization: 'Basic x', 'X-Tenant': 'a' } })).toEqual({
      'User-Agent': USER_AGENT,
      authorization: 'Basic x',
      'X-Tenant': 'a',
    });
  });

  it('puts them on the wire, with the subprotocol asked for and no deflate unless STREAM_MESSAGE_DEFLATE', async () => {
    const server = await wsServer({ handleProtocols: (protocols) => (protocols.has('audio.v2') ? 'audio.v2' : false) });
    const socket = await connectAndWait(server.url, {
      token: 'tok',
      extraHeaders: { 'X-Tenant': 'acme' },
      subprotocols: ['audio.v2', 'audio.v1'],
    });
    const { headers } = await server.next();
    expect(headers).toMatchObject({
      'user-agent': USER_AGENT,
      authorization: 'Bearer tok',
      'x-tenant': 'acme',
      'sec-websocket-protocol': 'audio.v2,audio.v1',
    });
    expect(headers).not.toHaveProperty('sec-websocket-extensions');
    expect(socket.protocol).toBe('audio.v2');

    await connectAndWait(server.url, { deflate: true });
    expect((await server.next()).headers['sec-websocket-extensions']).toMatch(/permessage-deflate/);
  });
});

describe('heartbeat and server text', () => {
  it('pings every STREAM_HEART_BEAT seconds and reconnects when a ping goes unanswered', async () => {
    const server = await wsServer({ autoPong: false });
    const stream = new WebsocketStream({
      url: server.url,
      connection: { heartbeatSeconds: 0.05 },
      protocol: { opening: () => ['hello'], encode: (b: Buffer) => b, closing: () => undefined },
      logger: pino({ level: 'silent' }),
    });
    cleanups.push(() => void stream.finish('test end'));
    stream.open();
    const first = await server.next();
    await once(first.socket, 'ping');
    // No pong from this server: the next tick ends the connection and the stream comes back.
    const second = await server.next();
    expect(second.socket).not.toBe(first.socket);
    await expect.poll(() => stream.stats.connections).toBe(2);
  });

  it('counts text from the server, logs it at debug under serverText, and reports the counts when the stream closes', async () => {
    const server = await wsServer();
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        },
      },
    );
    const stream = new WebsocketStream({
      url: server.url,
      connection: {},
      protocol: { opening: () => ['hi'], encode: (b: Buffer) => b, closing: () => undefined },
      logger,
    });
    cleanups.push(() => void stream.finish('test end'));
    stream.open();
    const { socket } = await server.next();
    socket.send('{"transcript":"hello"}');
    socket.send(Buffer.from([1, 2]), { binary: true });
    await expect.poll(() => stream.stats.serverMessages).toBe(2);
    expect(stream.stats.serverTexts).toBe(1);
    expect(lines.find((l) => l.serverText !== undefined)).toMatchObject({ level: 20, serverText: '{"transcript":"hello"}' });
    await stream.finish('call ended');
    expect(lines.find((l) => l.msg === 'stream closed')).toMatchObject({
      level: 30,
      reason: 'call ended',
      serverTexts: 1,
      serverMessages: 2,
      connections: 1,
    });
  });
});

describe('TLS (wss://)', () => {
  /** A CA, a server certificate for `name` signed by it, and a client certificate. */
  function certificates(name: string): Record<'ca' | 'caKey' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string> {
    const dir = mkdtempSync(join(tmpdir(), 'atp-tls-'));
    const at = (file: string) => join(dir, file);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=test CA',
      '-keyout',
      at('ca.key'),
      '-out',
      at('ca.pem'),
    );
    for (const [who, cn] of [
      ['server', name],
      ['client', 'client'],
    ] as const) {
      openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', at(`${who}.key`), '-out', at(`${who}.csr`));
      execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:${cn}' > ${at(`${who}.ext`)}`]);
      openssl(
        'x509',
        '-req',
        '-in',
        at(`${who}.csr`),
        '-CA',
        at('ca.pem'),
        '-CAkey',
        at('ca.key'),
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        at(`${who}.ext`),
        '-out',
        at(`${who}.pem`),
      );
    }
    return {
      ca: at('ca.pem'),
      caKey: at('ca.key'),
      serverCert: at('server.pem'),
      serverKey: at('server.key'),
      clientCert: at('client.pem'),
      clientKey: at('client.key'),
    };
  }

  async function wssServer(files: ReturnType<typeof certificates>, requireClientCert: boolean) {
    const https = createHttpsServer({
      cert: readFileSync(files.serverCert),
      key: readFileSync(files.serverKey),
      ca: readFileSync(files.ca),
      requestCert: requireClientCert,
      rejectUnauthorized: requireClientCert,
    });
    await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => https.close());
    return wsServer({ server: https });
  }

  it('trusts the server through STREAM_TLS_CA_FILE, and presents the client certificate', async () => {
    const files = certificates('127.0.0.1.nip.test');
    const server = await wssServer(files, true);
    const connection = {
      ca: readFileSync(files.ca),
      cert: readFileSync(files.clientCert),
      key: readFileSync(files.clientKey),
      skipHostnameCheck: true,
    };
    await connectAndWait(server.url, connection);
    expect((await server.next()).headers['user-agent']).toBe(USER_AGENT);
    // Without the client certificate, this server refuses the connection.
    await expect(connectAndWait(server.url, { ...connection, cert: undefined, key: undefined })).rejects.toThrow();
  }, 30_000);

  it('checks the host name unless STREAM_TLS_DISABLE_HOSTNAME_VALIDATION, and never skips the chain', async () => {
    const files = certificates('other-host.example');
    const server = await wssServer(files, false);
    await expect(connectAndWait(server.url, { ca: readFileSync(files.ca) })).rejects.toThrow(/altnames|hostname|IP/i);
    await connectAndWait(server.url, { ca: readFileSync(files.ca), skipHostnameCheck: true });
    // An unknown CA fails even with the host name check off.
    await expect(connectAndWait(server.url, { skipHostnameCheck: true })).rejects.toThrow(/self[- ]signed|unable to verify|local issuer/i);
  }, 30_000);
});
