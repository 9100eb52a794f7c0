/**
 * Every provider, and every mode of the generic websocket, end to end on the
 * real Asterisk with real SIPp peers, each party playing its own tone: the
 * right tone on the right label, channel or track at least 40 dB above the
 * other's, metadata first, frame counts within 3 %, nothing left behind.
 * (STREAM_MODE=split, the default, is covered by inbound-call.test.ts.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { deinterleave } from '../../app/media/pcm-channels.js';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { startFakeVoicegain, type FakeVoicegain } from '../support/fake-voicegain.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type ReceivedStream, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectFrameCountMatchesDuration, expectOwnTone, steady } from '../support/stream-checks.js';
import { blockTonePowerDb } from '../support/tones.js';
import { startTwilioStreamServer, type TwilioStreamServer } from '../support/twilio-stream-server.js';

const CALLER_HZ = 440;
const CALLEE_HZ = 1330;
const HOLD_MS = 5000;
const VG_TOKEN = 'e2e-voicegain-jwt';

let calleePort: number;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  calleePort = await freeUdpPort();
});

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
  await expectNothingLeftInAsterisk();
});

function showLogsOnFailure(): void {
  onTestFailed(() => console.log(`--- service log\n${proxy?.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
}

/** One call through the service: caller CALLER_HZ, callee CALLEE_HZ, both SIPp peers must end cleanly. */
async function placeCall(holdMs = HOLD_MS, callerScenario = 'caller.xml'): Promise<void> {
  const callee = await startSipp({ scenario: 'callee.xml', toneHz: CALLEE_HZ, sipPort: calleePort });
  const variables = callerScenario === 'caller-dtmf.xml' ? { digit: '7' } : undefined;
  const caller = await startSipp({
    scenario: callerScenario,
    toneHz: CALLER_HZ,
    service: '4567',
    holdMs,
    target: ASTERISK_SIP,
    ...(variables && { variables }),
  });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  expect(callerResult.exitCode, `${callerResult.stderr}\n${callerResult.messages.slice(-3000)}`).toBe(0);
  expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
}

describe('PROVIDER=websocket', () => {
  let streamServer: StrictStreamServer;
  beforeAll(async () => {
    streamServer = await startStrictStreamServer();
  });
  afterAll(async () => {
    await streamServer?.close();
  });
  afterEach(() => {
    streamServer.streams.length = 0;
  });

  function expectCallStream(stream: ReceivedStream, mode: 'stereo' | 'mixed'): void {
    expect(stream.violations).toEqual([]);
    expect(stream.metadata).toMatchObject({
      event: 'start',
      version: 1,
      mode,
      encoding: 'L16',
      endianness: 'little',
      sampleRate: 16000,
      channels: mode === 'stereo' ? 2 : 1,
      labels: ['CALLER1', 'CALLER2'],
      label: 'CALLER1+CALLER2',
      legs: [expect.objectContaining({ label: 'CALLER1', leg: 'A' }), expect.objectContaining({ label: 'CALLER2', leg: 'B' })],
    });
    expect(stream.stop).toMatchObject({ event: 'stop', label: 'CALLER1+CALLER2', callId: stream.metadata?.callId });
    expect(stream.closeCode).toBe(1000);
    expectFrameCountMatchesDuration(stream);
    const frameBytes = mode === 'stereo' ? 1280 : 640;
    expect(
      stream.frames.every((frame) => frame.length === frameBytes),
      `every frame ${frameBytes} bytes`,
    ).toBe(true);
  }

  it('STREAM_MODE=stereo: one stream per call, the caller on the left channel and the callee on the right', async () => {
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      STREAM_MODE: 'stereo',
    });
    showLogsOnFailure();
    await placeCall();
    const [stream] = await streamServer.waitForClosedStreams(1);
    expect(streamServer.streams).toHaveLength(1);
    expectCallStream(stream!, 'stereo');
    const [left, right] = deinterleave(Buffer.concat(stream!.frames));
    expect(left.length).toBe(right.length);
    expectOwnTone(left, 16000, CALLER_HZ, CALLEE_HZ, 'left (CALLER1)');
    expectOwnTone(right, 16000, CALLEE_HZ, CALLER_HZ, 'right (CALLER2)');
    proxy.expectIdle();
  });

  it('STREAM_MODE=mixed: one stream per call carrying both parties in one channel', async () => {
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      STREAM_MODE: 'mixed',
    });
    showLogsOnFailure();
    await placeCall();
    const [stream] = await streamServer.waitForClosedStreams(1);
    expectCallStream(stream!, 'mixed');
    const audio = steady(Buffer.concat(stream!.frames), 16000);
    // Both parties, at about the level each has alone (block by block: a phase jump of one
    // party's tone, the snoop's under load, is no change of level), and far above a
    // frequency nobody plays.
    const [caller, callee, unplayed] = [CALLER_HZ, CALLEE_HZ, 2500].map((hz) => blockTonePowerDb(audio, 16000, hz)) as [
      number,
      number,
      number,
    ];
    expect(Math.abs(caller - callee), 'both parties at a similar level (dB)').toBeLessThan(6);
    expect(caller - unplayed, 'caller above an unplayed 2500 Hz (dB)').toBeGreaterThanOrEqual(40);
    expect(callee - unplayed, 'callee above an unplayed 2500 Hz (dB)').toBeGreaterThanOrEqual(40);
    proxy.expectIdle();
  });

  it.each(['split', 'stereo'] as const)(
    'STREAM_DTMF=yes, STREAM_MODE=%s: a key the caller presses arrives as a dtmf event labelled CALLER1',
    async (mode) => {
      proxy = await startServiceUnderTest({
        DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
        STREAM_URL: streamServer.url,
        STREAM_MODE: mode,
        STREAM_DTMF: 'yes',
      });
      showLogsOnFailure();
      await placeCall(3000, 'caller-dtmf.xml');
      const streams = await streamServer.waitForClosedStreams(mode === 'split' ? 2 : 1);
      const events = streams.flatMap((stream) => stream.dtmf.map((dtmf) => ({ on: stream.metadata?.label, ...dtmf })));
      expect(events).toEqual([
        {
          on: mode === 'split' ? 'CALLER1' : 'CALLER1+CALLER2',
          event: 'dtmf',
          label: 'CALLER1',
          digit: '7',
          durationMs: expect.any(Number),
        },
      ]);
      for (const stream of streams) expect(stream.violations).toEqual([]);
    },
  );

  it('STREAM_DTMF off (the default): no dtmf event reaches the stream', async () => {
    proxy = await startServiceUnderTest({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, STREAM_URL: streamServer.url });
    showLogsOnFailure();
    await placeCall(3000, 'caller-dtmf.xml');
    const streams = await streamServer.waitForClosedStreams(2);
    expect(streams.flatMap((stream) => stream.dtmf)).toEqual([]);
    // The key did reach the service (leg A, at debug); its digit stays out of the log (LOG_PII is off).
    expect(proxy.logTail(300)).toMatch(/"leg":"A","digit":"\[hidden\]","durationMs":\d+,"msg":"DTMF"/);
    expect(proxy.logTail(300)).not.toMatch(/"digit":"7"/);
  });
});

describe('PROVIDER=twilio', () => {
  let twilio: TwilioStreamServer;
  beforeAll(async () => {
    twilio = await startTwilioStreamServer();
  });
  afterAll(async () => {
    await twilio?.close();
  });

  it('sends Twilio Media Streams: the caller as track inbound, the callee as outbound, µ-law 8 kHz', async () => {
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: twilio.url,
      PROVIDER: 'twilio',
      STREAM_DTMF: 'yes',
    });
    showLogsOnFailure();
    await placeCall(HOLD_MS, 'caller-dtmf.xml');
    const [stream] = await twilio.waitForClosedStreams(1);
    expect(twilio.streams).toHaveLength(1);
    expect(stream!.violations).toEqual([]);
    expect(stream!.events.slice(0, 2)).toEqual(['connected', 'start']);
    expect(stream!.events.at(-1)).toBe('stop');
    expect(stream!.closeCode).toBe(1000);
    expect(stream!.start).toMatchObject({
      tracks: ['inbound', 'outbound'],
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      customParameters: expect.objectContaining({ inboundLabel: 'CALLER1', outboundLabel: 'CALLER2', callee: '4567' }),
    });
    const inbound = stream!.tracks.get('inbound') ?? [];
    const outbound = stream!.tracks.get('outbound') ?? [];
    // Both tracks cover the call: 50 messages a second each, within 3 % of one another.
    expect(inbound.length).toBeGreaterThan(150);
    expect(Math.abs(inbound.length - outbound.length) / inbound.length).toBeLessThan(0.03);
    for (const track of ['inbound', 'outbound']) expectFrameCountMatchesDuration({ frameArrivalMs: stream!.arrivals.get(track) ?? [] });
    // The caller's key, as Twilio reports DTMF: on the inbound track.
    expect(stream!.dtmf).toEqual([{ track: 'inbound_track', digit: '7' }]);
    expectOwnTone(Buffer.concat(inbound), 8000, CALLER_HZ, CALLEE_HZ, 'track inbound (CALLER1)');
    expectOwnTone(Buffer.concat(outbound), 8000, CALLEE_HZ, CALLER_HZ, 'track outbound (CALLER2)');
    proxy.expectIdle();
  });
});

describe('PROVIDER=voicegain', () => {
  let voicegain: FakeVoicegain;
  let resultsUrl: string;
  beforeAll(async () => {
    voicegain = await startFakeVoicegain({ token: VG_TOKEN });
    resultsUrl = 'wss://results.example.com:8765/voicegain';
  });
  afterAll(async () => {
    await voicegain?.close();
  });

  function voicegainSettings(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      VG_GATEWAY_URL: voicegain.url.href,
      JWT_TOKEN: VG_TOKEN,
      WEBSOCKET_SERVER: resultsUrl,
      AUTH_NAME: 'fsproxy',
      CONTENT_INCREMENTAL: 'words',
      SENSITIVITY: '0.5',
      AUDIO_CAPTURE: 'true',
      NOAUDIOTIMEOUT: '30000',
      ...extra,
    };
  }

  it('requests the two sessions when B answers and streams stereo L16 8 kHz, caller left, to the returned URL', async () => {
    voicegain.respondWith('ok');
    proxy = await startServiceUnderTest(voicegainSettings());
    showLogsOnFailure();
    const before = voicegain.requests.length;
    await placeCall();
    const [audio] = await voicegain.waitForClosedAudio(1);
    expect(voicegain.requests.length - before).toBe(1);
    const request = voicegain.requests.at(-1)!;
    expect(request.problems).toEqual([]);
    expect(request.headers.authorization).toBe(`Bearer ${VG_TOKEN}`);
    expect(JSON.stringify(request.body)).not.toContain(VG_TOKEN);
    expect(request.body).toMatchObject({
      sessions: [
        { audioChannelSelector: 'left', websocket: { externalUrl: resultsUrl, authConf: 'fsproxy' } },
        { audioChannelSelector: 'right', websocket: { externalUrl: resultsUrl, authConf: 'fsproxy' } },
      ],
      audio: { format: 'L16', channels: 'stereo', rate: 8000, capture: true },
    });
    expect(audio!.textFrames).toEqual([]);
    expect(audio!.closeCode).toBe(1000);
    expect(audio!.left().length).toBe(audio!.right().length);
    expect(audio!.bytes.length / audio!.frameArrivalMs.length, 'bytes per frame: 20 ms of stereo L16 8 kHz').toBe(640);
    expectFrameCountMatchesDuration(audio!);
    expectOwnTone(audio!.left(), 8000, CALLER_HZ, CALLEE_HZ, 'left channel (CALLER1)');
    expectOwnTone(audio!.right(), 8000, CALLEE_HZ, CALLER_HZ, 'right channel (CALLER2)');
    proxy.expectIdle();
  });

  it('when Voicegain refuses (401), the call goes on untouched, nothing is streamed, and it is not asked again', async () => {
    voicegain.respondWith(401);
    proxy = await startServiceUnderTest(voicegainSettings({ VG_REQUEST_TIMEOUT_MS: '1000' }));
    showLogsOnFailure();
    const sessions = voicegain.sessions.length;
    const requests = voicegain.requests.length;
    await placeCall(3000);
    expect(voicegain.sessions.length).toBe(sessions);
    expect(voicegain.requests.length - requests, 'a refusal is final').toBe(1);
    const log = proxy.logTail(200);
    // Voicegain's own words reach the log: its reason and detail (test/support/fake-voicegain.ts).
    expect(log).toContain('Voicegain refused the session: Voicegain answered 401: Unauthorized: missing or invalid JWT');
    expect(log).toMatch(/the call goes on without transcription/);
    expect(log).not.toContain(VG_TOKEN);
    proxy.expectIdle();
  });

  it.each([500, 429, 'hang'] as const)(
    'when Voicegain answers %s, the session is asked for again while the call lasts, and the audio of the wait is not lost',
    async (mode) => {
      voicegain.respondWith(mode);
      proxy = await startServiceUnderTest(voicegainSettings({ VG_REQUEST_TIMEOUT_MS: '1000' }));
      showLogsOnFailure();
      const requests = voicegain.requests.length;
      const sessions = voicegain.sessions.length;
      const call = placeCall(7000);
      // Voicegain recovers once it has been asked (and has failed) once.
      await expect.poll(() => voicegain.requests.length - requests, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      voicegain.respondWith('ok');
      await call;
      expect(voicegain.requests.length - requests, 'asked again').toBeGreaterThanOrEqual(2);
      expect(voicegain.sessions.length - sessions).toBe(1);
      const audio = (await voicegain.waitForClosedAudio(sessions + 1)).at(-1)!;
      // The call's audio from its answer, the wait included: about 7 s of stereo frames.
      expect(audio.frameArrivalMs.length * 20, 'ms of audio streamed').toBeGreaterThan(6000);
      expectOwnTone(audio.left(), 8000, CALLER_HZ, CALLEE_HZ, 'left channel (CALLER1)');
      const log = proxy.logTail(300);
      expect(log).toMatch(/Voicegain session request failed/);
      expect(log).not.toContain(VG_TOKEN);
      proxy.expectIdle();
    },
    30_000,
  );
});
