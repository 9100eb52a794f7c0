import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli-process.js';

it('exits 2 on a bad configuration, naming every bad key with its file and line, on stderr only', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'atp-cli-'));
  const ini = join(dir, 'bad.ini');
  writeFileSync(ini, '; comment\nSAMPLE_RATE=44100\nARI_PASSWORD=secret;with#marks\nSTREAM_URL=http://wrong\n');
  const cli = runCli(['serve', '--config', ini, '--set', 'RTP_PORT_START=x'], {}, dir);
  expect(await cli.exited).toBe(2);
  const stderr = cli.stderr();
  expect(stderr).toContain(`SAMPLE_RATE (${ini}:2)`);
  expect(stderr).toContain(`STREAM_URL (${ini}:4)`);
  expect(stderr).toContain('RTP_PORT_START (command line)');
  expect(stderr).toContain('DESTINATION_DOMAIN (defaults): no route');
  expect(stderr).not.toContain('secret;with#marks');
  expect(cli.stdoutLines).toEqual([]);
});

it('exits 2 on an unknown command or option', async () => {
  expect(await runCli(['serve', '--no-such-option']).exited).toBe(2);
  expect(await runCli(['frobnicate']).exited).toBe(2);
});

it('exits 0 for --help', async () => {
  const cli = runCli(['--help']);
  expect(await cli.exited).toBe(0);
  expect(cli.stdoutLines.join('\n')).toContain('serve');
});

describe("serve refuses each provider's configuration errors at start-up, before any call", () => {
  it.each([
    [
      'voicegain',
      'VG_GATEWAY_URL=https://api.voicegain.ai/v1/asr/transcribe/async\nSTREAM_MODE=split\nSAMPLE_RATE=16000\n',
      [
        'JWT_TOKEN (defaults): required with PROVIDER=voicegain',
        'WEBSOCKET_SERVER (defaults): required with PROVIDER=voicegain',
        'STREAM_MODE (INI:3): PROVIDER=voicegain streams stereo, not split',
        'SAMPLE_RATE (INI:4): PROVIDER=voicegain takes 8000, not 16000',
      ],
    ],
    [
      'twilio',
      'PROVIDER=twilio\nSTREAM_MODE=mixed\nSAMPLE_RATE=16000\n',
      [
        'STREAM_MODE (INI:3): PROVIDER=twilio sends both parties as two tracks',
        'SAMPLE_RATE (INI:4): PROVIDER=twilio takes 8000 (µ-law), not 16000',
      ],
    ],
    [
      'websocket',
      'PROVIDER=websocket\nSTREAM_EXTRA_HEADERS={"X-Tenant":\nSTREAM_TLS_CERT_FILE=/no/such/cert.pem\n',
      ['STREAM_EXTRA_HEADERS (INI:3): not JSON', 'STREAM_TLS_CERT_FILE (INI:4)'],
    ],
  ])('PROVIDER=%s: exit 2, every bad key named with its file and line, nothing started', async (_provider, body, expected) => {
    const dir = mkdtempSync(join(tmpdir(), 'atp-cli-'));
    const ini = join(dir, 'provider.ini');
    writeFileSync(ini, `DESTINATION_DOMAIN=127.0.0.1:5070\n${body}`);
    const cli = runCli(['serve', '--config', ini], {}, dir);
    expect(await cli.exited).toBe(2);
    const stderr = cli.stderr();
    for (const line of expected) expect(stderr).toContain(line.replace('INI', ini));
    // Nothing was started: no log line (no ARI connection, no listener) before the refusal.
    expect(cli.stdoutLines).toEqual([]);
  });

  it('never prints the Voicegain token while refusing the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atp-cli-'));
    const cli = runCli(
      [
        'serve',
        '--set',
        'VG_GATEWAY_URL=https://api.voicegain.ai/v1/asr/transcribe/async',
        '--set',
        'JWT_TOKEN=eyJ.secret-token.sig',
        '--set',
        'SAMPLE_RATE=16000',
      ],
      {},
      dir,
    );
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toContain('SAMPLE_RATE (command line): PROVIDER=voicegain takes 8000');
    expect(cli.stderr()).not.toContain('secret-token');
  });
});

describe('serve refuses handshake values the websocket client could not send, before anything reaches Asterisk', () => {
  it.each([
    ['STREAM_TOKEN', 'abc€', 'STREAM_TOKEN (environment): a Bearer token must be printable ASCII'],
    ['STREAM_TOKEN', 'two words', 'STREAM_TOKEN (environment): a Bearer token must be printable ASCII'],
    [
      'STREAM_EXTRA_HEADERS',
      '{"X-Tenant":"a\\u0007b"}',
      'STREAM_EXTRA_HEADERS (environment): the value of X-Tenant must be printable ASCII',
    ],
    ['STREAM_EXTRA_HEADERS', '{"X-Tenant":"a","x-tenant":"b"}', 'STREAM_EXTRA_HEADERS (environment): x-tenant is given twice'],
    ['STREAM_EXTRA_HEADERS', '{"X Tenant":"a"}', 'STREAM_EXTRA_HEADERS (environment): "X Tenant" is not a header name'],
    ['STREAM_SUBPROTOCOL', 'audio.v1,audio.v1', 'STREAM_SUBPROTOCOL (environment): "audio.v1" is named twice'],
    ['STREAM_SUBPROTOCOL', 'audio v1', 'STREAM_SUBPROTOCOL (environment): "audio v1" is not a subprotocol name'],
  ])('%s=%s: exit 2 naming the key', async (key, value, expected) => {
    let ariConnections = 0;
    const ari = createServer((socket) => {
      ariConnections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => ari.listen(0, '127.0.0.1', resolve));
    try {
      const dir = mkdtempSync(join(tmpdir(), 'atp-cli-'));
      const cli = runCli(
        ['serve'],
        {
          ARI_URL: `http://127.0.0.1:${(ari.address() as AddressInfo).port}`,
          ARI_PASSWORD: 'x',
          DESTINATION_DOMAIN: '127.0.0.1:5070',
          [key]: value,
        },
        dir,
      );
      expect(await cli.exited).toBe(2);
      expect(cli.stderr()).toContain(expected);
      expect(cli.stdoutLines).toEqual([]);
      expect(ariConnections, 'nothing reached ARI').toBe(0);
    } finally {
      await new Promise<void>((resolve) => ari.close(() => resolve()));
    }
  });
});
