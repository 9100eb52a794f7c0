import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../app/logging/logger.js';
import { maskNumber, maskNumberish, redactUrlSecrets } from '../../app/logging/pii.js';

function capture(showPii = false) {
  const lines: Record<string, unknown>[] = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  return { logger: createLogger('debug', destination, { showPii }), lines, raw };
}

describe('masking numbers', () => {
  it.each([
    ['4567', '**67'],
    ['1001', '**01'],
    ['12', '**'],
    ['49301', '**301'],
    ['3349301234567', '*********4567'],
    ['+14155550100', '********0100'],
  ])('%s → %s', (number, masked) => {
    expect(maskNumber(number)).toBe(masked);
  });
  it('masks the user part of a SIP URI only', () => {
    expect(maskNumberish('sip:4567@pbx.example.com:5060')).toBe('sip:**67@pbx.example.com:5060');
  });
});

describe('URL credentials', () => {
  it.each([
    ['ws://127.0.0.1:8088/ari/events?app=a&api_key=user:secret', 'ws://127.0.0.1:8088/ari/events?app=a&api_key=[redacted]'],
    ['wss://x.example.com/s?token=abc.def&b=1', 'wss://x.example.com/s?token=[redacted]&b=1'],
    ['https://u:pw@example.com/x', 'https://[redacted]@example.com/x'],
    ['connect ECONNREFUSED 127.0.0.1:8088', 'connect ECONNREFUSED 127.0.0.1:8088'],
  ])('%s', (text, redacted) => {
    expect(redactUrlSecrets(text)).toBe(redacted);
  });
});

describe('the logger', () => {
  it('masks numbers under numbers and party keys, in fields and child bindings', () => {
    const { logger, raw, lines } = capture();
    logger
      .child({ caller: '1001' })
      .info({ numbers: { caller: '1001', dialled: '3349301234567', requestUri: 'sip:4567@pbx:5060' } }, 'routing call');
    logger.info({ metadata: { event: 'start', caller: '1001', callee: '4567' } }, 'stream started');
    expect(raw.join('\n')).not.toMatch(/(?<![0-9*])(1001|4567|3349301234567)/);
    expect(lines[0]).toMatchObject({
      caller: '**01',
      numbers: { caller: '**01', dialled: '*********4567', requestUri: 'sip:**67@pbx:5060' },
    });
    expect(lines[1]).toMatchObject({ metadata: { caller: '**01', callee: '**67' } });
  });
  it('leaves out DTMF digits and text from the other side', () => {
    const { logger, raw } = capture();
    logger.debug({ leg: 'A', digit: '7', durationMs: 120 }, 'DTMF');
    logger.debug({ serverText: '{"transcript":"my card number is"}' }, 'stream server message');
    logger.info({ message: { event: 'dtmf', digit: '9' } }, 'stream message');
    logger.info({ metadata: { event: 'start', meta: { customer: 'C-77-card' } } }, 'stream started');
    expect(raw.join('\n')).not.toMatch(/"7"|"9"|card number|C-77-card/);
    expect(raw[0]).toContain('"digit":"[hidden]"');
  });
  it('redacts URL credentials in fields, errors and message texts', () => {
    const { logger, raw, lines } = capture();
    logger.warn({ err: new Error('Unexpected server response: 401 ws://h/ari/events?api_key=u:pw1') }, 'lost ws://h/?token=tk2');
    logger.info({ url: 'wss://h/s?access_token=tk3' }, 'x');
    expect(raw.join('\n')).not.toMatch(/pw1|tk2|tk3/);
    expect(lines[0]).toMatchObject({ err: { type: 'Error', message: expect.stringContaining('api_key=[redacted]') } });
  });
  it('shows numbers, digits and texts with LOG_PII, but still no URL credentials', () => {
    const { logger, lines } = capture(true);
    logger.info({ numbers: { caller: '1001' }, digit: '7', url: 'ws://h/?token=tk' }, 'x');
    expect(lines[0]).toMatchObject({ numbers: { caller: '1001' }, digit: '7', url: 'ws://h/?token=[redacted]' });
  });
  it('still redacts secrets by path', () => {
    const { logger, raw } = capture();
    logger.info({ password: 'p4ss', config: { ARI_PASSWORD: 'p4ss' } }, 'x');
    expect(raw.join('\n')).not.toContain('p4ss');
  });
});
