/**
 * Start-up refusals that keep credentials off the wire and off the internet:
 * a token over ws:// or http:// beyond loopback, and the placeholder passwords
 * the project ships, used where anybody could reach them.
 */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../app/config/load-config.js';
import { PLACEHOLDER_SECRETS, isLoopbackHost } from '../../app/config/security-checks.js';
import { ConfigError } from '../../app/errors.js';
import { runCli } from '../support/cli-process.js';

const BASE = { ARI_PASSWORD: 'a-real-secret-1f0c', DESTINATION_DOMAIN: 'pbx.example.com' };

function problemsOf(env: Record<string, string>): string[] {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-sec-'));
  try {
    loadConfig({ cwd, env: { ...BASE, ...env } });
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems.map((problem) => `${problem.key}: ${problem.message}`);
  }
}

describe('tokens over unencrypted transport', () => {
  it.each<[Record<string, string>, string]>([
    [{ STREAM_URL: 'ws://198.51.100.7:8090', STREAM_TOKEN: 'tk' }, 'STREAM_TOKEN'],
    [{ PROVIDER: 'twilio', STREAM_URL: 'ws://asr.example.com/media', STREAM_TOKEN: 'tk' }, 'STREAM_TOKEN'],
    [{ STREAM_URL: 'ws://asr.example.com', STREAM_EXTRA_HEADERS: '{"authorization":"Basic eDp5"}' }, 'STREAM_EXTRA_HEADERS'],
    [
      { VG_GATEWAY_URL: 'http://api.example.com/v1/asr/transcribe/async', JWT_TOKEN: 'ey.x.y', WEBSOCKET_SERVER: 'wss://w.example.com' },
      'JWT_TOKEN',
    ],
  ])('%j is refused, naming %s', (env, key) => {
    const problems = problemsOf(env);
    expect(problems).toEqual([expect.stringMatching(new RegExp(`^${key}: .*unencrypted.*ALLOW_INSECURE_TRANSPORT=true`))]);
  });
  it.each<Record<string, string>>([
    { STREAM_URL: 'wss://asr.example.com', STREAM_TOKEN: 'tk' },
    { STREAM_URL: 'ws://127.0.0.1:8090', STREAM_TOKEN: 'tk' },
    { STREAM_URL: 'ws://[::1]:8090', STREAM_TOKEN: 'tk' },
    { STREAM_URL: 'ws://asr.example.com' },
    { STREAM_URL: 'ws://asr.example.com', STREAM_TOKEN: 'tk', ALLOW_INSECURE_TRANSPORT: 'true' },
    { VG_GATEWAY_URL: 'https://api.voicegain.ai/v1/asr/transcribe/async', JWT_TOKEN: 'ey.x.y', WEBSOCKET_SERVER: 'ws://w.example.com' },
    { VG_GATEWAY_URL: 'http://127.0.0.1:9000/async', JWT_TOKEN: 'ey.x.y', WEBSOCKET_SERVER: 'wss://w.example.com' },
  ])('%j is accepted', (env) => {
    expect(problemsOf(env)).toEqual([]);
  });
});

describe('placeholder passwords', () => {
  it('are exactly the ones the project ships in .env.example and asterisk/*/ari_*.conf', () => {
    const root = new URL('../../', import.meta.url);
    const shipped = new Set<string>();
    for (const match of readFileSync(new URL('.env.example', root), 'utf8').matchAll(/^(?:ARI_PASSWORD|AMI_SECRET)=(.+)$/gm))
      shipped.add(match[1]!.trim());
    for (const dir of ['asterisk/plain/', 'asterisk/freepbx/']) {
      for (const file of readdirSync(new URL(dir, root)).filter((name) => /^ari_.*\.conf$/.test(name))) {
        for (const match of readFileSync(new URL(dir + file, root), 'utf8').matchAll(/^password\s*=\s*(.+)$/gm))
          shipped.add(match[1]!.trim());
      }
    }
    expect([...shipped].sort()).toEqual([...PLACEHOLDER_SECRETS].sort());
  });
  it.each(PLACEHOLDER_SECRETS.filter((secret) => secret.includes('ari') || secret.startsWith('CHANGE')))(
    'ARI_PASSWORD=%s is refused when ARI is not on loopback',
    (secret) => {
      expect(problemsOf({ ARI_URL: 'http://pbx.example.com:8088', ARI_PASSWORD: secret })).toEqual([
        expect.stringMatching(/^ARI_PASSWORD: is the placeholder shipped with the project/),
      ]);
      expect(problemsOf({ ARI_URL: 'http://127.0.0.1:8088', ARI_PASSWORD: secret })).toEqual([]);
    },
  );
  it('AMI_SECRET placeholder is refused when AMI is not on loopback', () => {
    expect(problemsOf({ AMI_HOST: '198.51.100.3', AMI_USERNAME: 'u', AMI_SECRET: 'change-me-ami-secret' })).toEqual([
      expect.stringMatching(/^AMI_SECRET: is the placeholder/),
    ]);
    expect(problemsOf({ AMI_USERNAME: 'u', AMI_SECRET: 'change-me-ami-secret' })).toEqual([]);
  });
  it('knows loopback', () => {
    expect(['localhost', '127.0.0.1', '127.8.9.10', '::1', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['0.0.0.0', '198.51.100.1', 'pbx.example.com', '::', '128.0.0.1'].some(isLoopbackHost)).toBe(false);
  });
});

describe('serve', () => {
  it.each<[Record<string, string>, string]>([
    [{ STREAM_URL: 'ws://198.51.100.7:8090', STREAM_TOKEN: 'tk-must-not-print' }, 'STREAM_TOKEN (environment)'],
    [{ ARI_URL: 'http://198.51.100.2:8088', ARI_PASSWORD: 'change-me-ari-secret' }, 'ARI_PASSWORD (environment)'],
  ])('exits 2 on %j, naming the key', async (env, named) => {
    const cwd = mkdtempSync(join(tmpdir(), 'atp-sec-cli-'));
    writeFileSync(join(cwd, 'config.ini'), '');
    const cli = runCli(['serve'], { ...BASE, ...env }, cwd);
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toContain(named);
    expect(cli.stderr()).not.toContain('tk-must-not-print');
    expect(cli.stdoutLines).toEqual([]);
  });
});
