/**
 * The toll-fraud rule: with an outbound gateway configured, only agents' calls
 * may leave through it by the seed's length rule; a trunk's call to an E.164
 * DID never reaches the gateway unless a rule or the dialplan says so.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AriChannel } from '../../app/ari/ari-port.js';
import { planInboundCall } from '../../app/calls/inbound-plan.js';
import { loadConfig } from '../../app/config/load-config.js';
import { endpointOfChannel, isAgentCall, parseNamePatterns } from '../../app/routing/call-origin.js';

const GATEWAY = 'OUT_SIP_GATEWAY_IP=10.1.0.4:5060\nOUTBOUND_CALL_EXT=1000\nOUTBOUND_CALLS_SECRET=s3cret\nOUTBOUND_CALL_PREFIX=33\n';

function config(ini: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-toll-'));
  writeFileSync(join(cwd, 'config.ini'), ini);
  return loadConfig({ cwd, env: {} }).config;
}

function channel(name: string, context: string, exten: string): AriChannel {
  return {
    id: 'A',
    name,
    state: 'Ring',
    caller: { name: '', number: '14155550199' },
    connected: { name: '', number: '' },
    dialplan: { context, exten, priority: 1 },
  };
}

const facts = { requestUri: 'sip:14155550100@pbx.example.com', linkedId: 'L', headers: {} };
const trunkCall = channel('PJSIP/carrier-0000001a', 'from-trunk', '14155550100');

describe('a call from a trunk', () => {
  const cfg = config(`${GATEWAY}DESTINATION_DOMAIN=agents.example.com\nINTERNAL_CONTEXTS=from-internal\nINTERNAL_ENDPOINTS=2*\n`);
  it('to an 11-digit DID goes to the default destination, never to the gateway', () => {
    expect(planInboundCall(trunkCall, [], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'inbound',
      destination: { kind: 'domain', host: 'agents.example.com' },
      dialString: 'PJSIP/transcription-proxy-out/sip:14155550100@agents.example.com',
    });
  });
  it('with no default destination is refused, not sent out', () => {
    const noDefault = config(GATEWAY);
    expect(planInboundCall(trunkCall, [], facts, noDefault, 'c1')).toMatchObject({ ok: false, hangup: 'unallocated' });
  });
  it('reaches the gateway only by an explicit rule', () => {
    const ruled = config(
      `${GATEWAY}DESTINATION_DOMAIN=agents.example.com\n[rule forward]\ncallee = 1415555\\d{4}\ndestination = gateway\n`,
    );
    expect(planInboundCall(trunkCall, [], facts, ruled, 'c1')).toMatchObject({
      ok: true,
      direction: 'outbound',
      rule: expect.stringContaining('forward'),
    });
  });
});

describe("an agent's call", () => {
  const cfg = config(`${GATEWAY}DESTINATION_DOMAIN=agents.example.com\nINTERNAL_CONTEXTS=from-internal\nINTERNAL_ENDPOINTS=2*\n`);
  it('still goes out by the length rule, from an internal context', () => {
    expect(planInboundCall(channel('PJSIP/carrier-0000001b', 'from-internal', '3349301234567'), [], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'outbound',
      number: '49301234567',
      dialString: 'PJSIP/transcription-proxy-gateway/sip:49301234567@10.1.0.4:5060',
    });
  });
  it('still goes out by the length rule, from an internal endpoint', () => {
    expect(planInboundCall(channel('PJSIP/201-0000001c', 'transcription-proxy', '3349301234567'), [], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'outbound',
    });
  });
  it('goes out with direction=outbound (the `call` command) whatever its channel', () => {
    expect(planInboundCall(trunkCall, ['direction=outbound', 'number=3349301234567'], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'outbound',
    });
  });
});

describe('the agents side', () => {
  it('matches endpoints and contexts by name, * for any characters, nothing else', () => {
    const config = {
      INTERNAL_CONTEXTS: parseNamePatterns('from-internal, agents-*'),
      INTERNAL_ENDPOINTS: parseNamePatterns('2*,sales.desk'),
    };
    expect(isAgentCall({ name: 'PJSIP/201-00000001', dialplan: { context: 'x' } }, config)).toBe(true);
    expect(isAgentCall({ name: 'PJSIP/sales.desk-0000000a', dialplan: { context: 'x' } }, config)).toBe(true);
    expect(isAgentCall({ name: 'PJSIP/salesXdesk-0000000a', dialplan: { context: 'x' } }, config)).toBe(false);
    expect(isAgentCall({ name: 'PJSIP/carrier-00000001', dialplan: { context: 'agents-eu' } }, config)).toBe(true);
    expect(isAgentCall({ name: 'PJSIP/carrier-00000001', dialplan: { context: 'from-internal-x' } }, config)).toBe(false);
    expect(isAgentCall({ name: 'Local/201@from-internal-00000001;1', dialplan: { context: 'x' } }, config)).toBe(false);
  });
  it('reads the endpoint from a PJSIP channel name', () => {
    expect(endpointOfChannel('PJSIP/transcription-proxy-inbound-0000002a')).toBe('transcription-proxy-inbound');
    expect(endpointOfChannel('SIP/201-0000002a')).toBeUndefined();
  });
  it.each([
    ['PJSIP/2&PJSIP/evil-00000001', 'x'],
    ['PJSIP/2 1-00000001', 'x'],
    ['PJSIP/2\r\nX: y-00000001', 'x'],
    ['PJSIP/carrier-00000001', 'agents-${EXTEN}'],
    ['PJSIP/carrier-00000001', 'agents-eu\u0000'],
  ])('does not count a channel %j in context %j as an agent (injection table)', (name, context) => {
    const config = { INTERNAL_CONTEXTS: parseNamePatterns('agents-*'), INTERNAL_ENDPOINTS: parseNamePatterns('2*') };
    expect(isAgentCall({ name, dialplan: { context } }, config)).toBe(false);
  });
  it('refuses a pattern that is not a name', () => {
    expect(() => parseNamePatterns('from-internal,(.*)')).toThrow(/not a name or pattern/);
  });
  it('is empty by default: every call counts as a trunk call', () => {
    const cfg = config(`${GATEWAY}DESTINATION_DOMAIN=agents.example.com\n`);
    expect(planInboundCall(channel('PJSIP/201-00000001', 'from-internal', '3349301234567'), [], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'inbound',
    });
  });
});

describe("the seed's config.ini", () => {
  it('still loads, and its trunk calls to long numbers stay on the trunk', () => {
    const seed = readFileSync(new URL('../fixtures/seed-config.ini', import.meta.url), 'utf8');
    const cfg = config(seed);
    expect(cfg.routing.outbound).toEqual({ prefix: '33' });
    const plan = planInboundCall(trunkCall, [], { ...facts, requestUri: 'sip:14155550100@fs1lab.ascalon.ai' }, cfg, 'c1');
    expect(plan).toMatchObject({ ok: true, direction: 'inbound', destination: { kind: 'trunk' } });
  });
});
