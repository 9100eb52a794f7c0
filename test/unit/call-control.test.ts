/**
 * Pausing, stopping and talking to a call in progress, its data in the
 * metadata, and the operations endpoint's control routes and metrics: the call
 * flow driven by the in-memory ARI (test/support/fake-ari.ts), the endpoint on
 * a real socket.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { PAUSE_VARIABLE } from '../../app/calls/call-session.js';
import { StasisApp } from '../../app/calls/stasis-app.js';
import { loadConfig } from '../../app/config/load-config.js';
import { addOperationsRoutes } from '../../app/ops/call-control.js';
import { createMetrics } from '../../app/ops/metrics.js';
import { OpsServer } from '../../app/ops/ops-server.js';
import { FakeAri, FakeStreams, FakeTransports, settle } from '../support/fake-ari.js';

const logger = pino({ level: 'silent' });
const config = loadConfig({
  env: { ARI_PASSWORD: 'x', DESTINATION_DOMAIN: '127.0.0.1:5070', STREAM_DTMF: 'yes', PASS_HEADERS: 'X-Customer-Id' },
  cwd: '/nonexistent',
}).config;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp() {
  const ari = new FakeAri();
  const streams = new FakeStreams();
  const transports = new FakeTransports();
  const ref: { app?: StasisApp } = {};
  const metrics = createMetrics(
    {
      activeCalls: () => ref.app?.activeCalls ?? 0,
      liveStreams: () => ref.app?.liveStreams() ?? [],
      callsAdopted: () => 0,
      ariReconnects: () => 0,
    },
    { defaultMetrics: false },
  );
  const app = new StasisApp({ ari, config, logger, transports, createStreams: streams.factory, metrics, reconcileIntervalMs: 3_600_000 });
  ref.app = app;
  await app.start();
  cleanups.push(() => app.stop());
  return { ari, app, streams, transports, metrics };
}

async function connected(ari: FakeAri, variables: Record<string, string> = {}) {
  const legA = ari.callerEnters({ args: ['number=4567'], variables });
  await settle();
  const legB = ari.ops('createChannel')[0]!.args.channelId as string;
  ari.calleeAnswers(legB);
  await settle(20);
  return { legA: legA.id, legB };
}

const tone = () => Buffer.alloc(640, 7);

describe('pause', () => {
  it("from the API: silence instead of the call's audio, no DTMF, the events, the state kept on both legs; resume undoes it", async () => {
    const { ari, app, streams, transports } = await setUp();
    const { legA, legB } = await connected(ari);
    const call = app.calls[0]!;
    const [a, b] = transports.opened;
    a!.deliver(tone());
    call.pause('api');
    a!.deliver(tone());
    b!.deliver(tone());
    ari.pressDigit(legA, '4');
    await settle();
    const s = streams.created[0]!;
    expect(s.events).toEqual([{ event: 'paused', reason: 'api' }]);
    expect([s.frames.A, s.frames.B, s.silentFrames.A, s.silentFrames.B]).toEqual([2, 1, 1, 1]);
    expect(s.digits, 'no digit leaves while paused').toEqual([]);
    expect(ari.channels.get(legA)!.variables.get(PAUSE_VARIABLE)).toBe('1');
    expect(ari.channels.get(legB)!.variables.get(PAUSE_VARIABLE)).toBe('1');
    call.resume('api');
    a!.deliver(tone());
    ari.pressDigit(legA, '5');
    await settle();
    expect(s.events.at(-1)).toEqual({ event: 'resumed', reason: 'api' });
    expect(s.silentFrames.A).toBe(1);
    expect(s.digits).toEqual(['5']);
    expect(ari.channels.get(legB)!.variables.get(PAUSE_VARIABLE)).toBe('0');
  });

  it('from the dialplan or a feature code: TRANSCRIPTION_PAUSE set on either leg pauses and resumes at once', async () => {
    const { ari, app, streams, transports } = await setUp();
    const { legB } = await connected(ari);
    ari.dialplanSets(legB, PAUSE_VARIABLE, '1');
    transports.opened[0]!.deliver(tone());
    expect(app.calls[0]!.paused).toBe(true);
    expect(streams.created[0]!.silentFrames.A).toBe(1);
    ari.dialplanSets(legB, PAUSE_VARIABLE, '0');
    expect(app.calls[0]!.paused).toBe(false);
    expect(streams.created[0]!.events.map((e) => e.event)).toEqual(['paused', 'resumed']);
  });

  it('set before Stasis(): the call starts paused', async () => {
    const { ari, streams, transports } = await setUp();
    await connected(ari, { [PAUSE_VARIABLE]: '1' });
    transports.opened[0]!.deliver(tone());
    expect(streams.created[0]!.events).toEqual([{ event: 'paused', reason: 'dialplan' }]);
    expect(streams.created[0]!.silentFrames.A).toBe(1);
  });
});

describe('stop and text', () => {
  it('stop ends the streams and taps for good; the call goes on until a party hangs up', async () => {
    const { ari, app, streams } = await setUp();
    const { legA, legB } = await connected(ari);
    const call = app.calls[0]!;
    await call.stopTranscription();
    expect(streams.created[0]!.finishedWith).toBe('transcription stopped by an operator');
    expect(ari.channels.has(legA) && ari.channels.has(legB)).toBe(true);
    expect([...ari.channels.keys()].filter((id) => id.startsWith('snoop-') || id.startsWith('media-'))).toEqual([]);
    expect(call.describe().transcribing).toBe(false);
    expect(call.sendText('hello')).toBe(false);
    ari.partyHangsUp(legA);
    await settle(20);
    expect(ari.channels.size).toBe(0);
  });

  it('text goes down the streams as an event', async () => {
    const { ari, app, streams } = await setUp();
    await connected(ari);
    expect(app.calls[0]!.sendText('agent note')).toBe(true);
    expect(streams.created[0]!.events).toEqual([{ event: 'text', text: 'agent note' }]);
  });
});

describe('call data in the metadata', () => {
  it('carries PASS_HEADERS and the TRANSCRIPTION_META hash, and leaves out what fails the checks', async () => {
    const { ari, streams } = await setUp();
    await connected(ari, {
      'PJSIP_HEADER(read,X-Customer-Id)': 'C-1234',
      'HASHKEYS(TRANSCRIPTION_META)': 'customer,campaign,notes,bad key',
      'HASH(TRANSCRIPTION_META,customer)': '555-0100',
      'HASH(TRANSCRIPTION_META,campaign)': 'spring',
      'HASH(TRANSCRIPTION_META,notes)': 'x'.repeat(300),
    });
    expect(streams.created[0]!.identities[0].meta).toEqual({ 'X-Customer-Id': 'C-1234', customer: '555-0100', campaign: 'spring' });
    expect(streams.created[0]!.identities[1].meta).toEqual(streams.created[0]!.identities[0].meta);
  });
});

describe('operations routes and metrics', () => {
  async function endpoint() {
    const setup = await setUp();
    const ops = await OpsServer.listen({ host: '127.0.0.1', port: 0, readiness: () => ({ ready: true }), logger });
    cleanups.push(() => ops.close());
    addOperationsRoutes(ops, setup.app, setup.metrics.registry);
    const base = `http://127.0.0.1:${ops.port}`;
    const request = async (method: string, path: string, body?: string, type = 'application/json') => {
      const response = await fetch(`${base}${path}`, { method, ...(body !== undefined && { body, headers: { 'Content-Type': type } }) });
      return { status: response.status, text: await response.text() };
    };
    return { ...setup, request };
  }

  it('GET /calls lists calls without phone numbers; POST pause/resume/text/stop act on them; bad input is refused', async () => {
    const { ari, app, streams, request } = await endpoint();
    await connected(ari);
    const callId = app.calls[0]!.callId;
    const list = await request('GET', '/calls');
    expect(list.status).toBe(200);
    expect(JSON.parse(list.text)).toMatchObject({
      calls: [
        {
          callId,
          state: 'answered',
          paused: false,
          transcribing: true,
          legs: [
            { leg: 'A', label: 'CALLER1' },
            { leg: 'B', label: 'CALLER2' },
          ],
        },
      ],
    });
    expect(list.text).not.toContain('1001');
    expect((await request('POST', `/calls/${callId}/pause`)).status).toBe(200);
    expect(app.calls[0]!.paused).toBe(true);
    expect((await request('POST', `/calls/${callId}/resume`)).status).toBe(200);
    expect((await request('POST', `/calls/${callId}/text`, JSON.stringify({ text: 'hi there' }))).status).toBe(200);
    expect((await request('POST', `/calls/${callId}/text`, 'plain words', 'text/plain')).status).toBe(200);
    expect(streams.created[0]!.events.filter((e) => e.event === 'text').map((e) => e.text)).toEqual(['hi there', 'plain words']);
    expect((await request('POST', `/calls/${callId}/text`, JSON.stringify({ text: 'a\u0000b' }))).status).toBe(400);
    expect((await request('POST', `/calls/${callId}/text`, JSON.stringify({ text: 'x'.repeat(9000) }))).status).toBe(413);
    expect((await request('POST', `/calls/${callId}/text`, '{"text":')).status).toBe(400);
    expect((await request('POST', '/calls/0b0e2f6c-9d7a-4a8e-9a43-2f4a0c6d1e55/pause')).status).toBe(404);
    for (const bad of ['%2e%2e%2fetc', 'x;rm', 'ABC', `${callId}/pause/again`])
      expect((await request('POST', `/calls/${bad}/pause`)).status).toBe(400);
    expect((await request('POST', `/calls/${callId}/explode`)).status).toBe(404);
    expect((await request('POST', `/calls/${callId}/stop`)).status).toBe(200);
    expect(streams.created[0]!.finishedWith).toBe('transcription stopped by an operator');
  });

  it('/metrics: active calls, frames, outcomes, set-up time; no label value is a number or an id of a call', async () => {
    const { ari, app, transports, request } = await endpoint();
    const { legA } = await connected(ari);
    transports.opened[0]!.deliver(tone());
    transports.opened[1]!.deliver(tone());
    const during = (await request('GET', '/metrics')).text;
    expect(during).toMatch(/^transcription_proxy_calls_active 1$/m);
    expect(during).toMatch(/^transcription_proxy_frames_received_total\{leg="A"\} 1$/m);
    expect(during).toMatch(/^transcription_proxy_call_setup_seconds_count 1$/m);
    ari.partyHangsUp(legA);
    await settle(20);
    expect(app.activeCalls).toBe(0);
    const after = (await request('GET', '/metrics')).text;
    expect(after).toMatch(/^transcription_proxy_calls_active 0$/m);
    expect(after).toMatch(/^transcription_proxy_calls_total\{outcome="completed"\} 1$/m);
    const labelValues = [...after.matchAll(/="([^"]*)"/g)].map((m) => m[1]!);
    for (const value of labelValues) expect(value, 'a label value').toMatch(/^[a-z_]+$|^[AB]$|^[0-9.+Inf]+$/);
  });
});
