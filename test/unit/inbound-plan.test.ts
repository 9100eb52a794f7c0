import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AriChannel } from '../../app/ari/ari-port.js';
import { LOOP_HEADER, LOOP_VARIABLE, planInboundCall, type LegAFacts, TRANSFER_HANDLING_VARIABLE } from '../../app/calls/inbound-plan.js';
import { loadConfig } from '../../app/config/load-config.js';

function config(ini = '', env: Record<string, string> = {}) {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-plan-'));
  writeFileSync(join(cwd, 'config.ini'), ini);
  return loadConfig({ cwd, env }).config;
}

function channel(exten: string, caller = '1001'): AriChannel {
  return {
    id: 'A1',
    name: 'PJSIP/x',
    state: 'Ring',
    caller: { name: '', number: caller },
    connected: { name: '', number: '' },
    dialplan: { context: 'in', exten, priority: 1 },
  };
}

const facts = (overrides: Partial<LegAFacts> = {}): LegAFacts => ({
  requestUri: 'sip:4567@pbx.example.com:5060',
  linkedId: 'L1',
  headers: {},
  ...overrides,
});

const CALL_ID = 'call-1';

describe('where the dialled number comes from', () => {
  const cfg = config('DESTINATION_DOMAIN=dest.example.com\n');
  it('prefers a number= Stasis argument', () => {
    const plan = planInboundCall(channel('5555'), ['number=7777'], facts(), cfg, CALL_ID);
    expect(plan).toMatchObject({ ok: true, dialled: '7777' });
  });
  it('then the extension when it is not s', () => {
    expect(planInboundCall(channel('5555'), [], facts(), cfg, CALL_ID)).toMatchObject({ ok: true, dialled: '5555' });
  });
  it('then the request URI user part for s', () => {
    expect(planInboundCall(channel('s'), [], facts(), cfg, CALL_ID)).toMatchObject({ ok: true, dialled: '4567' });
  });
  it('treats number=s (FreePBX without a DID) as no number given', () => {
    expect(planInboundCall(channel('s'), ['number=s'], facts(), cfg, CALL_ID)).toMatchObject({ ok: true, dialled: '4567' });
  });
  it('refuses a call with no number at all', () => {
    expect(planInboundCall(channel('s'), [], facts({ requestUri: undefined }), cfg, CALL_ID)).toMatchObject({
      ok: false,
      hangup: 'unallocated',
    });
  });
});

describe("host-domain check (HOST_DOMAIN, the seed's FREESWITCH_HOST_DOMAIN)", () => {
  it.each([
    ['pbx.example.com', 'sip:4567@pbx.example.com:5060', true],
    ['PBX.example.com', 'sip:4567@pbx.EXAMPLE.com', true],
    ['pbx.example.com:5060', 'sip:4567@pbx.example.com:5060', true],
    ['pbx.example.com:5080', 'sip:4567@pbx.example.com:5060', false],
    ['pbx.example.com', 'sip:4567@other.example.com', false],
    ['pbx.example.com', 'sip:4567@pbx.example.com.evil.net', false],
  ])('HOST_DOMAIN=%s, request URI %s → taken: %s', (hostDomain, requestUri, taken) => {
    const cfg = config(`FREESWITCH_HOST_DOMAIN=${hostDomain}\nDESTINATION_DOMAIN=dest.example.com\n`);
    const plan = planInboundCall(channel('4567'), [], facts({ requestUri }), cfg, CALL_ID);
    if (taken) expect(plan.ok).toBe(true);
    else expect(plan).toMatchObject({ ok: false, hangup: 'rejected', reason: expect.stringContaining('HOST_DOMAIN') });
  });
  it.each([undefined, 'tel:+14155550100', 'not a uri', '<sip:4567@pbx.example.com>'])(
    'fails closed: request URI %j cannot be read → 403',
    (requestUri) => {
      const cfg = config('HOST_DOMAIN=pbx.example.com\nDESTINATION_DOMAIN=dest.example.com\n');
      expect(planInboundCall(channel('4567'), [], facts({ requestUri }), cfg, CALL_ID)).toMatchObject({
        ok: false,
        hangup: 'rejected',
        reason: expect.stringContaining('cannot be read'),
      });
    },
  );
  it('does not apply to an outbound call by the dialplan (direction=outbound: no inbound request URI)', () => {
    const cfg = config(
      'HOST_DOMAIN=pbx.example.com\nDESTINATION_DOMAIN=dest.example.com\nOUT_SIP_GATEWAY_IP=10.1.0.4\nOUTBOUND_CALL_EXT=1000\nOUTBOUND_CALLS_SECRET=x\n',
    );
    expect(planInboundCall(channel('s'), ['direction=outbound', 'number=4930123'], facts({ requestUri: undefined }), cfg, CALL_ID).ok).toBe(
      true,
    );
  });
});

describe('loops', () => {
  const cfg = config('DESTINATION_DOMAIN=dest.example.com\n');
  it('refuses a call carrying our SIP header or channel variable', () => {
    expect(planInboundCall(channel('4567'), [], facts({ loopHeader: 'c0' }), cfg, CALL_ID)).toMatchObject({
      ok: false,
      hangup: 'rejected',
    });
    expect(planInboundCall(channel('4567'), [], facts({ loopVariable: 'c0' }), cfg, CALL_ID)).toMatchObject({
      ok: false,
      hangup: 'rejected',
    });
  });
  it('marks leg B with both', () => {
    const plan = planInboundCall(channel('4567'), [], facts(), cfg, CALL_ID);
    expect(plan.ok && plan.variables).toMatchObject({ [`__${LOOP_VARIABLE}`]: CALL_ID, [`PJSIP_HEADER(add,${LOOP_HEADER})`]: CALL_ID });
  });
});

describe('trunk mode, domain mode and dialplan targets', () => {
  it('sends leg B to DESTINATION_DOMAIN through DESTINATION_ENDPOINT, with the mapping applied', () => {
    const plan = planInboundCall(
      channel('1233'),
      [],
      facts(),
      config('DESTINATION_DOMAIN=dest.example.com:5080\nDIALED_NUMBER_MAPPING=1233:4567\n'),
      CALL_ID,
    );
    expect(plan).toMatchObject({ ok: true, number: '4567', dialString: 'PJSIP/transcription-proxy-out/sip:4567@dest.example.com:5080' });
  });
  it('prefers SIP_GATEWAY_IP (trunk mode), with the mapping applied too', () => {
    const cfg = config(
      'DESTINATION_DOMAIN=dest.example.com\nSIP_GATEWAY_IP=10.1.0.4:64793\nSIP_GATEWAY_ENDPOINT=my-trunk\nDIALED_NUMBER_MAPPING=1233:4567\n',
    );
    expect(planInboundCall(channel('1233'), [], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      dialString: 'PJSIP/my-trunk/sip:4567@10.1.0.4:64793',
    });
  });
  it('reaches a dialplan target as a non-optimising Local channel, without SIP headers', () => {
    const plan = planInboundCall(
      channel('4567'),
      ['destination=dialplan:from-internal'],
      facts(),
      config('DESTINATION_DOMAIN=d.example.com\n'),
      CALL_ID,
    );
    expect(plan).toMatchObject({ ok: true, dialString: 'Local/4567@from-internal/n' });
    expect(plan.ok && Object.keys(plan.variables).some((name) => name.startsWith('PJSIP_HEADER'))).toBe(false);
    expect(plan.ok && plan.variables[`__${LOOP_VARIABLE}`]).toBe(CALL_ID);
  });
  it('refuses with 404 when nothing routes the call', () => {
    const cfg = config('[rule only]\ncallee = 9\\d+\ndestination = domain:d.example.com\n');
    expect(planInboundCall(channel('4567'), [], facts(), cfg, CALL_ID)).toMatchObject({ ok: false, hangup: 'unallocated' });
  });
});

describe('rules and rule sets', () => {
  const cfg = config(
    [
      'DESTINATION_DOMAIN=default.example.com',
      '[rule strip]',
      'callee = 55(\\d{4})',
      'number = $1',
      '[rule vip]',
      'caller = 1\\d{3}',
      'callee = 7(?<ext>\\d{3})',
      'number = 9$<ext>',
      'destination = trunk:10.0.0.9',
      '[rule sales]',
      'set = sales',
      'destination = dialplan:sales-queue',
    ].join('\n'),
  );

  it('substitutes capture groups, first match wins', () => {
    expect(planInboundCall(channel('551234'), [], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      number: '1234',
      dialString: 'PJSIP/transcription-proxy-out/sip:1234@default.example.com',
    });
  });
  it('matches the caller too, and named groups', () => {
    expect(planInboundCall(channel('7123', '1001'), [], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      number: '9123',
      dialString: 'PJSIP/transcription-proxy-out/sip:9123@10.0.0.9',
    });
    expect(planInboundCall(channel('7123', '2001'), [], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      number: '7123',
      dialString: 'PJSIP/transcription-proxy-out/sip:7123@default.example.com',
    });
  });
  it('matches whole strings only', () => {
    expect(planInboundCall(channel('5512345'), [], facts(), cfg, CALL_ID)).toMatchObject({ ok: true, number: '5512345' });
  });
  it('uses the rule set the dialplan chose', () => {
    expect(planInboundCall(channel('551234'), ['rules=sales'], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      number: '551234',
      dialString: 'Local/551234@sales-queue/n',
    });
  });
  it('refuses an unknown rule set and bad Stasis arguments', () => {
    expect(planInboundCall(channel('4567'), ['rules=nope'], facts(), cfg, CALL_ID)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('unknown rule set'),
    });
    expect(planInboundCall(channel('4567'), ['colour=blue'], facts(), cfg, CALL_ID)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('unknown argument'),
    });
    expect(planInboundCall(channel('4567'), ['destination=ftp:x'], facts(), cfg, CALL_ID)).toMatchObject({ ok: false });
  });
  it("lets destination= override the rule's destination", () => {
    expect(planInboundCall(channel('551234'), ['destination=domain:other.example.com'], facts(), cfg, CALL_ID)).toMatchObject({
      ok: true,
      dialString: 'PJSIP/transcription-proxy-out/sip:1234@other.example.com',
    });
  });
  it('refuses a substitution that produces an undialable number', () => {
    const bad = config('DESTINATION_DOMAIN=d.example.com\n[rule r]\ncallee = (.*)\nnumber = $1\n');
    expect(planInboundCall(channel('s'), ['number=12'], facts(), bad, CALL_ID).ok).toBe(true);
    expect(planInboundCall(channel('4&5'), [], facts(), bad, CALL_ID)).toMatchObject({ ok: false, hangup: 'unallocated' });
  });
});

describe('headers on leg B', () => {
  const cfg = config('DESTINATION_DOMAIN=d.example.com\nPASS_HEADERS=X-Customer-Id,X-Campaign,X-Absent\nUNIQUE_CALL_ID_HEADER=X-Call\n');
  it('carries the call id, the session id (linkedId) and the chosen X- headers of leg A', () => {
    const plan = planInboundCall(
      channel('4567'),
      [],
      facts({ headers: { 'X-Customer-Id': 'C-42', 'X-Campaign': 'spring sale' } }),
      cfg,
      CALL_ID,
    );
    expect(plan.ok && plan.variables).toEqual({
      [`__${LOOP_VARIABLE}`]: CALL_ID,
      'CONNECTEDLINE(num)': '1001',
      [`PJSIP_HEADER(add,${LOOP_HEADER})`]: CALL_ID,
      'PJSIP_HEADER(add,X-Call)': CALL_ID,
      'PJSIP_HEADER(add,OUTBOUND_CALL_SESSION_ID)': 'L1',
      'PJSIP_HEADER(add,X-Customer-Id)': 'C-42',
      'PJSIP_HEADER(add,X-Campaign)': 'spring sale',
      [TRANSFER_HANDLING_VARIABLE]: 'ari-only',
    });
  });
  it.each([
    ['CR/LF', 'C-42\r\nVia: evil'],
    ['a NUL', 'C\u000042'],
    ['non-ASCII', 'Ünïcode'],
    ['over-long', 'x'.repeat(300)],
  ])('drops a header value with %s and says why', (_what, value) => {
    const plan = planInboundCall(channel('4567'), [], facts({ headers: { 'X-Customer-Id': value } }), cfg, CALL_ID);
    expect(plan.ok).toBe(true);
    expect(plan.ok && plan.variables['PJSIP_HEADER(add,X-Customer-Id)']).toBeUndefined();
    expect(plan.ok && plan.dropped).toEqual([expect.stringContaining('X-Customer-Id')]);
  });
  it('does not pass on a caller ID that could inject', () => {
    const plan = planInboundCall(channel('4567', '1001\r\nX: y'), [], facts(), cfg, CALL_ID);
    expect(plan.ok && plan.variables['CONNECTEDLINE(num)']).toBeUndefined();
    expect(plan.ok && plan.dropped).toEqual([expect.stringContaining('caller ID')]);
  });
});

describe('injection attempts in the dialled number', () => {
  const cfg = config('DESTINATION_DOMAIN=d.example.com\n');
  it.each([
    '4567&PJSIP/evil',
    '4567/n',
    '4567,1',
    '4567@evil.example.com',
    '45 67',
    '4567\r\nX: y',
    '4567\u0007',
    '9'.repeat(65),
    '${EXTEN}',
    '4567)',
  ])('refuses %j before anything is dialled', (dialled) => {
    expect(planInboundCall(channel('s'), [], facts({ requestUri: undefined }), cfg, CALL_ID).ok).toBe(false);
    expect(planInboundCall(channel(dialled), [], facts(), cfg, CALL_ID)).toMatchObject({ ok: false, hangup: 'unallocated' });
    expect(planInboundCall(channel('s'), [`number=${dialled}`], facts(), cfg, CALL_ID)).toMatchObject({ ok: false });
  });
});

describe('reasons carry no number (they are logged; numbers only masked, under numbers)', () => {
  it.each<[string, string[], string]>([
    ['[rule r]\ncallee = (\\d+)\nnumber = $1@evil\n', [], '4567'],
    ['', ['number=4567&PJSIP/evil'], 's'],
    ['', ['4567'], 's'],
  ])('ini %j, arguments %j', (rules, args, exten) => {
    const cfg = config(`DESTINATION_DOMAIN=dest.example.com\n${rules}`);
    const plan = planInboundCall(channel(exten), args, facts(), cfg, CALL_ID);
    expect(plan.ok).toBe(false);
    expect(!plan.ok && plan.reason).not.toContain('4567');
  });
});
