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
    const { config } = loadConfig({ cwd, env: {} });
    expect(config.ARI_PASSWORD).toBe('pa;ss#word');
    expect(config.STREAM_URL.href).toBe('wss://asr.example.com/listen?lang=en;x=1#frag');
    expect(config.STREAM_TOKEN).toBe('tok\\en;#');
    expect(config.AUDIO_CAPTURE).toBe(true);
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
    const problems = problemsOf(() =>
      loadConfig({
        cwd,
        env: { RTP_PORT_START: 'abc', DIALED_NUMBER_MAPPING: '1233:45&67' },
        flags: ['NOT_A_KEY=1', 'missing-equals'],
        required: ['ARI_PASSWORD'],
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'SAMPLE_RATE', source: `${iniPath}:1` }),
        expect.objectContaining({ key: 'STREAM_URL', source: `${iniPath}:2` }),
        expect.objectContaining({ key: 'RTP_PORT_START', source: 'environment' }),
        expect.objectContaining({ key: 'DIALED_NUMBER_MAPPING', source: 'environment' }),
        expect.objectContaining({ key: 'NOT_A_KEY', source: 'command line' }),
        expect.objectContaining({ key: 'missing-equals', source: 'command line' }),
        expect.objectContaining({ key: 'ARI_PASSWORD', source: 'defaults' }),
      ]),
    );
    expect(problems).toHaveLength(7);
  });

  it('rejects credentials in URLs, reversed port ranges and a wildcard bind without an advertised address', () => {
    const problems = problemsOf(() =>
      loadConfig({
        cwd: workdir(),
        env: { ARI_URL: 'http://user:pw@127.0.0.1:8088', RTP_PORT_START: '30000', RTP_PORT_END: '20000', MEDIA_BIND_HOST: '0.0.0.0' },
      }),
    );
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

describe("the seed proxy's sample config.ini, unchanged", () => {
  const fixture = new URL('../fixtures/seed-config.ini', import.meta.url).pathname;

  it("loads, with the seed's meaning for every key it sets", () => {
    const loaded = loadConfig({ cwd: workdir(), env: {}, configFile: fixture, requireRoute: true });
    const { config } = loaded;
    expect(config.HOST_DOMAIN).toBe('fs1lab.ascalon.ai'); // FREESWITCH_HOST_DOMAIN
    expect(config.SIP_GATEWAY_IP).toBe('SIPTRUNK_IP:64793'); // given twice: the later value
    expect(config.DESTINATION_DOMAIN).toBe('fs.ascalon.ai:5080');
    expect(config.LEFT_CHANNEL_NAME).toBe('CALLER1');
    expect(config.RIGHT_CHANNEL_NAME).toBe('CALLER2');
    expect([...config.DIALED_NUMBER_MAPPING]).toEqual([['1233', '4567']]);
    // Trunk mode: SIP_GATEWAY_IP wins over DESTINATION_DOMAIN, as in the seed.
    expect(config.routing.defaultDestination).toEqual({ kind: 'trunk', host: 'SIPTRUNK_IP:64793' });
    // The outbound gateway: OUT_SIP_GATEWAY_IP, OUTBOUND_CALL_EXT, OUTBOUND_CALLS_SECRET, prefix 33.
    expect(config.OUT_SIP_GATEWAY_IP).toBe('10.1.0.4');
    expect(config.OUTBOUND_CALL_EXT).toBe('1000');
    expect(config.OUTBOUND_CALLS_SECRET).toBe('1234');
    expect(config.OUTBOUND_REGISTER).toBe(false);
    expect(config.routing.outbound).toEqual({ prefix: '33' });
  });

  it('warns about the keys given twice and about trunk mode ignoring DESTINATION_DOMAIN', () => {
    const { warnings } = loadConfig({ cwd: workdir(), env: {}, configFile: fixture });
    expect(warnings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SIP_GATEWAY_IP is set twice .*the later value is used/),
        expect.stringMatching(/^DIALED_NUMBER_MAPPING is set twice .*the later value is used/),
        expect.stringContaining('DESTINATION_DOMAIN is not used'),
      ]),
    );
    expect(warnings).toHaveLength(3);
  });

  it('uses every key of the seed file: none is left over as ignored, and Voicegain is the provider', () => {
    const { config, ignoredKeys, origins } = loadConfig({ cwd: workdir(), env: {}, configFile: fixture });
    expect(ignoredKeys).toEqual([]);
    expect(config.PROVIDER).toBe('voicegain');
    expect(origins.PROVIDER).toMatch(/VG_GATEWAY_URL is set/);
    expect(config).toMatchObject({
      STREAM_MODE: 'stereo',
      SAMPLE_RATE: 8000,
      AUTH_NAME: 'fsproxy',
      CONTENT_INCREMENTAL: ['words'],
      SENSITIVITY: 1,
      AUDIO_CAPTURE: true,
      NOAUDIOTIMEOUT: 30000,
    });
    expect(config.WEBSOCKET_SERVER?.href).toBe('wss://mydomain.com:8765/');
  });
});

describe('providers and stream options', () => {
  const voicegain = {
    VG_GATEWAY_URL: 'https://api.voicegain.ai/v1/asr/transcribe/async',
    JWT_TOKEN: 'jwt',
    WEBSOCKET_SERVER: 'wss://results.example.com',
  };
  const keysOf = (env: Record<string, string>) =>
    problemsOf(() => loadConfig({ cwd: workdir(), env })).map((p) => `${p.key}: ${p.message}`);

  it('defaults to the generic websocket, split, at 16 kHz', () => {
    const { config } = loadConfig({ cwd: workdir(), env: {} });
    expect(config).toMatchObject({
      PROVIDER: 'websocket',
      STREAM_MODE: 'split',
      SAMPLE_RATE: 16000,
      STREAM_MESSAGE_DEFLATE: false,
      STREAM_HEART_BEAT: 1,
      STREAM_BUFFER_MS: 30_000,
      STREAM_DTMF: false,
      STREAM_EXTRA_HEADERS: {},
    });
  });

  it('feature codes: the blind-transfer code by default, off when empty, refused when malformed or when it begins like the pause code', () => {
    expect(loadConfig({ cwd: workdir(), env: {} }).config).toMatchObject({
      BLIND_TRANSFER_CODE: '##',
      TRANSFER_DIGIT_TIMEOUT_MS: 3000,
      PAUSE_DTMF_CODE: '*81',
    });
    expect(loadConfig({ cwd: workdir(), env: { BLIND_TRANSFER_CODE: '' } }).config.BLIND_TRANSFER_CODE).toBe('');
    expect(keysOf({ BLIND_TRANSFER_CODE: '#x' })).toEqual(['BLIND_TRANSFER_CODE: "#x" is not a DTMF code (2 to 8 of 0-9 * # A-D)']);
    expect(keysOf({ BLIND_TRANSFER_CODE: '*8' })).toEqual([
      'BLIND_TRANSFER_CODE: "*8" and PAUSE_DTMF_CODE "*81" (defaults) begin alike: keying one would run the other',
    ]);
    expect(keysOf({ TRANSFER_DIGIT_TIMEOUT_MS: '100' })).toEqual(['TRANSFER_DIGIT_TIMEOUT_MS: 100 is outside 1000..30000']);
  });

  it("STREAM_BUFFER_SIZE: 20 ms per message by default, multiples of 20 up to 1000, never longer with Twilio's protocol", () => {
    expect(loadConfig({ cwd: workdir(), env: {} }).config.STREAM_BUFFER_SIZE).toBe(20);
    expect(loadConfig({ cwd: workdir(), env: { STREAM_BUFFER_SIZE: '100' } }).config.STREAM_BUFFER_SIZE).toBe(100);
    expect(keysOf({ STREAM_BUFFER_SIZE: '30' })).toEqual(['STREAM_BUFFER_SIZE: 30 is not a multiple of 20']);
    expect(keysOf({ STREAM_BUFFER_SIZE: '0' })).toEqual(['STREAM_BUFFER_SIZE: 0 is outside 20..1000']);
    expect(keysOf({ PROVIDER: 'twilio', SAMPLE_RATE: '8000', STREAM_BUFFER_SIZE: '100' })).toEqual([
      'STREAM_BUFFER_SIZE: 100 with PROVIDER=twilio (environment): Twilio Media Streams carry 20 ms per message',
    ]);
  });

  it('fixes Voicegain to stereo at 8 kHz, and Twilio to 8 kHz', () => {
    expect(loadConfig({ cwd: workdir(), env: voicegain }).config).toMatchObject({
      PROVIDER: 'voicegain',
      STREAM_MODE: 'stereo',
      SAMPLE_RATE: 8000,
    });
    expect(loadConfig({ cwd: workdir(), env: { ...voicegain, STREAM_MODE: 'stereo', SAMPLE_RATE: '8000' } }).config.PROVIDER).toBe(
      'voicegain',
    );
    expect(loadConfig({ cwd: workdir(), env: { PROVIDER: 'twilio', SAMPLE_RATE: '8000' } }).config).toMatchObject({
      PROVIDER: 'twilio',
      SAMPLE_RATE: 8000,
    });
  });

  it('reports what a provider misses or cannot take at start-up, each by key and source', () => {
    expect(keysOf({ PROVIDER: 'voicegain' })).toEqual([
      "VG_GATEWAY_URL: required with PROVIDER=voicegain: the URL of Voicegain's async transcription API",
      'JWT_TOKEN: required with PROVIDER=voicegain: the Voicegain API token',
      'WEBSOCKET_SERVER: required with PROVIDER=voicegain: where Voicegain delivers the transcripts',
    ]);
    expect(keysOf({ ...voicegain, STREAM_MODE: 'split', SAMPLE_RATE: '16000' })).toEqual([
      'STREAM_MODE: PROVIDER=voicegain streams stereo, not split',
      'SAMPLE_RATE: PROVIDER=voicegain takes 8000, not 16000',
    ]);
    expect(keysOf({ PROVIDER: 'twilio', STREAM_MODE: 'stereo', SAMPLE_RATE: '16000' })).toEqual([
      'STREAM_MODE: PROVIDER=twilio sends both parties as two tracks of one stream; STREAM_MODE is for PROVIDER=websocket',
      'SAMPLE_RATE: PROVIDER=twilio takes 8000 (µ-law), not 16000',
    ]);
    expect(keysOf({ PROVIDER: 'deepgram', WEBSOCKET_SERVER: 'https://x' })).toEqual([
      'PROVIDER: "deepgram" is not one of websocket, voicegain, twilio',
      'WEBSOCKET_SERVER: must start with ws:// or wss://',
    ]);
    const problems = problemsOf(() => loadConfig({ cwd: workdir(), env: { PROVIDER: 'voicegain' } }));
    expect(problems[0]?.source).toBe('defaults');
  });

  it('reads STREAM_EXTRA_HEADERS as a JSON object of strings and refuses anything else', () => {
    expect(
      loadConfig({ cwd: workdir(), env: { STREAM_EXTRA_HEADERS: '{"X-Tenant":"a","Authorization":"Basic eA=="}' } }).config
        .STREAM_EXTRA_HEADERS,
    ).toEqual({ 'X-Tenant': 'a', Authorization: 'Basic eA==' });
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"X-Tenant":' })[0]).toMatch(/^STREAM_EXTRA_HEADERS: not JSON: /);
    expect(keysOf({ STREAM_EXTRA_HEADERS: '["a"]' })).toEqual(['STREAM_EXTRA_HEADERS: must be a JSON object of header names to strings']);
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"X-N":1}' })).toEqual(['STREAM_EXTRA_HEADERS: the value of X-N must be a string']);
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"X-A":"a\\r\\nX-B: b"}' })[0]).toMatch(
      /^STREAM_EXTRA_HEADERS: the value of X-A must be printable ASCII on one line/,
    );
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"X-A":" padded"}' })[0]).toMatch(
      /^STREAM_EXTRA_HEADERS: the value of X-A must be printable ASCII/,
    );
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"X-A":"café"}' })[0]).toMatch(
      /^STREAM_EXTRA_HEADERS: the value of X-A must be printable ASCII/,
    );
    expect(keysOf({ STREAM_EXTRA_HEADERS: '{"Bad Name":"a"}' })[0]).toMatch(/^STREAM_EXTRA_HEADERS: "Bad Name" is not a header name/);
  });

  it('checks TLS files when the service starts, not at the first call', () => {
    const dir = workdir({ 'ca.pem': 'x', 'cert.pem': 'x' });
    expect(keysOf({ STREAM_TLS_CA_FILE: join(dir, 'missing.pem') })).toEqual([
      `STREAM_TLS_CA_FILE: cannot read file ${join(dir, 'missing.pem')}`,
    ]);
    expect(keysOf({ STREAM_TLS_CA_FILE: 'NONE' })[0]).toMatch(/^STREAM_TLS_CA_FILE: NONE \(no certificate check\) is not supported/);
    expect(keysOf({ STREAM_TLS_CERT_FILE: join(dir, 'cert.pem') })).toEqual([
      'STREAM_TLS_KEY_FILE: STREAM_TLS_CERT_FILE and STREAM_TLS_KEY_FILE go together',
    ]);
    expect(loadConfig({ cwd: workdir(), env: { STREAM_TLS_CA_FILE: join(dir, 'ca.pem') } }).config.STREAM_TLS_CA_FILE).toBe(
      join(dir, 'ca.pem'),
    );
  });

  it('never shows STREAM_EXTRA_HEADERS or JWT_TOKEN in the described configuration', () => {
    const loaded = loadConfig({
      cwd: workdir(),
      env: { ...voicegain, JWT_TOKEN: 'jwt-secret-value', STREAM_EXTRA_HEADERS: '{"Authorization":"Bearer hdr-secret"}' },
    });
    const described = JSON.stringify(describeConfig(loaded));
    expect(described).not.toContain('jwt-secret-value');
    expect(described).not.toContain('hdr-secret');
    expect(describeConfig(loaded)).toMatchObject({ JWT_TOKEN: '[set]', STREAM_EXTRA_HEADERS: '[set]' });
  });
});

describe('routing rules in the ini file', () => {
  it('reads [rule NAME] sections in file order, before the DIALED_NUMBER_MAPPING rules', () => {
    const cwd = workdir({
      'config.ini': [
        'DESTINATION_DOMAIN=d.example.com',
        'DIALED_NUMBER_MAPPING=1233:4567',
        '[rule second]',
        'callee = 2\\d+',
        '[rule first]',
        'callee = 1\\d+; not a comment',
        'number = 9',
      ].join('\n'),
    });
    const { rules } = loadConfig({ cwd, env: {} }).config.routing;
    expect(rules.map((r) => r.name)).toEqual(['second', 'first', 'DIALED_NUMBER_MAPPING pair 1']);
    expect(rules[1]?.callee?.source).toBe('^(?:1\\d+; not a comment)$');
  });

  it('reports a bad rule by its section and file line', () => {
    const cwd = workdir({
      'config.ini':
        'DESTINATION_DOMAIN=d.example.com\n\n[rule bad]\ncallee = (unclosed\n[rule worse]\ncolour = red\n[rule refs]\ncallee = 1(\\d)\nnumber = $2\n[other]\nx=1\n',
    });
    const problems = problemsOf(() => loadConfig({ cwd, env: {} }));
    const iniPath = join(cwd, 'config.ini');
    expect(problems).toEqual([
      expect.objectContaining({ key: '[rule bad]', source: `${iniPath}:3`, message: expect.stringContaining('not a regular expression') }),
      expect.objectContaining({ key: '[rule worse]', source: `${iniPath}:5`, message: expect.stringContaining('unknown key "colour"') }),
      expect.objectContaining({ key: '[rule refs]', source: `${iniPath}:7`, message: expect.stringContaining('$2') }),
    ]);
  });

  it('needs a destination for every rule, and some route for serve', () => {
    const cwd = workdir({ 'config.ini': 'DIALED_NUMBER_MAPPING=1:2\n[rule r]\ncallee = 5\n' });
    const problems = problemsOf(() => loadConfig({ cwd, env: {}, requireRoute: true }));
    expect(problems.map((p) => p.key).sort()).toEqual(['DIALED_NUMBER_MAPPING', '[rule r]']);
    const none = problemsOf(() => loadConfig({ cwd: workdir(), env: {}, requireRoute: true }));
    expect(none).toEqual([expect.objectContaining({ key: 'DESTINATION_DOMAIN', message: expect.stringContaining('no route') })]);
  });

  it('accepts a configuration routed by rules alone', () => {
    const cwd = workdir({ 'config.ini': '[rule all]\ndestination = dialplan:from-internal\n' });
    expect(loadConfig({ cwd, env: {}, requireRoute: true }).config.routing.rules).toHaveLength(1);
  });
});

describe('operations settings', () => {
  it('defaults: ops endpoint on loopback, a 60 s drain, the host name as node', () => {
    const { config } = loadConfig({ cwd: workdir(), env: {} });
    expect(config.OPS_LISTEN).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.DRAIN_TIMEOUT_MS).toBe(60_000);
    expect(config.NODE_NAME).toMatch(/^[A-Za-z0-9_.-]{1,64}$/);
  });

  it('an empty OPS_LISTEN turns the endpoint off (an empty value is not "unset" here)', () => {
    expect(loadConfig({ cwd: workdir(), env: { OPS_LISTEN: '' } }).config.OPS_LISTEN).toBeUndefined();
    expect(loadConfig({ cwd: workdir({ 'config.ini': 'OPS_LISTEN=\n' }), env: {} }).config.OPS_LISTEN).toBeUndefined();
  });

  it('refuses an ops endpoint beyond loopback without OPS_TOKEN, naming the key', () => {
    const problems = problemsOf(() => loadConfig({ cwd: workdir(), env: { OPS_LISTEN: '0.0.0.0:9464' } }));
    expect(problems.map((p) => p.key)).toEqual(['OPS_TOKEN']);
    expect(loadConfig({ cwd: workdir(), env: { OPS_LISTEN: '0.0.0.0:9464', OPS_TOKEN: 'secret' } }).config.OPS_LISTEN).toEqual({
      host: '0.0.0.0',
      port: 9464,
    });
    expect(loadConfig({ cwd: workdir(), env: { OPS_LISTEN: '[::1]:9464' } }).config.OPS_LISTEN).toEqual({ host: '::1', port: 9464 });
  });

  it.each(['9464', 'host:', 'a b:1', '127.0.0.1:70000'])('refuses OPS_LISTEN=%s', (value) => {
    expect(problemsOf(() => loadConfig({ cwd: workdir(), env: { OPS_LISTEN: value } })).map((p) => p.key)).toEqual(['OPS_LISTEN']);
  });

  it('refuses a NODE_NAME that could not be a label', () => {
    expect(problemsOf(() => loadConfig({ cwd: workdir(), env: { NODE_NAME: 'cell 1' } })).map((p) => p.key)).toEqual(['NODE_NAME']);
  });
});
