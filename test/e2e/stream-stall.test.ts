/**
 * A transcription server that stops reading for 60 s while 10 calls run:
 * `serve` (its own process, so its memory can be read from /proc) must notice
 * the stall, keep each stream's audio within STREAM_BUFFER_MS, stay within the
 * memory bound docs/stream-format.md gives, and recover every stream once the
 * server reads again; no call may notice.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, it, onTestFailed } from 'vitest';
import { runCli, type CliProcess } from '../support/cli-process.js';
import { freeUdpPort, startSipp, type SippPeer } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { ARI_PASSWORD, ARI_URL, ARI_USERNAME, ASTERISK_SIP, expectNothingLeftInAsterisk } from '../support/testbed.js';
import { startWebsocketRelay, type WebsocketRelay } from '../support/websocket-relay.js';

const CALLS = 10;
const STALL_MS = 60_000;
/** docs/stream-format.md: plan 3 MiB of RSS a 16 kHz mono stream whose server is away, with the default 30 s buffer. */
const BOUND_PER_STREAM_BYTES = 3 * 1024 * 1024;

let streamServer: StrictStreamServer;
let relay: WebsocketRelay;
let serve: CliProcess | undefined;
const peers: SippPeer[] = [];

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  const target = new URL(streamServer.url);
  relay = await startWebsocketRelay({ host: target.hostname, port: Number(target.port) });
});

afterAll(async () => {
  await relay?.close();
  await streamServer?.close();
});

afterEach(async () => {
  for (const peer of peers.splice(0)) peer.kill();
  // Two signals: the drain ends at once (the calls were just killed).
  serve?.child.kill('SIGTERM');
  setTimeout(() => serve?.child.kill('SIGTERM'), 200).unref();
  await serve?.exited;
  await expectNothingLeftInAsterisk(10_000);
});

function rssBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

it(
  `a server that stops reading for 60 s while ${CALLS} calls run: memory within the bound, every stream recovers, no call affected`,
  async () => {
    const calleePort = await freeUdpPort();
    serve = runCli(['serve'], {
      ARI_URL,
      ARI_USERNAME,
      ARI_PASSWORD,
      DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`,
      STREAM_URL: relay.url,
      OPS_LISTEN: '127.0.0.1:0',
    });
    const running = serve;
    onTestFailed(() => {
      writeFileSync('/tmp/stall-serve.log', running.stdoutLines.join('\n'));
      console.log(
        `--- serve log\n${running.stdoutLines
          .filter((line) => !line.includes('leg B event'))
          .slice(-80)
          .join('\n')}`,
      );
      console.log(
        `--- streams: ${JSON.stringify(streamServer.streams.map((s) => [s.metadata?.label, s.metadata?.caller, s.metadata?.resumed, s.frames.length, s.closeCode]))}`,
      );
    });
    await serve.line((entry) => entry.msg === 'service ready');
    const holdMs = STALL_MS + 35_000;
    const timeoutSeconds = Math.ceil(holdMs / 1000) + 60;
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort, calls: CALLS, timeoutSeconds });
    const callers = await Promise.all(
      Array.from({ length: CALLS }, (_, i) =>
        startSipp({
          scenario: 'caller.xml',
          toneHz: 400 + 50 * i,
          service: '4567',
          callerId: `50${i}`,
          holdMs,
          target: ASTERISK_SIP,
          timeoutSeconds,
        }),
      ),
    );
    peers.push(callee, ...callers);
    await expect.poll(() => streamServer.streams.filter((s) => s.frames.length >= 100).length, { timeout: 20_000 }).toBe(2 * CALLS);
    const pid = serve.child.pid!;
    const baseline = rssBytes(pid);

    relay.stopReading(true);
    const stalledAt = Date.now();
    let peak = baseline;
    while (Date.now() - stalledAt < STALL_MS) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      peak = Math.max(peak, rssBytes(pid));
    }
    relay.stopReading(false);
    const grownMb = (peak - baseline) / 2 ** 20;
    console.log(
      `serve RSS: ${(baseline / 2 ** 20).toFixed(1)} MiB before the stall, peak ${(peak / 2 ** 20).toFixed(1)} MiB (+${grownMb.toFixed(1)} MiB for ${2 * CALLS} streams)`,
    );
    expect(peak - baseline, 'memory growth during the stall').toBeLessThanOrEqual(2 * CALLS * BOUND_PER_STREAM_BYTES);
    expect(
      serve.stdoutLines.some((line) => line.includes('the stream server did not answer the ping')),
      'the stall was noticed',
    ).toBe(true);

    // Every stream comes back, resumed, with fresh audio; the calls never noticed.
    await expect
      .poll(() => streamServer.streams.filter((s) => s.metadata?.resumed === true && s.frames.length >= 50).length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(2 * CALLS);
    for (const result of await Promise.all([...callers.map((c) => c.done), callee.done])) expect(result.exitCode, result.stderr).toBe(0);
    const resumed = streamServer.streams.filter((s) => s.metadata?.resumed === true);
    for (const stream of resumed) {
      expect(stream.violations).toEqual([]);
      // 60 s away with a 30 s buffer: about 30 s was dropped, and said so.
      expect(Number(stream.metadata?.droppedMs)).toBeGreaterThan(0);
    }
  },
  STALL_MS + 120_000,
);
