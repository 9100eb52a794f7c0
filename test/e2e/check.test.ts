/**
 * `transcription-proxy check` against the real Asterisk test bed, as a user
 * runs it: a healthy deployment passes, and an unreachable STREAM_URL, a wrong
 * ARI password and a module unloaded from Asterisk each fail with a line that
 * says what is wrong. The stream server must see a connection open and close,
 * and no message; a Stasis app already registered under ARI_APP (a running
 * service) must not be taken over by the check.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { closedTcpPort } from '../support/ports.js';
import WebSocket, { WebSocketServer } from 'ws';
import { USER_AGENT } from '../../app/transcription/websocket-stream.js';
import { runCli, type CliProcess } from '../support/cli-process.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, TESTBED_SCRIPT, asteriskLogTail } from '../support/testbed.js';

const STREAM_TOKEN = 'check-stream-token-must-not-be-printed';
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface RecordingServer {
  url: string;
  connections: { headers: IncomingHttpHeaders; messages: number; closed: Promise<number> }[];
}

/** A websocket server on port 0 that records each connection, its headers, and every message it gets. */
async function startRecordingServer(): Promise<RecordingServer> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const recorded: RecordingServer = { url: `ws://127.0.0.1:${(server.address() as { port: number }).port}`, connections: [] };
  server.on('connection', (socket, request) => {
    const connection = { headers: request.headers, messages: 0, closed: new Promise<number>((resolve) => socket.on('close', resolve)) };
    socket.on('message', () => {
      connection.messages++;
    });
    recorded.connections.push(connection);
  });
  cleanups.push(async () => {
    for (const client of server.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
  });
  return recorded;
}

async function ariGet(path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${ARI_URL}/ari${path}`, {
    headers: { Authorization: `Basic ${Buffer.from(`${ARI_USERNAME}:${ARI_PASSWORD}`).toString('base64')}` },
  });
  return { status: response.status, body: await response.json() };
}

async function moduleStatus(name: string): Promise<string | undefined> {
  const { body } = await ariGet('/asterisk/modules');
  return (body as { name: string; status: string }[]).find((m) => m.name === name)?.status;
}

function asteriskCli(command: string): string {
  return execFileSync('bash', [TESTBED_SCRIPT, 'cli', command], { encoding: 'utf8' });
}

/** Runs `check` with the test bed's ARI, the given overrides, from an empty directory; returns stdout as text. */
async function runCheck(env: Record<string, string>): Promise<{ exitCode: number | null; text: string; cli: CliProcess }> {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-check-'));
  const cli = runCli(['check', '--set', 'DESTINATION_DOMAIN=127.0.0.1:5070'], { ARI_URL, ARI_USERNAME, ARI_PASSWORD, ...env }, cwd);
  onTestFailed(() => {
    console.log(`--- check stdout\n${cli.stdoutLines.join('\n')}\n--- check stderr\n${cli.stderr()}\n--- Asterisk\n${asteriskLogTail(40)}`);
  });
  const exitCode = await cli.exited;
  return { exitCode, text: cli.stdoutLines.join('\n'), cli };
}

it('a healthy deployment: OK for ARI, modules and stream, exit 0; the stream server sees one silent connection', async () => {
  // Stand in for a running service: hold ARI_APP's event websocket, as `serve` would.
  const events: string[] = [];
  const service = new WebSocket(
    `${ARI_URL.replace(/^http/, 'ws')}/ari/events?app=transcription-proxy&api_key=${ARI_USERNAME}:${ARI_PASSWORD}`,
  );
  service.on('message', (data) => events.push((JSON.parse(String(data)) as { type: string }).type));
  await new Promise((resolve, reject) => {
    service.once('open', resolve);
    service.once('error', reject);
  });
  cleanups.push(async () => {
    service.close();
  });
  expect((await ariGet('/applications/transcription-proxy')).status).toBe(200);

  const stream = await startRecordingServer();
  const { exitCode, text, cli } = await runCheck({ STREAM_URL: stream.url, STREAM_TOKEN });

  expect(exitCode).toBe(0);
  expect(text).toMatch(/^OK +configuration +valid/m);
  expect(text).toMatch(/^OK +ARI +connected to http:\/\/127\.0\.0\.1:8088\/ as transcription-proxy$/m);
  expect(text).toMatch(/^OK +modules +all 16 modules the rtp media transport needs are running$/m);
  expect(text).toMatch(new RegExp(`^OK +stream +${stream.url}/ accepted a websocket connection`, 'm'));
  expect(text).not.toMatch(/^(FAIL|SKIP)/m);
  expect(text).toContain('All 4 checks passed.');
  expect(text).not.toContain(ARI_PASSWORD);
  expect(text).not.toContain(STREAM_TOKEN);
  expect(text).not.toMatch(/swagger/i);
  expect(cli.stderr()).toBe('');

  expect(stream.connections).toHaveLength(1);
  const [connection] = stream.connections;
  expect(await connection!.closed).toBe(1000);
  expect(connection!.messages).toBe(0);
  expect(connection!.headers['user-agent']).toBe(USER_AGENT);
  expect(connection!.headers.authorization).toBe(`Bearer ${STREAM_TOKEN}`);

  // The check used an app of its own: the "service" still owns transcription-proxy.
  expect((await ariGet('/applications/transcription-proxy')).status).toBe(200);
  expect(events).not.toContain('ApplicationReplaced');
  expect(service.readyState).toBe(WebSocket.OPEN);
});

it('STREAM_URL on a closed port: the stream check FAILs, exit 1', async () => {
  const port = await closedTcpPort();
  const { exitCode, text } = await runCheck({ STREAM_URL: `ws://127.0.0.1:${port}` });
  expect(exitCode).toBe(1);
  expect(text).toMatch(new RegExp(`^FAIL +stream +cannot open a websocket to ws://127.0.0.1:${port}/: .*ECONNREFUSED`, 'm'));
  expect(text).toMatch(/^OK +ARI /m);
  expect(text).toMatch(/^OK +modules /m);
});

it('a wrong ARI password: the ARI check FAILs without printing the password, exit 1', async () => {
  const stream = await startRecordingServer();
  const wrong = 'wrong-ari-password-not-to-print';
  const { exitCode, text, cli } = await runCheck({ ARI_PASSWORD: wrong, STREAM_URL: stream.url });
  expect(exitCode).toBe(1);
  expect(text).toMatch(/^FAIL +ARI +ARI at http:\/\/127\.0\.0\.1:8088 refused the credentials of ARI_USERNAME \(transcription-proxy\)$/m);
  expect(text).toContain('check ARI_USERNAME and ARI_PASSWORD');
  expect(text).toMatch(/^SKIP +modules /m);
  expect(text).toMatch(/^OK +stream /m);
  expect(text + cli.stderr()).not.toContain(wrong);
});

it('a module the rtp transport needs is not loaded: the report names it and its modules.conf line, exit 1', async () => {
  const stream = await startRecordingServer();
  expect(await moduleStatus('chan_rtp.so')).toBe('Running');
  try {
    asteriskCli('module unload chan_rtp.so');
    expect(await moduleStatus('chan_rtp.so')).toBeUndefined();
    const { exitCode, text } = await runCheck({ STREAM_URL: stream.url });
    expect(exitCode).toBe(1);
    expect(text).toMatch(/^FAIL +modules +1 of 16 modules the rtp media transport needs is not running: chan_rtp$/m);
    expect(text).toMatch(
      /^ +chan_rtp: not loaded; add to modules\.conf: load => chan_rtp\.so {2}\(ExternalMedia channels over RTP, the rtp tap\)$/m,
    );
    expect(text).toMatch(/^OK +ARI /m);
  } finally {
    asteriskCli('module load chan_rtp.so');
  }
  expect(await moduleStatus('chan_rtp.so')).toBe('Running');
});

it('an outbound gateway: run-time PJSIP objects are proven with a probe that is removed again', async () => {
  const stream = await startRecordingServer();
  const { exitCode, text, cli } = await runCheck({
    STREAM_URL: stream.url,
    OUT_SIP_GATEWAY_IP: '127.0.0.1:5999',
    OUTBOUND_CALL_EXT: '1000',
    OUTBOUND_CALLS_SECRET: 'gw-secret-not-printed',
    OUTBOUND_REGISTER: 'yes',
  });
  expect(exitCode).toBe(0);
  expect(text).toMatch(/^OK +gateway +run-time PJSIP objects work; outbound gateway 127\.0\.0\.1:5999$/m);
  expect(text).toContain('registration state');
  expect(text).not.toContain('gw-secret-not-printed');
  const probe = await ariGet(`/asterisk/config/dynamic/res_pjsip/auth/transcription-proxy-check-${cli.child.pid}`);
  expect(probe.status).toBe(404);
  expect(text).toContain('All 5 checks passed.');
});
