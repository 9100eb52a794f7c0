/**
 * Routing as the seed proxy does it, on the real Asterisk with SIPp: the
 * host-domain check, rules with substitution, trunk mode, the headers leg B
 * carries, injection attempts, and loops. The test bed's inbound context sends
 * every call to the app whatever its request URI, so a refusal seen here is
 * the service's own.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { ASTERISK_SIP, asteriskLogTail, expectNothingLeftInAsterisk, setDialplanGlobal } from '../support/testbed.js';
import {
  freeUdpPort,
  receivedRequestHeader,
  receivedRequestLines,
  receivedResponseCodes,
  startSipp,
  type SippResult,
} from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';

let streamServer: StrictStreamServer;
let calleePort: number;
let proxy: ServiceUnderTest | undefined;

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  calleePort = await freeUdpPort();
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

afterEach(async () => {
  await expectNothingLeftInAsterisk();
  proxy?.expectIdle();
  await proxy?.stop();
  proxy = undefined;
  streamServer.streams.length = 0;
});

async function startProxy(settings: Record<string, string>, ini?: string): Promise<ServiceUnderTest> {
  proxy = await startServiceUnderTest({ STREAM_URL: streamServer.url, DIAL_TIMEOUT_MS: '5000', ...settings }, ini);
  const started = proxy;
  onTestFailed(() => console.log(`--- service log\n${started.logTail()}\n--- Asterisk log\n${asteriskLogTail()}`));
  return started;
}

/** A caller that expects to be refused; returns its final response code. */
async function refusedCall(
  service: string,
  extra: { scenario?: string; variables?: Record<string, string> } = {},
): Promise<number | undefined> {
  const caller = await startSipp({
    scenario: extra.scenario ?? 'caller-rejected.xml',
    service,
    target: ASTERISK_SIP,
    variables: extra.variables,
  });
  const result = await caller.done;
  expect(result.exitCode, result.stderr).toBe(0);
  return receivedResponseCodes(result.messages).at(-1);
}

/** A connected call to the SIPp callee at `sipPort`; returns both results. */
async function connectedCall(
  dialled: string,
  options: { sipPort?: number; callerScenario?: string; variables?: Record<string, string> } = {},
): Promise<{ caller: SippResult; callee: SippResult }> {
  const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: options.sipPort ?? calleePort });
  const caller = await startSipp({
    scenario: options.callerScenario ?? 'caller.xml',
    toneHz: 440,
    service: dialled,
    holdMs: 2000,
    target: ASTERISK_SIP,
    variables: options.variables,
  });
  const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
  expect(callerResult.exitCode, callerResult.stderr).toBe(0);
  expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
  return { caller: callerResult, callee: calleeResult };
}

describe('host-domain check', () => {
  it('refuses a request URI for another domain with 403, before any leg B exists', async () => {
    const service = await startProxy({ FREESWITCH_HOST_DOMAIN: 'pbx.example.com', DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` });
    expect(await refusedCall('4567', { scenario: 'caller-to-domain.xml', variables: { domain: 'wrong.example.com' } })).toBe(403);
    const log = service.logTail(30);
    expect(log).toMatch(/"msg":"call refused"/);
    expect(log).toMatch(/is not HOST_DOMAIN/);
    expect(log).not.toMatch(/routing call|leg B event/);
  });

  it('takes a request URI for its own domain', async () => {
    // caller.xml addresses sip:NUMBER@127.0.0.1:5060.
    await startProxy({ FREESWITCH_HOST_DOMAIN: '127.0.0.1', DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` });
    const { callee } = await connectedCall('4567');
    expect(receivedRequestLines(callee.messages)[0]).toMatch(/^INVITE sip:4567@/);
  });
});

describe('rules', () => {
  it('dials the number a rule substitutes, and sends it where the rule says', async () => {
    await startProxy(
      {},
      ['[rule strip-prefix]', 'callee = 55(\\d{4})', 'number = $1', `destination = domain:127.0.0.1:${calleePort}`].join('\n'),
    );
    const { callee } = await connectedCall('554567');
    expect(receivedRequestLines(callee.messages)[0]).toMatch(/^INVITE sip:4567@127\.0\.0\.1:\d+ SIP\/2\.0$/);
  });

  it('refuses with 404 a number no rule matches when there is no default', async () => {
    await startProxy({}, `[rule only-55]\ncallee = 55\\d+\ndestination = domain:127.0.0.1:${calleePort}\n`);
    expect(await refusedCall('4567')).toBe(404);
  });
});

describe('back into the PBX', () => {
  it('reaches a dialplan target through a Local channel and still taps the callee as CALLER2', async () => {
    // The test bed's from-internal stand-in dials TESTBED_CALLEE and marks the INVITE with its name.
    await setDialplanGlobal('TESTBED_CALLEE', `127.0.0.1:${calleePort}`);
    await startProxy({}, '[rule pbx]\ndestination = dialplan:from-internal\n');
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller = await startSipp({ scenario: 'caller.xml', toneHz: 440, service: '4567', holdMs: 4000, target: ASTERISK_SIP });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(receivedRequestLines(calleeResult.messages)[0]).toMatch(/^INVITE sip:4567@/);
    expect(receivedRequestHeader(calleeResult.messages, 'INVITE', 'X-Testbed-Context')).toBe('from-internal');
    const streams = await streamServer.waitForClosedStreams(2);
    for (const [label, own, other] of [
      ['CALLER1', 440, 1330],
      ['CALLER2', 1330, 440],
    ] as const) {
      const stream = streamByLabel(streams, label);
      expectWellFormed(stream);
      expectTone(stream, 16000, own, [other]);
    }
  });
});

describe('rule sets chosen by Stasis arguments', () => {
  it('routes a call entering through the shipped "sales" custom destination by the sales rules', async () => {
    await startProxy(
      { DESTINATION_DOMAIN: `127.0.0.1:${await freeUdpPort()}` },
      ['[rule sales-desk]', 'set = sales', 'callee = (\\d+)', 'number = 8$1', `destination = domain:127.0.0.1:${calleePort}`].join('\n'),
    );
    // freepbxsales + NUMBER enters asterisk/freepbx/extensions_custom.conf's [transcription-proxy-sales]
    // (Stasis(transcription-proxy,number=NUMBER,rules=sales)), as a FreePBX custom destination would.
    const { callee } = await connectedCall('freepbxsales4567');
    expect(receivedRequestLines(callee.messages)[0]).toMatch(/^INVITE sip:84567@/);
  });
});

describe('trunk mode', () => {
  it('sends leg B to SIP_GATEWAY_IP, not DESTINATION_DOMAIN, with the mapping applied', async () => {
    const unused = await freeUdpPort();
    await startProxy({
      SIP_GATEWAY_IP: `127.0.0.1:${calleePort}`,
      DESTINATION_DOMAIN: `127.0.0.1:${unused}`,
      DIALED_NUMBER_MAPPING: '1233:4567',
    });
    const { callee } = await connectedCall('1233');
    expect(receivedRequestLines(callee.messages)[0]).toMatch(new RegExp(`^INVITE sip:4567@127\\.0\\.0\\.1:${calleePort} SIP/2\\.0$`));
  });
});

describe('headers on leg B', () => {
  it('carries the call id, the session id and the chosen X- headers, matching the stream metadata', async () => {
    await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, PASS_HEADERS: 'X-Customer-Id' });
    const { callee } = await connectedCall('4567', { callerScenario: 'caller-x-header.xml', variables: { customer_id: 'C-42;tier=gold' } });
    const streams = await streamServer.waitForClosedStreams(2);
    const metadata = streamByLabel(streams, 'CALLER1').metadata!;
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'uniqueCallId')).toBe(metadata.callId);
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'OUTBOUND_CALL_SESSION_ID')).toBe(metadata.linkedId);
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'X-Customer-Id')).toBe('C-42;tier=gold');
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'X-Transcription-Proxy-Hop')).toBe(metadata.callId);
  });

  it('uses the configured header names', async () => {
    await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}`, UNIQUE_CALL_ID_HEADER: 'X-Call-Id', SESSION_ID_HEADER: 'X-Session' });
    const { callee } = await connectedCall('4567');
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'X-Call-Id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'X-Session')).toMatch(/^\S+$/);
    expect(receivedRequestHeader(callee.messages, 'INVITE', 'uniqueCallId')).toBeUndefined();
  });
});

describe('injection attempts', () => {
  it.each(['4567&PJSIP', '4567,1', '45%2F67', '45%40evil', '4567%0D%0AX-Evil:1', '1'.repeat(70)])(
    'refuses the dialled number %j with 404 and leaves nothing behind',
    async (dialled) => {
      const service = await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` });
      expect(await refusedCall(dialled)).toBe(404);
      expect(service.logTail(20)).toMatch(/"msg":"call refused"/);
      expect(service.logTail(20)).not.toMatch(/routing call/);
    },
  );
});

describe('caller ID', () => {
  it('does not pass on a caller ID the validator refuses (leg B is anonymous), but passes a plain one', async () => {
    await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` });
    const refused = await connectedCall('4567', { variables: { caller_id: '10(01)' } });
    expect(receivedRequestHeader(refused.callee.messages, 'INVITE', 'From')).not.toContain('10(01)');
    expect(receivedRequestHeader(refused.callee.messages, 'INVITE', 'From')).toMatch(/anonymous/i);
    const plain = await connectedCall('4567', { variables: { caller_id: '+4930123' } });
    expect(receivedRequestHeader(plain.callee.messages, 'INVITE', 'From')).toMatch(/<sip:\+4930123@/);
  });
});

describe('loops', () => {
  it('stops a destination that points back at this Asterisk after one hop', async () => {
    const service = await startProxy({ DESTINATION_DOMAIN: ASTERISK_SIP });
    expect(await refusedCall('4567')).toBe(403);
    const lines = service.logTail(200).split('\n');
    // Two calls entered the app: the caller's, and leg B coming back; the second was refused.
    expect(lines.filter((l) => l.includes('"msg":"routing call"'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('"msg":"call refused"') && l.includes('loop'))).toHaveLength(1);
  });
});
