import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkGateway } from '../../app/check/gateway-check.js';
import { loadConfig } from '../../app/config/load-config.js';

function config(ini: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'atp-gwcheck-'));
  writeFileSync(join(cwd, 'config.ini'), ini);
  return loadConfig({ cwd, env: {} }).config;
}

const GATEWAY = 'OUT_SIP_GATEWAY_IP=10.1.0.4\nOUTBOUND_CALL_EXT=1000\nOUTBOUND_CALLS_SECRET=pw\n';

function ari(options: { putFails?: string; endpoint?: Record<string, string> } = {}) {
  const calls: string[] = [];
  return {
    calls,
    port: {
      async putConfigObject(type: string, name: string) {
        calls.push(`put ${type}/${name}`);
        if (options.putFails) throw new Error(options.putFails);
      },
      async deleteConfigObject(type: string, name: string) {
        calls.push(`delete ${type}/${name}`);
      },
      async getConfigObject() {
        return options.endpoint;
      },
    },
  };
}

describe('check: the outbound gateway', () => {
  it('says nothing when no gateway is configured', async () => {
    expect(await checkGateway(ari().port, config('DESTINATION_DOMAIN=x.example.com\n'))).toBeUndefined();
  });

  it('fails a half-configured gateway, naming what is missing', async () => {
    const result = await checkGateway(ari().port, config('OUT_SIP_GATEWAY_IP=10.1.0.4\n'));
    expect(result).toMatchObject({ status: 'fail', summary: expect.stringContaining('OUTBOUND_CALL_EXT, OUTBOUND_CALLS_SECRET') });
  });

  it('prints the sorcery.conf lines when Asterisk cannot create objects at run time', async () => {
    const result = await checkGateway(ari({ putFails: "Cannot create sorcery objects of type 'auth'" }).port, config(GATEWAY));
    expect(result?.status).toBe('fail');
    expect(result?.details?.join('\n')).toContain('auth=memory');
    expect(result?.details?.join('\n')).toContain('registration=memory');
  });

  it('creates and deletes a probe object, and reports the endpoint and registration', async () => {
    const fake = ari({ endpoint: { aors: 'transcription-proxy-gateway' } });
    const result = await checkGateway(fake.port, config(`${GATEWAY}OUTBOUND_REGISTER=yes\n`));
    expect(result?.status).toBe('ok');
    expect(fake.calls).toEqual([
      expect.stringMatching(/^put auth\/transcription-proxy-check-/),
      expect.stringMatching(/^delete auth\/transcription-proxy-check-/),
    ]);
    expect(result?.details?.join('\n')).toMatch(/present[\s\S]*registration state/);
  });
});
