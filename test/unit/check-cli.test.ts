/**
 * `transcription-proxy check` as a process, for what needs no Asterisk:
 * configuration and usage errors exit 2 (as for `serve`), and an unreachable
 * ARI and STREAM_URL are FAIL lines with exit 1, not a crash or a hang.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { closedTcpPort } from '../support/ports.js';
import { runCli } from '../support/cli-process.js';

it('an ARI and a STREAM_URL that accept TCP but never answer: FAIL lines within the time limits, no hang', async () => {
  const accepted: Socket[] = [];
  const silent = createServer((socket) => {
    accepted.push(socket);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  try {
    const cli = runCli(
      ['check', '--set', 'DESTINATION_DOMAIN=127.0.0.1:5070', '--set', 'ARI_PASSWORD=pw'],
      {
        ARI_URL: `http://127.0.0.1:${port}`,
        STREAM_URL: `ws://127.0.0.1:${port}`,
      },
      mkdtempSync(join(tmpdir(), 'atp-check-')),
    );
    expect(await cli.exited).toBe(1);
    const text = cli.stdoutLines.join('\n');
    expect(text).toMatch(/^FAIL +ARI +cannot reach ARI at .*: no answer within 5000 ms$/m);
    expect(text).toMatch(/^FAIL +stream +no websocket connection to .* within 5000 ms$/m);
  } finally {
    for (const socket of accepted) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
}, 20_000);

it('exits 2 on a configuration missing what serve requires, on stderr only, with no report', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atp-check-'));
  const cli = runCli(['check', '--set', 'ARI_PASSWORD=pw-not-printed'], {}, dir);
  expect(await cli.exited).toBe(2);
  expect(cli.stderr()).toContain('DESTINATION_DOMAIN (defaults): no route');
  expect(cli.stderr()).not.toContain('pw-not-printed');
  expect(cli.stdoutLines).toEqual([]);
});

it('exits 2 on an unknown option', async () => {
  expect(await runCli(['check', '--no-such-option']).exited).toBe(2);
});

it('unreachable ARI and STREAM_URL: FAIL lines, modules skipped, exit 1, no secret', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atp-check-'));
  const [ariPort, streamPort] = [await closedTcpPort(), await closedTcpPort()];
  const cli = runCli(
    ['check', '--set', 'DESTINATION_DOMAIN=127.0.0.1:5070'],
    {
      ARI_URL: `http://127.0.0.1:${ariPort}`,
      ARI_PASSWORD: 'ari-pw-not-printed',
      STREAM_URL: `ws://127.0.0.1:${streamPort}`,
      STREAM_TOKEN: 'stream-token-not-printed',
    },
    dir,
  );
  expect(await cli.exited).toBe(1);
  const text = cli.stdoutLines.join('\n');
  expect(text).toMatch(/^OK +configuration +valid/m);
  expect(text).toMatch(new RegExp(`^FAIL +ARI +cannot reach ARI at http://127.0.0.1:${ariPort}.*ECONNREFUSED`, 'm'));
  expect(text).toMatch(/^SKIP +modules +not checked/m);
  expect(text).toMatch(new RegExp(`^FAIL +stream +cannot open a websocket to ws://127.0.0.1:${streamPort}/.*ECONNREFUSED`, 'm'));
  expect(text).not.toContain('ari-pw-not-printed');
  expect(text).not.toContain('stream-token-not-printed');
  expect(cli.stderr()).toBe('');
}, 20_000);
