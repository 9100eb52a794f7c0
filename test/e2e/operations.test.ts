/**
 * Operating the service on the real Asterisk: /metrics during and after a
 * call, /ready while ARI is cut and during a drain, the token beyond loopback,
 * pausing a call (PCI) from the CLI and from the phone's feature code (the
 * caller's tone changes while paused, and that tone must never reach the
 * server), and the call's own data in the metadata.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { runCli, type CliProcess } from '../support/cli-process.js';
import { auditTexts } from '../support/log-audit.js';
import { freeUdpPort, startSipp, type SippPeer } from '../support/sipp.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectWellFormed, steadyAudio } from '../support/stream-checks.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startTcpRelay } from '../support/tcp-relay.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { tonePowerDb } from '../support/tones.js';
import { encodeUlaw } from '../../app/media/g711.js';

const CALLER_HZ = 440;
/** What the caller says while the call is paused: it must never reach the server. */
const SECRET_HZ = 880;
const CALLEE_HZ = 1330;

let streamServer: StrictStreamServer;
let proxy: ServiceUnderTest | undefined;
let serve: CliProcess | undefined;
const peers: SippPeer[] = [];
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
});

afterAll(async () => {
  await streamServer?.close();
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.kill();
  await proxy?.stop();
  proxy = undefined;
  if (serve !== undefined && serve.child.exitCode === null) {
    serve.child.kill('SIGTERM');
    setTimeout(() => serve?.child.kill('SIGTERM'), 200).unref();
  }
  await serve?.exited;
  serve = undefined;
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
});

async function peer(options: Parameters<typeof startSipp>[0]): Promise<SippPeer> {
  const started = await startSipp(options);
  peers.push(started);
  return started;
}

async function inProcess(settings: Record<string, string> = {}) {
  const calleePort = await freeUdpPort();
  proxy = await startServiceUnderTest({
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    STREAM_URL: streamServer.url,
    OPS_LISTEN: '127.0.0.1:0',
    ...settings,
  });
  const started = proxy;
  onTestFailed(() => console.log(`--- service log\n${started.logTail(120)}\n--- Asterisk log\n${asteriskLogTail(40)}`));
  const ops = `http://127.0.0.1:${started.service.opsPort}`;
  return { calleePort, ops };
}

const text = async (url: string, headers: Record<string, string> = {}) => {
  const response = await fetch(url, { headers });
  return { status: response.status, body: await response.text() };
};

/** The value of a sample of the Prometheus text, e.g. metric('x_total{provider="websocket"}'). */
function metric(scrape: string, sample: string): number {
  const line = scrape.split('\n').find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`no sample ${sample} in the scrape`);
  return Number(line.slice(sample.length + 1));
}

/** µ-law 8 kHz: `seconds` of each tone in turn. */
function toneSequence(parts: [hz: number, seconds: number][]): Buffer {
  const chunks = parts.map(([hz, seconds]) => {
    const pcm = Buffer.alloc(8000 * seconds * 2);
    for (let i = 0; i < 8000 * seconds; i++) pcm.writeInt16LE(Math.round(Math.sin((2 * Math.PI * hz * i) / 8000) * 12000), i * 2);
    return encodeUlaw(pcm);
  });
  return Buffer.concat(chunks);
}

/** The secret tone is nowhere in the stream, frame by frame; the caller's tone is there before and after. */
function expectPausedSpanAbsent(stream: ReceivedStream): void {
  const sampleRate = Number(stream.metadata?.sampleRate);
  let loudSecret = 0;
  for (const frame of stream.frames) {
    const secret = tonePowerDb(frame, sampleRate, SECRET_HZ);
    const own = tonePowerDb(frame, sampleRate, CALLER_HZ);
    if (secret > -40 && secret > own - 20) loudSecret++;
  }
  expect(loudSecret, 'frames carrying what the caller said while paused').toBe(0);
  const paused = stream.events.find((e) => e.event === 'paused');
  const resumed = stream.events.find((e) => e.event === 'resumed');
  expect(paused, 'a paused event').toBeDefined();
  expect(resumed, 'a resumed event').toBeDefined();
  const before = Buffer.concat(stream.frames.slice(0, Number(paused!.framesBefore)));
  const after = Buffer.concat(stream.frames.slice(Number(resumed!.framesBefore)));
  for (const audio of [before, after]) {
    expect(audio.length, 'audio around the pause').toBeGreaterThan(sampleRate * 2 * 0.5);
    expect(tonePowerDb(audio, sampleRate, CALLER_HZ) - tonePowerDb(audio, sampleRate, SECRET_HZ)).toBeGreaterThan(30);
  }
  // The paused span went on as silence: the stream kept its time.
  const silent = stream.frames.slice(Number(paused!.framesBefore), Number(resumed!.framesBefore));
  expect(silent.length).toBeGreaterThan(100);
  expect(silent.every((frame) => frame.every((byte) => byte === 0))).toBe(true);
}

describe('metrics and readiness', () => {
  it('/metrics during and after a call: calls active 1 then 0, frames as the server counted them, set-up time recorded', async () => {
    const { calleePort, ops } = await inProcess();
    const callee = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 5000, target: ASTERISK_SIP });
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length >= 50).length, { timeout: 10_000 }).toBe(2);
    const during = (await text(`${ops}/metrics`)).body;
    expect(metric(during, 'transcription_proxy_calls_active')).toBe(1);
    expect(metric(during, 'transcription_proxy_streams{provider="websocket",state="open"}')).toBe(2);
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    await expect.poll(() => proxy!.service.app.activeCalls).toBe(0);
    const after = (await text(`${ops}/metrics`)).body;
    expect(metric(after, 'transcription_proxy_calls_active')).toBe(0);
    expect(metric(after, 'transcription_proxy_calls_total{outcome="completed"}')).toBe(1);
    expect(metric(after, 'transcription_proxy_call_setup_seconds_count')).toBe(1);
    expect(metric(after, 'transcription_proxy_call_setup_seconds_sum')).toBeLessThan(5);
    const received = streams.reduce((sum, s) => sum + s.frames.length, 0);
    const sent = metric(after, 'transcription_proxy_frames_sent_total{provider="websocket"}');
    expect(Math.abs(sent - received) / received, `sent ${sent}, the server received ${received}`).toBeLessThanOrEqual(0.01);
    expect(metric(after, 'transcription_proxy_frame_latency_seconds_count')).toBe(sent);
    const tapped =
      metric(after, 'transcription_proxy_frames_received_total{leg="A"}') +
      metric(after, 'transcription_proxy_frames_received_total{leg="B"}');
    expect(Math.abs(tapped - received) / received).toBeLessThanOrEqual(0.01);
    expect(after).toMatch(/^transcription_proxy_nodejs_eventloop_lag_seconds /m);
    expect(after).toMatch(/^transcription_proxy_process_resident_memory_bytes /m);
    expect(after, 'no phone number in any label').not.toMatch(/="[^"]*(4567|1001)[^"]*"/);
  });

  it('/ready is 503 while ARI is cut and during a drain; /health stays 200', async () => {
    const asterisk = new URL(ARI_URL);
    const relay = await startTcpRelay({ host: asterisk.hostname, port: Number(asterisk.port) });
    cleanups.push(() => relay.close());
    const { calleePort, ops } = await inProcess({ ARI_URL: relay.url.href });
    expect((await text(`${ops}/ready`)).status).toBe(200);
    relay.refuse(true);
    relay.cut();
    await expect.poll(async () => (await text(`${ops}/ready`)).body, { timeout: 15_000 }).toContain('ari-down');
    expect((await text(`${ops}/ready`)).status).toBe(503);
    expect((await text(`${ops}/health`)).status).toBe(200);
    relay.refuse(false);
    await expect.poll(async () => (await text(`${ops}/ready`)).status, { timeout: 15_000 }).toBe(200);

    const callee = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await peer({ scenario: 'caller.xml', toneHz: CALLER_HZ, service: '4567', holdMs: 3000, target: ASTERISK_SIP });
    await expect.poll(() => proxy!.service.app.activeCalls, { timeout: 10_000 }).toBe(1);
    const drained = proxy!.service.drain(60_000);
    const ready = await text(`${ops}/ready`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'not ready', reason: 'draining' });
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode).toBe(0);
    expect(await drained).toBe(0);
  });

  it('beyond loopback the endpoint refuses requests without OPS_TOKEN; the probes stay open', async () => {
    const { ops } = await inProcess({ OPS_LISTEN: '0.0.0.0:0', OPS_TOKEN: 'ops-secret-token-42' });
    // Reached on loopback (test traffic stays here), but listening on every address.
    expect((await text(`${ops}/metrics`)).status).toBe(401);
    expect((await text(`${ops}/calls`, { Authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await text(`${ops}/metrics`, { Authorization: 'Bearer ops-secret-token-42' })).status).toBe(200);
    expect((await text(`${ops}/calls`, { Authorization: 'Bearer ops-secret-token-42' })).status).toBe(200);
    expect((await text(`${ops}/ready`)).status).toBe(200);
    expect(proxy!.logTail(400)).not.toContain('ops-secret-token-42');
  });
});

describe('pause (PCI)', () => {
  /** The caller: its tone, then the secret for 3 s (4 s into the call), then its tone again. */
  const callerAudio = toneSequence([
    [CALLER_HZ, 4],
    [SECRET_HZ, 3],
    [CALLER_HZ, 20],
  ]);

  it('from the CLI: nothing of the paused span arrives, the events do, the stream goes on', async () => {
    const calleePort = await freeUdpPort();
    serve = runCli(['serve'], {
      ARI_URL,
      ARI_USERNAME,
      ARI_PASSWORD,
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      OPS_LISTEN: '127.0.0.1:0',
    });
    const running = serve;
    onTestFailed(() => console.log(`--- serve log\n${running.stdoutLines.slice(-60).join('\n')}`));
    const ready = await serve.line((entry) => entry.msg === 'service ready');
    const opsUrl = `http://127.0.0.1:${String(ready.opsPort)}`;
    const control = async (...args: string[]) => {
      const cli = runCli([...args, '--ops', opsUrl]);
      return { code: await cli.exited, stdout: cli.stdoutLines.join('\n'), stderr: cli.stderr() };
    };
    const callee = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await peer({ scenario: 'caller.xml', toneUlaw: callerAudio, service: '4567', holdMs: 11_000, target: ASTERISK_SIP });
    const caller1 = () => streamServer.streams.find((s) => s.metadata?.label === 'CALLER1');
    await expect.poll(() => caller1()?.frames.length ?? 0, { timeout: 15_000 }).toBeGreaterThanOrEqual(20);
    const listed = await control('calls', '--json');
    expect(listed.code).toBe(0);
    const callId = (JSON.parse(listed.stdout) as { calls: { callId: string }[] }).calls[0]!.callId;
    // 2 s of the caller's tone, then pause: well before the secret begins at 4 s (a CLI run takes half a second).
    await expect.poll(() => caller1()?.frames.length ?? 0, { timeout: 15_000 }).toBeGreaterThanOrEqual(100);
    expect((await control('pause', callId)).code).toBe(0);
    expect(caller1()!.frames.length, 'paused before the secret began').toBeLessThan(190);
    // Resume at 8 s: a second after the secret ended.
    await expect.poll(() => caller1()?.frames.length ?? 0, { timeout: 15_000 }).toBeGreaterThanOrEqual(400);
    expect((await control('resume', callId)).code).toBe(0);
    // What an operator sends down the call is the call's content: never in the logs (log-audit.ts).
    auditTexts('agent: card taken');
    expect((await control('send-text', callId, 'agent: card taken')).code).toBe(0);
    expect((await control('pause', '0b0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55')).code, 'no such call').toBe(3);
    expect((await control('pause', 'not-a-call')).code, 'bad usage').toBe(2);
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) expectWellFormed(stream);
    expectPausedSpanAbsent(caller1()!);
    const callee2 = streams.find((s) => s.metadata?.label === 'CALLER2')!;
    expect(callee2.events.map((e) => e.event)).toEqual(['paused', 'resumed', 'text']);
    expect(callee2.events.at(-1)).toMatchObject({ event: 'text', text: 'agent: card taken', label: 'CALLER2' });
  }, 60_000);

  it('from the phone: the caller keys *81 (PAUSE_DTMF_CODE) to pause and again to resume', async () => {
    const { calleePort } = await inProcess();
    const callee = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    // The scenario keys *81 at 3 s (done by about 3.8 s) and again at 7.8 s; the secret plays from 4 to 7 s.
    const caller = await peer({
      scenario: 'caller-feature-code.xml',
      toneUlaw: callerAudio,
      service: '4567',
      holdMs: 3000,
      target: ASTERISK_SIP,
    });
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) expectWellFormed(stream);
    const caller1 = streams.find((s) => s.metadata?.label === 'CALLER1')!;
    expect(caller1.events.map((e) => [e.event, e.reason])).toEqual([
      ['paused', 'dtmf'],
      ['resumed', 'dtmf'],
    ]);
    expectPausedSpanAbsent(caller1);
    const log = proxy!.logTail(400);
    expect(log).toContain('transcription paused');
    // The state is kept in Asterisk too: a new instance would find it.
    expect(log).not.toContain('could not record the pause');
  }, 60_000);
});

describe('call data in the metadata', () => {
  it('an X- header of leg A and a dialplan value arrive as meta; an oversized value is left out and logged; the call goes on', async () => {
    const { calleePort } = await inProcess({ PASS_HEADERS: 'X-Customer-Id' });
    // The call's data (customer ids, campaigns) never reaches the logs unless LOG_PII (log-audit.ts).
    auditTexts('C-9876', 'spring-campaign');
    const callee = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller = await peer({
      scenario: 'caller-x-header.xml',
      toneHz: CALLER_HZ,
      service: '4567',
      holdMs: 2000,
      target: ASTERISK_SIP,
      variables: { customer_id: 'C-9876', meta: 'spring-campaign' },
    });
    for (const result of await Promise.all([caller.done, callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) expect(stream.metadata?.meta).toEqual({ 'X-Customer-Id': 'C-9876', campaign: 'spring-campaign' });

    streamServer.streams.length = 0;
    const callee2 = await peer({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
    const caller2 = await peer({
      scenario: 'caller-x-header.xml',
      toneHz: CALLER_HZ,
      service: '4567',
      holdMs: 2000,
      target: ASTERISK_SIP,
      variables: { customer_id: 'C-9876', meta: 'x'.repeat(300) },
    });
    for (const result of await Promise.all([caller2.done, callee2.done])) expect(result.exitCode, result.stderr).toBe(0);
    const more = await streamServer.waitForClosedStreams(2);
    for (const stream of more) {
      expectWellFormed(stream);
      expect(stream.metadata?.meta).toEqual({ 'X-Customer-Id': 'C-9876' });
      expect(steadyAudio(stream, 16000).length).toBeGreaterThan(0);
    }
    const leftOut = proxy!
      .logTail(400)
      .split('\n')
      .find((line) => line.includes('call data left out of the stream metadata'));
    expect(leftOut).toMatch(/"key":"campaign","why":"longer than 256 characters"/);
    expect(leftOut, 'the value is never logged').not.toContain('x'.repeat(300));
  }, 60_000);
});
