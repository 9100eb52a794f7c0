import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { AriChannel, AriPort } from '../../app/ari/ari-port.js';
import { planInboundCall } from '../../app/calls/inbound-plan.js';
import { loadConfig } from '../../app/config/load-config.js';
import { GATEWAY_ENDPOINT, gatewayObjects, gatewaySettings } from '../../app/outbound/gateway.js';
import { provisionGateway } from '../../app/outbound/gateway-provisioner.js';

const GATEWAY = 'OUT_SIP_GATEWAY_IP=10.1.0.4:5060\nOUTBOUND_CALL_EXT=1000\nOUTBOUND_CALLS_SECRET=s3cr;t\nOUTBOUND_CALL_PREFIX=33\n';

function config(ini: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-out-'));
  writeFileSync(join(cwd, 'config.ini'), ini);
  return loadConfig({ cwd, env: {} }).config;
}

const agent = (exten: string): AriChannel => ({
  id: 'A',
  name: 'PJSIP/1000',
  state: 'Up',
  caller: { name: '', number: '1000' },
  connected: { name: '', number: '' },
  dialplan: { context: 'c', exten, priority: 1 },
});
const facts = { requestUri: undefined, linkedId: 'L', headers: {} };

describe('outbound routing', () => {
  it('sends direction=outbound out through the gateway with the prefix stripped', () => {
    const plan = planInboundCall(agent('s'), ['direction=outbound', 'number=3344123456'], facts, config(GATEWAY), 'c1');
    expect(plan).toMatchObject({
      ok: true,
      direction: 'outbound',
      number: '44123456',
      dialString: `PJSIP/${GATEWAY_ENDPOINT}/sip:44123456@10.1.0.4:5060`,
    });
  });

  it("treats an agent's number longer than 10 digits as outbound when no rule matches (the seed's rule)", () => {
    const cfg = config(`${GATEWAY}DESTINATION_DOMAIN=pbx.example.com\nINTERNAL_CONTEXTS=c\n[rule short]\ncallee = \\d{4}\n`);
    expect(planInboundCall(agent('33491234567890'), [], facts, cfg, 'c1')).toMatchObject({
      ok: true,
      direction: 'outbound',
      number: '491234567890',
    });
    expect(planInboundCall(agent('1234'), [], facts, cfg, 'c1')).toMatchObject({ ok: true, direction: 'inbound' });
    expect(planInboundCall(agent('1234567890'), [], facts, cfg, 'c1')).toMatchObject({ ok: true, direction: 'inbound' });
  });

  it('keeps long numbers inbound when no outbound gateway is configured', () => {
    expect(planInboundCall(agent('4930123456789'), [], facts, config('DESTINATION_DOMAIN=pbx.example.com\n'), 'c1')).toMatchObject({
      ok: true,
      direction: 'inbound',
    });
  });

  it('refuses an outbound call when the outbound settings are missing, naming them', () => {
    const plan = planInboundCall(
      agent('s'),
      ['direction=outbound', 'number=44123'],
      facts,
      config('DESTINATION_DOMAIN=pbx.example.com\nOUT_SIP_GATEWAY_IP=10.1.0.4\n'),
      'c1',
    );
    expect(plan).toMatchObject({ ok: false, reason: expect.stringContaining('OUTBOUND_CALL_EXT, OUTBOUND_CALLS_SECRET') });
  });

  it('is a rule destination too, in its place in the rule order', () => {
    const cfg = config(`${GATEWAY}DESTINATION_DOMAIN=pbx.example.com\n[rule out]\ncallee = 0(\\d+)\nnumber = $1\ndestination = gateway\n`);
    expect(planInboundCall(agent('0441234'), [], facts, cfg, 'c1')).toMatchObject({ ok: true, direction: 'outbound', number: '441234' });
  });
});

describe('the gateway objects', () => {
  it('are auth, aor and endpoint, plus a registration only when OUTBOUND_REGISTER is on', () => {
    const settings = gatewaySettings(config(GATEWAY));
    if ('missing' in settings) throw new Error('expected settings');
    expect(gatewayObjects(settings).map((o) => o.type)).toEqual(['auth', 'aor', 'endpoint']);
    const registering = gatewaySettings(config(`${GATEWAY}OUTBOUND_REGISTER=yes\n`));
    if ('missing' in registering) throw new Error('expected settings');
    const objects = gatewayObjects(registering);
    expect(objects.map((o) => o.type)).toEqual(['auth', 'aor', 'endpoint', 'registration']);
    expect(objects[0]?.fields).toMatchObject({ username: '1000', password: 's3cr;t' });
    expect(objects[3]?.fields).toMatchObject({ server_uri: 'sip:10.1.0.4:5060', client_uri: 'sip:1000@10.1.0.4:5060' });
  });
});

describe('provisioning', () => {
  /** An in-memory ARI config store that normalises booleans as Asterisk does. */
  function store() {
    const objects = new Map<string, Record<string, string>>();
    const puts: string[] = [];
    const ari = {
      async getConfigObject(type: string, name: string) {
        return objects.get(`${type}/${name}`);
      },
      async putConfigObject(type: string, name: string, fields: Record<string, string>) {
        puts.push(`${type}/${name}`);
        objects.set(
          `${type}/${name}`,
          Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v === 'yes' ? 'true' : v === 'no' ? 'false' : v])),
        );
      },
    } as unknown as AriPort;
    return { ari, objects, puts };
  }
  const silent = pino({ level: 'silent' });

  it('creates what is missing, leaves what matches alone, and rewrites what changed', async () => {
    const { ari, objects, puts } = store();
    const first = await provisionGateway(ari, config(GATEWAY), silent);
    expect(first.created).toEqual([
      'auth/transcription-proxy-gateway-auth',
      'aor/transcription-proxy-gateway',
      'endpoint/transcription-proxy-gateway',
    ]);
    const again = await provisionGateway(ari, config(GATEWAY), silent);
    expect(again).toMatchObject({ created: [], updated: [] });
    expect(puts).toHaveLength(3);
    const changed = await provisionGateway(ari, config(GATEWAY.replace('s3cr;t', 'n3w')), silent);
    expect(changed.updated).toEqual(['auth/transcription-proxy-gateway-auth']);
    expect(objects.get('auth/transcription-proxy-gateway-auth')?.password).toBe('n3w');
  });

  it('re-creates a changed registration (a PUT would leave the running one as it was)', async () => {
    const { ari, puts } = store();
    const deletes: string[] = [];
    (ari as unknown as { deleteConfigObject: (t: string, n: string) => Promise<void> }).deleteConfigObject = async (t, n) => {
      deletes.push(`${t}/${n}`);
    };
    await provisionGateway(ari, config(`${GATEWAY}OUTBOUND_REGISTER=yes\n`), silent);
    expect(deletes).toEqual([]);
    const changed = await provisionGateway(ari, config(`${GATEWAY.replace('10.1.0.4:5060', '10.1.0.5')}OUTBOUND_REGISTER=yes\n`), silent);
    expect(changed.updated).toContain('registration/transcription-proxy-gateway');
    expect(deletes).toEqual(['registration/transcription-proxy-gateway']);
    expect(puts.at(-1)).toBe('registration/transcription-proxy-gateway');
  });

  it('does nothing without outbound settings', async () => {
    const { ari, puts } = store();
    expect(await provisionGateway(ari, config('DESTINATION_DOMAIN=x.example.com\n'), silent)).toMatchObject({ configured: false });
    expect(puts).toEqual([]);
  });
});
