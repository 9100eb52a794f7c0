import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeConfig, loadConfig } from '../../app/config/load-config.js';
import { ConfigError } from '../../app/errors.js';

function workdir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'atp-config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

function problemsOf(run: () => unknown) {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe('CONFIG_INVALID');
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration defaults', () => {
  it('has the documented defaults when no source sets anything', () => {
    const { config, origins } = loadConfig({ cwd: workdir(), env: {} });
    expect(config.ARI_URL.href).toBe('http://127.0.0.1:8088/');
    expect(config.ARI_APP).toBe('transcription-proxy');
    expect(config.LEFT_CHANNEL_NAME).toBe('CALLER1');
    expect(config.RIGHT_CHANNEL_NAME).toBe('CALLER2');
    expect(config.SAMPLE_RATE).toBe(16000);
    expect(config.DIALED_NUMBER_MAPPING.size).toBe(0);
    expect(config.MEDIA_ADVERTISE_HOST).toBe(config.MEDIA_BIND_HOST);
    expect(config.STREAM_TOKEN).toBeUndefined();
    expect(origins.SAMPLE_RATE).toBe('defaults');
  });
});

describe('configuration sources and precedence', () => {
  it('applies defaults < ini < .env < environment < --set', () => {
    const cwd = workdir({
      'config.ini': 'ARI_APP=from-ini\nLEFT_CHANNEL_NAME=INI\nRIGHT_CHANNEL_NAME=INI\nSAMPLE_RATE=8000\nLOG_LEVEL=warn\n',
      '.env': 'LEFT_CHANNEL_NAME=DOTENV\nRIGHT_CHANNEL_NAME=DOTENV\nSAMPLE_RATE=8000\n',
    });
    const { config, origins } = loadConfig({
      cwd,
      env: { RIGHT_CHANNEL_NAME: 'ENV', SAMPLE_RATE: '8000' },
      flags: ['SAMPLE_RATE=16000'],
    });
    expect(config.ARI_APP).toBe('from-ini');
    expect(config.LEFT_CHANNEL_NAME).toBe('DOTENV');
    expect(config.RIGHT_CHANNEL_NAME).toBe('ENV');
    expect(config.SAMPLE_RATE).toBe(16000);
    expect(config.LOG_LEVEL).toBe('warn');
    expect(origins.ARI_APP).toBe(`${join(cwd, 'config.ini')}:1`);
    expect(origins.LEFT_CHANNEL_NAME).toBe(`${join(cwd, '.env')}:1`);
    expect(origins.RIGHT_CHANNEL_NAME).toBe('environment');
    expect(origins.SAMPLE_RATE).toBe('command line');
  });

  it('reads --config FILE instead of ./config.ini', () => {
    const cwd = workdir({ 'config.ini': 'ARI_APP=default-file\n', 'other.ini': 'ARI_APP=chosen-file\n' });
    expect(loadConfig({ cwd, env: {}, configFile: 'other.ini' }).config.ARI_APP).toBe('chosen-file');
    expect(loadConfig({ cwd, env: {} }).config.ARI_APP).toBe('default-file');
  });

  it('reports a --config file that does not exist', () => {
    const problems = problemsOf(() => loadConfig({ cwd: workdir(), env: {}, configFile: 'missing.ini' }));
    expect(problems).toEqual([expect.objectContaining({ key: '--config', source: 'command line' })]);
  });

  it('ignores environment variables that are not configuration keys', () => {
    const { warnings } = loadConfig({ cwd: workdir(), env: { PATH: '/bin', HOME: '/root' } });
    expect(warnings).toEqual([]);
  });
});

describe('values with ; and #', () => {
  it('keeps ; and # inside ini values and only treats whole lines as comments', () => {
    const cwd = workdir({
      'config.ini': [
        '; a comment',
        '   # an indented comment',
        'ARI_PASSWORD=pa;ss#word',
        'DESTINATION_DOMAIN=sip.example.com:5080',
        'STREAM_URL=wss://asr.example.com/listen?lang=en;x=1#frag',
        'STREAM_TOKEN=tok\\en;#',
        'AUDIO_CAPTURE=true',
      ].join('\n'),
    });
    const { config, ignoredKeys } = loadConfig({ cwd, env: {} });
    expect(config.ARI_PASSWORD).toBe('pa;ss#word');
    expect(config.STREAM_URL.href).toBe('wss://asr.example.com/listen?lang=en;x=1#frag');
    expect(config.STREAM_TOKEN).toBe('tok\\en;#');
    expect(ignoredKeys).toEqual(['AUDIO_CAPTURE']);
  });

  it('keeps ; and # inside .env values', () => {
    const cwd = workdir({ '.env': '# comment\nexport ARI_PASSWORD=a;b#c\nSTREAM_TOKEN="quoted;#"\n' });
    const { config } = loadConfig({ cwd, env: {} });
    expect(config.ARI_PASSWORD).toBe('a;b#c');
    expect(config.STREAM_TOKEN).toBe('quoted;#');
  });

  it('trims trailing spaces of values', () => {
    const cwd = workdir({ 'config.ini': 'DIAL_TIMEOUT_MS=30000   \nARI_APP=  spaced  \n' });
    const { config } = loadConfig({ cwd, env: {} });
    expect(config.DIAL_TIMEOUT_MS).toBe(30000);
    expect(config.ARI_APP).toBe('spaced');
  });
});

describe('configuration errors', () => {
  it('reports every problem at once, each with its key and source', () => {
    const cwd = workdir({ 'config.ini': 'SAMPLE_RATE=44100\nSTREAM_URL=http://not-a-websocket\n' });
    const iniPath = join(cwd, 'config.ini');
    const problems = problemsOf(() => loadConfig({
      cwd,
      env: { RTP_PORT_START: 'abc', DIALED_NUMBER_MAPPING: '1233:45&67' },
      flags: ['NOT_A_KEY=1', 'missing-equals'],
      required: ['ARI_PASSWORD'],
    }));
    expect(problems).toEqual(expect.arrayContaining([
      expect.objectContaining({ key: 'SAMPLE_RATE', source: `${iniPath}:1` }),
      expect.objectContaining({ key: 'STREAM_URL', source: `${iniPath}:2` }),
      expect.objectContaining({ key: 'RTP_PORT_START', source: 'environment' }),
      expect.objectContaining({ key: 'DIALED_NUMBER_MAPPING', source: 'environment' }),
      expect.objectContaining({ key: 'NOT_A_KEY', source: 'command line' }),
      expect.objectContaining({ key: 'missing-equals', source: 'command line' }),
      expect.objectContaining({ key: 'ARI_PASSWORD', source: 'defaults' }),
    ]));
    expect(problems).toHaveLength(7);
  });

  it('rejects credentials in URLs, reversed port ranges and a wildcard bind without an advertised address', () => {
    const problems = problemsOf(() => loadConfig({
      cwd: workdir(),
      env: { ARI_URL: 'http://user:pw@127.0.0.1:8088', RTP_PORT_START: '30000', RTP_PORT_END: '20000', MEDIA_BIND_HOST: '0.0.0.0' },
    }));
    expect(problems.map((p) => p.key).sort()).toEqual(['ARI_URL', 'MEDIA_ADVERTISE_HOST', 'RTP_PORT_END']);
  });

  it('warns about unknown keys in files without failing', () => {
    const cwd = workdir({ 'config.ini': 'SOMETHING_ELSE=1\n' });
    const { warnings } = loadConfig({ cwd, env: {} });
    expect(warnings).toEqual([expect.stringContaining('SOMETHING_ELSE')]);
  });
});

describe('secrets', () => {
  it('never appear in the loggable description of the configuration', () => {
    const cwd = workdir({ 'config.ini': 'ARI_PASSWORD=hunter2-ari\nSTREAM_TOKEN=hunter2-stream\nJWT_TOKEN=hunter2-jwt\n' });
    const loaded = loadConfig({ cwd, env: {} });
    const text = JSON.stringify(describeConfig(loaded));
    expect(text).not.toMatch(/hunter2/);
    expect(describeConfig(loaded).ARI_PASSWORD).toBe('[set]');
  });
});
