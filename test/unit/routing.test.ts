import { describe, expect, it } from 'vitest';
import { checkCallerId, checkDomain, checkNumber } from '../../app/routing/dial-validator.js';
import { mapDialledNumber, parseNumberMapping } from '../../app/routing/number-mapping.js';
import { parseSipUri } from '../../app/calls/inbound-plan.js';

describe('DIALED_NUMBER_MAPPING', () => {
  it('maps dialled numbers as in the seed (1233:4567,1234:5678)', () => {
    const mapping = parseNumberMapping('1233:4567, 1234:5678');
    expect(mapDialledNumber(mapping, '1233')).toBe('4567');
    expect(mapDialledNumber(mapping, '1234')).toBe('5678');
    expect(mapDialledNumber(mapping, '9999')).toBe('9999');
  });

  it('is empty for an empty value', () => {
    expect(parseNumberMapping('').size).toBe(0);
  });

  it.each([
    ['1233', 'not FROM:TO'],
    ['1233:4567:1', 'not FROM:TO'],
    ['1233:45&67', 'not allowed'],
    ['1233:4567,1233:1111', 'mapped twice'],
    ['12 33:4567', 'not allowed'],
  ])('rejects %j', (text, message) => {
    expect(() => parseNumberMapping(text)).toThrow(message);
  });
});

describe('dial validator', () => {
  it.each(['4567', '+4915112345', '*97', 'df3d29f1-856d-470d-887d-445f01541dcb', 'alice.smith'])('accepts the number %j', (number) => {
    expect(checkNumber(number)).toEqual({ ok: true });
  });

  it.each(['', '4567&PJSIP/evil', '4567/extra', '45,67', 'a@b', '45 67', '4567\r\nX-Injected: 1', '4567\u0000', '#1', 'x'.repeat(65)])(
    'refuses the number %j',
    (number) => {
      expect(checkNumber(number).ok).toBe(false);
    },
  );

  it.each(['sip.example.com', 'sip.example.com:5080', '127.0.0.1:5070', '[::1]:5060'])('accepts the domain %j', (domain) => {
    expect(checkDomain(domain)).toEqual({ ok: true });
  });

  it.each(['', 'a b', 'host:99999', 'host:5060&x', 'host/path', 'user@host'])('refuses the domain %j', (domain) => {
    expect(checkDomain(domain).ok).toBe(false);
  });

  it('allows an empty caller ID but not an injecting one', () => {
    expect(checkCallerId('').ok).toBe(true);
    expect(checkCallerId('1001').ok).toBe(true);
    expect(checkCallerId('1001\r\nVia: x').ok).toBe(false);
  });
});

describe('request URI user part', () => {
  it.each([
    ['sip:4567@127.0.0.1:5060', '4567'],
    ['sips:alice@example.com;transport=tls', 'alice'],
    ['sip:example.com', undefined],
    [undefined, undefined],
  ])('%j → %j', (uri, user) => {
    expect(parseSipUri(uri)?.user).toBe(user);
  });
});
