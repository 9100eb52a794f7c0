/**
 * Many calls in a row over each tap transport, every one delivering audio on
 * both streams: the bridging race (PROTOCOLS.md) or a transport that loses a
 * leg now and then shows up here, not in a single call.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { toneMarginDb } from '../support/tones.js';

const CALLS = 30;
let streamServer: StrictStreamServer;
let calleePort: number;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
});

afterAll(async () => {
  await streamServer?.close();
});

describe.each(['rtp', 'audiosocket', 'websocket'] as const)('MEDIA_TRANSPORT=%s', (transport) => {
  let proxy: ServiceUnderTest;
  beforeAll(async () => {
    proxy = await startServiceUnderTest({
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: streamServer.url,
      MEDIA_TRANSPORT: transport,
    });
  });
  afterAll(async () => {
    await proxy?.stop();
  });

  it(`${CALLS} consecutive calls each deliver the right audio on both streams`, async () => {
    onTestFailed(() => console.log(`--- service log\n${proxy.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
    const failures: string[] = [];
    for (let call = 1; call <= CALLS; call++) {
      streamServer.streams.length = 0;
      const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
      const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 1500, target: ASTERISK_SIP });
      const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
      expect(callerResult.exitCode, `call ${call}: ${callerResult.stderr}`).toBe(0);
      expect(calleeResult.exitCode, `call ${call}: ${calleeResult.stderr}`).toBe(0);
      const streams = await streamServer.waitForClosedStreams(2);
      for (const stream of streams) {
        const [own, other] = stream.metadata?.label === 'CALLER1' ? [440, 1330] : [1330, 440];
        const audio = Buffer.concat(stream.frames);
        const margin = toneMarginDb(audio, 16000, own, other);
        // About 1.5 s of call: at least 1 s of frames, clearly its own party's tone.
        if (stream.frames.length < 50 || margin < 30) {
          failures.push(
            `call ${call} ${String(stream.metadata?.label)}: ${stream.frames.length} frames, ${own} Hz ${margin.toFixed(1)} dB above ${other} Hz`,
          );
        }
      }
      await expectNothingLeftInAsterisk();
      proxy.expectIdle();
    }
    expect(failures).toEqual([]);
  }, 240_000);
});
