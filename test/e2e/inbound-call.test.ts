/**
 * The inbound call path on the real Asterisk with real SIPp peers: a caller
 * dials through Asterisk into the Stasis app, the app dials the callee, bridges
 * them and streams each party to a strict mod_audio_stream-style server. Each
 * party plays its own tone, so a swapped or mixed label cannot pass.
 */
import { createSocket } from 'node:dgram';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { parseRtpPacket } from '../../app/media/rtp-packet.js';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk, listChannels } from '../support/testbed.js';
import { freeUdpPort, receivedRequestHeader, receivedRequestLines, receivedResponseCodes, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectFrameCountMatchesDuration, expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';
import { toneMarginDb, ulawToL16 } from '../support/tones.js';

const SAMPLE_RATE = 16000;
const HOLD_MS = 6000;

let streamServer: StrictStreamServer;
let calleePort: number;
let proxy: ServiceUnderTest;

/** The service's settings in these tests; `overrides` replace single keys. */
function settings(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
    DIALED_NUMBER_MAPPING: '1233:4567',
    STREAM_URL: streamServer.url,
    STREAM_TOKEN: 'e2e-token',
    SAMPLE_RATE: String(SAMPLE_RATE),
    DIAL_TIMEOUT_MS: '3000',
    ...overrides,
  };
}

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
  proxy = await startServiceUnderTest(settings());
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

afterEach(async () => {
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
  proxy.expectIdle();
});

function showLogsOnFailure(): void {
  onTestFailed(() => {
    console.log(`--- service log (${proxy.logFile})\n${proxy.logTail()}\n--- Asterisk log\n${asteriskLogTail()}`);
  });
}

async function placeCall(options: {
  callerHz: number;
  calleeHz: number;
  dialled?: string;
  calleeScenario?: string;
  callerScenario?: string;
}) {
  const callee = await startSipp({
    scenario: options.calleeScenario ?? 'callee.xml',
    toneHz: options.calleeHz,
    sipPort: calleePort,
    holdMs: HOLD_MS,
  });
  const caller = await startSipp({
    scenario: options.callerScenario ?? 'caller.xml',
    toneHz: options.callerHz,
    service: options.dialled ?? '1233',
    callerId: '1001',
    holdMs: HOLD_MS,
    target: ASTERISK_SIP,
  });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  return { callerResult, calleeResult };
}

describe('inbound call', () => {
  it.each([
    { callerHz: 440, calleeHz: 1330 },
    { callerHz: 1330, calleeHz: 440 },
  ])('streams the caller ($callerHz Hz) as CALLER1 and the callee ($calleeHz Hz) as CALLER2', async ({ callerHz, calleeHz }) => {
    showLogsOnFailure();
    const { callerResult, calleeResult } = await placeCall({ callerHz, calleeHz });
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    // DIALED_NUMBER_MAPPING turned 1233 into 4567 on leg B.
    expect(receivedRequestLines(calleeResult.messages)[0]).toMatch(/^INVITE sip:4567@127\.0\.0\.1:\d+ SIP\/2\.0$/);
    // Leg B carries the caller's caller ID.
    expect(receivedRequestHeader(calleeResult.messages, 'INVITE', 'From')).toMatch(/<sip:1001@/);

    const streams = await streamServer.waitForClosedStreams(2);
    expect(streamServer.streams).toHaveLength(2);
    const caller = streamByLabel(streams, 'CALLER1');
    const callee = streamByLabel(streams, 'CALLER2');
    for (const stream of [caller, callee]) {
      expectWellFormed(stream);
      expectFrameCountMatchesDuration(stream);
      expect(stream.headers.authorization).toBe('Bearer e2e-token');
      expect(stream.frames.every((frame) => frame.length === 640)).toBe(true);
      const seconds = (stream.frames.length * 20) / 1000;
      expect(seconds).toBeGreaterThan(HOLD_MS / 1000 - 1.5);
      expect(seconds).toBeLessThan(HOLD_MS / 1000 + 1);
    }
    expect(caller.metadata).toMatchObject({ leg: 'A', direction: 'inbound', caller: '1001', callee: '4567', sampleRate: SAMPLE_RATE });
    expect(callee.metadata).toMatchObject({ leg: 'B', direction: 'inbound', caller: '1001', callee: '4567', sampleRate: SAMPLE_RATE });
    expect(caller.metadata?.callId).toBe(callee.metadata?.callId);
    expect(caller.metadata?.linkedId).toBe(callee.metadata?.linkedId);
    expect(caller.metadata?.channelId).not.toBe(callee.metadata?.channelId);
    expect(String(caller.metadata?.sipCallId)).not.toBe('');
    expect(String(callee.metadata?.sipCallId)).not.toBe('');

    expectTone(caller, SAMPLE_RATE, callerHz, [calleeHz]);
    expectTone(callee, SAMPLE_RATE, calleeHz, [callerHz]);
  });
});

describe('STREAM_BUFFER_SIZE (several frames per message)', () => {
  it('carries 100 ms per binary message at 100, each party on its own label, the whole call', async () => {
    showLogsOnFailure();
    await proxy.stop();
    proxy = await startServiceUnderTest(settings({ STREAM_BUFFER_SIZE: '100' }));
    try {
      const { callerResult, calleeResult } = await placeCall({ callerHz: 440, calleeHz: 1330 });
      expect(callerResult.exitCode, callerResult.stderr).toBe(0);
      expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
      const streams = await streamServer.waitForClosedStreams(2);
      const caller = streamByLabel(streams, 'CALLER1');
      const callee = streamByLabel(streams, 'CALLER2');
      for (const stream of [caller, callee]) {
        expectWellFormed(stream);
        // Five 640-byte frames per message; only the last one (the end of the call) may be shorter.
        expect(stream.frames.slice(0, -1).every((message) => message.length === 3200)).toBe(true);
        expect(stream.frames.at(-1)!.length % 640).toBe(0);
        const seconds = stream.frames.reduce((sum, message) => sum + message.length, 0) / (SAMPLE_RATE * 2);
        expect(seconds).toBeGreaterThan(HOLD_MS / 1000 - 1.5);
        expect(seconds).toBeLessThan(HOLD_MS / 1000 + 1);
      }
      expectTone(caller, SAMPLE_RATE, 440, [1330]);
      expectTone(callee, SAMPLE_RATE, 1330, [440]);
    } finally {
      await proxy.stop();
      proxy = await startServiceUnderTest(settings());
    }
  });
});

describe('two calls at the same time', () => {
  it("keeps each party's tone on its own stream (four tones)", async () => {
    showLogsOnFailure();
    const tones = { caller1: 440, callee1: 1330, caller2: 700, callee2: 1900 };
    const callee = await startSipp({
      scenario: 'callee-tone-by-number.xml',
      toneHz: tones.callee1,
      extraTonesHz: [tones.callee2],
      sipPort: calleePort,
      calls: 2,
    });
    const callers = await Promise.all([
      startSipp({
        scenario: 'caller.xml',
        toneHz: tones.caller1,
        service: '2001',
        callerId: '1001',
        holdMs: HOLD_MS,
        target: ASTERISK_SIP,
      }),
      startSipp({
        scenario: 'caller.xml',
        toneHz: tones.caller2,
        service: '2002',
        callerId: '1002',
        holdMs: HOLD_MS,
        target: ASTERISK_SIP,
      }),
    ]);
    const results = await Promise.all([...callers.map((c) => c.done), callee.done]);
    for (const result of results) expect(result.exitCode, result.stderr).toBe(0);

    const streams = await streamServer.waitForClosedStreams(4);
    expect(streamServer.streams).toHaveLength(4);
    const all = Object.values(tones);
    const expectations = [
      { callee: '2001', label: 'CALLER1', hz: tones.caller1 },
      { callee: '2001', label: 'CALLER2', hz: tones.callee1 },
      { callee: '2002', label: 'CALLER1', hz: tones.caller2 },
      { callee: '2002', label: 'CALLER2', hz: tones.callee2 },
    ];
    for (const { callee: number, label, hz } of expectations) {
      const stream = streamByLabel(
        streams.filter((s) => s.metadata?.callee === number),
        label,
      );
      expectWellFormed(stream);
      expectTone(
        stream,
        SAMPLE_RATE,
        hz,
        all.filter((other) => other !== hz),
      );
    }
    const callIds = new Set(streams.map((s) => s.metadata?.callId));
    expect(callIds.size).toBe(2);
  });
});

describe('calls that end early or fail', () => {
  it('passes busy to the caller and opens no stream', async () => {
    showLogsOnFailure();
    const callee = await startSipp({ scenario: 'callee-busy.xml', sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: '4567', target: ASTERISK_SIP });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages).at(-1)).toBe(486);
    expect(streamServer.streams).toHaveLength(0);
  });

  it('gives up on a callee that does not answer within DIAL_TIMEOUT_MS and opens no stream', async () => {
    showLogsOnFailure();
    const callee = await startSipp({ scenario: 'callee-no-answer.xml', sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: '4567', target: ASTERISK_SIP });
    const startedAt = Date.now();
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages)).toContain(180);
    expect(receivedResponseCodes(callerResult.messages).at(-1)).toBe(480);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(2900);
    expect(streamServer.streams).toHaveLength(0);
  });

  it('hangs up the caller when the callee hangs up first, and closes both streams', async () => {
    showLogsOnFailure();
    const { callerResult, calleeResult } = await placeCall({
      callerHz: 440,
      calleeHz: 1330,
      calleeScenario: 'callee-hangs-up.xml',
      callerScenario: 'caller-waits-bye.xml',
    });
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedRequestLines(callerResult.messages).some((line) => line.startsWith('BYE '))).toBe(true);
    const streams = await streamServer.waitForClosedStreams(2);
    for (const stream of streams) {
      expectWellFormed(stream);
      expect(stream.stop?.reason).toBe('callee hung up');
    }
  });

  it('still connects the call when the transcription websocket is down', async () => {
    showLogsOnFailure();
    const downUrl = `ws://127.0.0.1:${await freeUdpPort()}`;
    await proxy.stop();
    proxy = await startServiceUnderTest(settings({ STREAM_URL: downUrl }));
    try {
      const { callerResult, calleeResult } = await placeCall({ callerHz: 440, calleeHz: 1330, dialled: '4567' });
      expect(callerResult.exitCode, callerResult.stderr).toBe(0);
      expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
      expect(receivedResponseCodes(callerResult.messages)).toContain(200);
      expect(proxy.logTail(400)).toMatch(/stream connection failed; buffering and retrying/);
    } finally {
      await proxy.stop();
      proxy = await startServiceUnderTest(settings());
    }
  });
});

describe('taps built while the callee rings', () => {
  it("has both legs tapped before the answer, streams nothing before it, and each party's tone after", async () => {
    showLogsOnFailure();
    const ringMs = 2000; // below DIAL_TIMEOUT_MS (3000)
    const callee = await startSipp({ scenario: 'callee-answers-late.xml', toneHz: 1330, sipPort: calleePort, holdMs: ringMs });
    const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 4000, target: ASTERISK_SIP });
    // Each leg's snoop and media channel exist while B still rings, and no stream is open yet.
    const tapped = async () => {
      const ids = (await listChannels()).map((channel) => channel.id);
      return ids.filter((id) => id.startsWith('snoop-')).length === 2 && ids.filter((id) => id.startsWith('media-')).length === 2;
    };
    await expect.poll(tapped, { timeout: ringMs - 300, interval: 50 }).toBe(true);
    expect(streamServer.streams, 'streams open before the answer').toHaveLength(0);

    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    const streams = await streamServer.waitForClosedStreams(2);
    expectTone(streamByLabel(streams, 'CALLER1'), SAMPLE_RATE, 440, [1330]);
    expectTone(streamByLabel(streams, 'CALLER2'), SAMPLE_RATE, 1330, [440]);
  });
});

describe('a caller answered before it reaches the app (after an IVR)', () => {
  it('hears ringback while the callee rings, then the callee', async () => {
    showLogsOnFailure();
    // The caller's media port belongs to the test: what Asterisk plays to the caller arrives here.
    const media = createSocket('udp4');
    await new Promise<void>((resolve) => media.bind(0, '127.0.0.1', resolve));
    const heard: { atMs: number; samples: Buffer }[] = [];
    media.on('message', (packet) => {
      heard.push({ atMs: performance.now(), samples: ulawToL16(parseRtpPacket(packet).payload) });
    });
    try {
      const ringMs = 2500;
      const callee = await startSipp({ scenario: 'callee-answers-late.xml', toneHz: 1330, sipPort: calleePort, holdMs: ringMs });
      const caller = await startSipp({
        scenario: 'caller-answered-first.xml',
        service: '4567',
        holdMs: ringMs + 3000,
        target: ASTERISK_SIP,
        variables: { rtp_port: String(media.address().port) },
      });
      const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
      expect(callerResult.exitCode, callerResult.stderr).toBe(0);
      expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
      // Answered by the dialplan: no 180 can follow a 200.
      expect(receivedResponseCodes(callerResult.messages)).not.toContain(180);

      const first = heard[0]!.atMs;
      const during = (fromMs: number, toMs: number) =>
        Buffer.concat(heard.filter((h) => h.atMs - first >= fromMs && h.atMs - first < toMs).map((h) => h.samples));
      // US ringback is 440 + 480 Hz; after the answer the caller hears the callee's 1330 Hz.
      const ringing = during(200, ringMs - 500);
      const talking = during(ringMs + 1000, ringMs + 2500);
      expect(toneMarginDb(ringing, 8000, 440, 1330)).toBeGreaterThan(20);
      expect(toneMarginDb(ringing, 8000, 480, 1330)).toBeGreaterThan(20);
      expect(toneMarginDb(talking, 8000, 1330, 440)).toBeGreaterThan(20);
    } finally {
      media.close();
    }
  });
});

describe('an unreachable destination', () => {
  it("fails the call back to the caller when leg B's INVITE times out, opens no stream, leaves nothing", async () => {
    showLogsOnFailure();
    // Nothing listens at calleePort: leg B's INVITE is never answered and PJSIP's transaction
    // timeout (Timer B, 32 s, its minimum) ends it. The dial timeout is set longer, so the
    // failure comes from the SIP layer.
    await proxy.stop();
    proxy = await startServiceUnderTest(settings({ DIAL_TIMEOUT_MS: '60000' }));
    try {
      const caller = await startSipp({ scenario: 'caller-rejected.xml', service: '4567', target: ASTERISK_SIP, timeoutSeconds: 50 });
      const callerResult = await caller.done;
      expect(callerResult.exitCode, callerResult.stderr).toBe(0);
      // Q.850 cause 18 (no user responding) is the SIP timeout; our dial timeout would be 19.
      expect(proxy.logTail(50)).toMatch(/callee failed \(cause 18\)/);
      expect(receivedResponseCodes(callerResult.messages).at(-1)).toBe(480);
      expect(streamServer.streams).toHaveLength(0);
    } finally {
      await proxy.stop();
      proxy = await startServiceUnderTest(settings());
    }
  }, 60_000);
});

describe('a dialled number that could inject into the dial string', () => {
  it('is refused with 404 before any leg B exists', async () => {
    showLogsOnFailure();
    // `&` would add a second destination to PJSIP/...; it is legal in a SIP URI's user part.
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: '4567&PJSIP', target: ASTERISK_SIP });
    const callerResult = await caller.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages).at(-1)).toBe(404);
    expect(proxy.logTail(20)).toMatch(/"reason":"dialled number not dialable[^"]*","numbers":[^\n]*"msg":"call refused"/);
    expect(proxy.logTail(20)).not.toMatch(/routing call/);
    expect(streamServer.streams).toHaveLength(0);
  });
});
