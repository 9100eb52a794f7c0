/**
 * The soak's short version (docs/benchmarks.md, `npm run bench:soak` for the
 * whole one): scripts/bench-soak.mjs places 50 calls, 10 at a time, through
 * the test bed's Asterisk to the built service running as its own process.
 * It checks for leaks, not speed: every call yields both labelled streams,
 * each with the frames of the time it lasted; afterwards Asterisk holds no
 * channel or bridge, and the service holds no more UDP ports, TCP
 * connections, file descriptors or timers than it did idle (counted from
 * /proc and from what keeps its event loop alive).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../scripts/bench-soak.mjs', import.meta.url));
const CALLS = 50;

interface SoakResult {
  sipp: string;
  callsSeen: number;
  streams: number;
  problems: unknown[];
  leaks: Record<string, number>;
}

it(`${CALLS} calls, 10 at a time: both streams of every call whole, nothing left in Asterisk or the service`, async () => {
  const child = spawn(
    process.execPath,
    [SCRIPT, '--calls', String(CALLS), '--concurrent', '10', '--min-s', '3', '--max-s', '5', '--settle-s', '20'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise((resolve) => child.on('exit', resolve));
  const start = stdout.indexOf('{');
  expect(start, `no result from bench-soak: ${stderr.slice(-3000)}`).toBeGreaterThanOrEqual(0);
  const result = JSON.parse(stdout.slice(start)) as SoakResult;

  expect(result.sipp, stderr.slice(-2000)).toBe('ok');
  expect(result.callsSeen).toBe(CALLS);
  expect(result.streams).toBe(2 * CALLS);
  expect(result.problems).toEqual([]);
  expect(result.leaks).toEqual({
    asteriskChannels: 0,
    asteriskBridges: 0,
    fds: expect.any(Number),
    udpPorts: 0,
    tcp: expect.any(Number),
    timers: expect.any(Number),
  });
  expect(result.leaks.fds, 'file descriptors more than idle').toBeLessThanOrEqual(0);
  expect(result.leaks.tcp, 'TCP connections more than idle').toBeLessThanOrEqual(0);
  expect(result.leaks.timers, 'timers more than idle').toBeLessThanOrEqual(0);
}, 180_000);
