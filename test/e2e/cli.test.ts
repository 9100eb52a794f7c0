/**
 * The product as a user runs it: `transcription-proxy receive` as the sink and
 * `transcription-proxy serve` as the service, both as processes, with a real
 * call through the test bed. stdout must be JSON log lines only, no secret may
 * appear in them, and each WAV file must hold its own party's tone.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, onTestFailed } from 'vitest';
import { runCli, type CliProcess } from '../support/cli-process.js';
import { freeUdpPort, startSipp } from '../support/sipp.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { toneMarginDb } from '../support/tones.js';

const STREAM_TOKEN = 'stream-token-must-not-be-logged';
const running: CliProcess[] = [];

afterEach(async () => {
  for (const process of running.splice(0)) {
    process.child.kill('SIGKILL');
    await process.exited;
  }
});

it('serve + receive: a call becomes one WAV file per party, with JSON-only stdout and no secrets', async () => {
  const recordings = mkdtempSync(join(tmpdir(), 'atp-recordings-'));
  const receiver = runCli(['receive', '--port', '0', '--dir', recordings]);
  running.push(receiver);
  const listening = await receiver.line((e) => e.msg === 'receiver listening');

  const calleePort = await freeUdpPort();
  const workdir = mkdtempSync(join(tmpdir(), 'atp-serve-'));
  const service = runCli(
    ['serve', '--set', `DESTINATION_DOMAIN=127.0.0.1:${calleePort}`, '--set', 'SAMPLE_RATE=8000'],
    {
      ARI_URL,
      ARI_USERNAME,
      ARI_PASSWORD,
      STREAM_URL: String(listening.url),
      STREAM_TOKEN,
      LOG_LEVEL: 'debug',
    },
    workdir,
  );
  running.push(service);
  onTestFailed(() => {
    console.log(
      `--- serve stdout\n${service.stdoutLines.slice(-60).join('\n')}\n--- serve stderr\n${service.stderr()}\n--- Asterisk\n${asteriskLogTail()}`,
    );
  });
  await service.line((e) => e.msg === 'service ready');

  const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
  const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 4000, target: ASTERISK_SIP });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  expect(callerResult.exitCode, callerResult.stderr).toBe(0);
  expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);

  const ended = [
    await receiver.line((e) => e.msg === 'stream ended' && e.label === 'CALLER1'),
    await receiver.line((e) => e.msg === 'stream ended' && e.label === 'CALLER2'),
  ];
  await service.line((e) => e.msg === 'call ended');
  await expectNothingLeftInAsterisk();

  for (const [entry, own, other] of [
    [ended[0]!, 440, 1330],
    [ended[1]!, 1330, 440],
  ] as const) {
    const wav = readFileSync(String(entry.file));
    expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(8000);
    const audio = wav.subarray(44);
    expect(audio.length).toBe(Number(entry.bytes));
    expect(audio.length / 2 / 8000).toBeGreaterThan(3);
    expect(toneMarginDb(audio, 8000, own, other)).toBeGreaterThanOrEqual(40);
  }

  service.child.kill('SIGTERM');
  receiver.child.kill('SIGTERM');
  expect(await service.exited).toBe(0);
  expect(await receiver.exited).toBe(0);
  running.length = 0;

  // stdout is for JSON log lines only (ari-client's swagger warning must not leak onto it).
  for (const text of [...service.stdoutLines, ...receiver.stdoutLines]) {
    expect(() => JSON.parse(text), text).not.toThrow();
  }
  expect(service.stderr()).toBe('');
  const everything = service.stdoutLines.join('\n') + receiver.stdoutLines.join('\n');
  expect(everything).not.toContain(ARI_PASSWORD);
  expect(everything).not.toContain(STREAM_TOKEN);
  expect(service.stdoutLines.some((l) => l.includes('"msg":"configuration loaded"'))).toBe(true);
});

it('serve exits 1 with a clear message when ARI refuses the password, and never prints it', async () => {
  const wrong = 'definitely-not-the-password';
  const service = runCli(['serve', '--set', 'DESTINATION_DOMAIN=127.0.0.1:5999'], { ARI_URL, ARI_USERNAME, ARI_PASSWORD: wrong });
  running.push(service);
  expect(await service.exited).toBe(1);
  expect(service.stderr()).toContain('refused the credentials of ARI_USERNAME');
  expect(service.stderr()).not.toMatch(/at .*\.js:\d+/); // a message, not a crash trace
  expect(service.stderr() + service.stdoutLines.join('\n')).not.toContain(wrong);
  for (const text of service.stdoutLines) expect(() => JSON.parse(text), text).not.toThrow();
});
