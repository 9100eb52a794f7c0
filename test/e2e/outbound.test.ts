/**
 * Outbound calls on the real Asterisk with SIPp: the service creates the
 * outbound gateway in Asterisk through ARI; `transcription-proxy call --wait`
 * rings a SIPp agent, then the service dials the number through a SIPp gateway
 * that challenges with 401 and checks the credentials. The agent's tone must
 * arrive as CALLER1 and the customer's as CALLER2, with direction outbound.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { runCli } from '../support/cli-process.js';
import { freeUdpPort, receivedRequestHeader, receivedRequestLines, startSipp } from '../support/sipp.js';
import { startStrictStreamServer, type StrictStreamServer } from '../support/strict-stream-server.js';
import { startServiceUnderTest, type ServiceUnderTest } from '../support/service-under-test.js';
import { startTcpRelay } from '../support/tcp-relay.js';
import { expectTone, expectWellFormed, streamByLabel } from '../support/stream-checks.js';
import {
  AMI_PORT,
  AMI_SECRET,
  AMI_USERNAME,
  ARI_PASSWORD,
  ARI_URL,
  ARI_USERNAME,
  ASTERISK_SIP,
  TESTBED_SCRIPT,
  ariRequest,
  asteriskLogTail,
  expectNothingLeftInAsterisk,
} from '../support/testbed.js';

const SECRET = 'gw-secret;#1';
let streamServer: StrictStreamServer;
let gatewayPort: number;
let agentPort: number;
let proxy: ServiceUnderTest | undefined;

function settings(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    STREAM_URL: streamServer.url,
    OUT_SIP_GATEWAY_IP: `127.0.0.1:${gatewayPort}`,
    OUTBOUND_CALL_EXT: '1000',
    OUTBOUND_CALLS_SECRET: SECRET,
    OUTBOUND_CALL_PREFIX: '33',
    AGENT_DIAL: `PJSIP/transcription-proxy-out/sip:{ext}@127.0.0.1:${agentPort}`,
    DIAL_TIMEOUT_MS: '3000',
    ...overrides,
  };
}

async function startProxy(overrides: Record<string, string> = {}): Promise<ServiceUnderTest> {
  await proxy?.stop();
  proxy = await startServiceUnderTest(settings(overrides));
  const started = proxy;
  onTestFailed(() => console.log(`--- service log\n${started.logTail(80)}\n--- Asterisk log\n${asteriskLogTail()}`));
  return started;
}

/** `transcription-proxy call --wait NUMBER`, with the service's ARI settings. */
function callCommand(number: string, extra: string[] = []) {
  return runCli(['call', number, '--from', '1000', '--wait', '--timeout-ms', '10000', ...extra], {
    ARI_URL,
    ARI_USERNAME,
    ARI_PASSWORD,
    ...settings(),
  });
}

const gatewayObject = (type: string, name: string) =>
  ariRequest<{ attribute: string; value: string }[]>('GET', `/asterisk/config/dynamic/res_pjsip/${type}/${name}`)
    .then((fields) => Object.fromEntries(fields.map((f) => [f.attribute, f.value])))
    .catch(() => undefined);

beforeAll(async () => {
  streamServer = await startStrictStreamServer();
  gatewayPort = await freeUdpPort();
  agentPort = await freeUdpPort();
});

afterAll(async () => {
  await proxy?.stop();
  await streamServer?.close();
});

afterEach(async () => {
  streamServer.streams.length = 0;
  await expectNothingLeftInAsterisk();
  proxy?.expectIdle();
});

describe('call --wait', () => {
  it('rings the agent, dials the customer through the authenticating gateway, and streams agent and customer', async () => {
    await startProxy();
    const agent = await startSipp({ scenario: 'callee-hangs-up.xml', toneHz: 440, sipPort: agentPort, holdMs: 5000 });
    const gateway = await startSipp({
      scenario: 'gateway-callee.xml',
      toneHz: 1330,
      sipPort: gatewayPort,
      auth: { username: '1000', password: SECRET },
    });
    const cli = callCommand('3344123456');
    const [exitCode, agentResult, gatewayResult] = await Promise.all([cli.exited, agent.done, gateway.done]);
    expect(cli.stderr()).toContain('answered');
    expect(exitCode).toBe(0);
    expect(agentResult.exitCode, agentResult.stderr).toBe(0);
    expect(gatewayResult.exitCode, gatewayResult.stderr).toBe(0);
    const callId = cli.stdoutLines[0];
    expect(callId).toMatch(/^[0-9a-f-]{36}$/);

    // The prefix 33 was stripped, the INVITE was challenged and re-sent with our credentials.
    const invites = receivedRequestLines(gatewayResult.messages).filter((line) => line.startsWith('INVITE '));
    expect(invites).toHaveLength(2);
    expect(invites[1]).toMatch(/^INVITE sip:44123456@127\.0\.0\.1:\d+ SIP\/2\.0$/);
    expect(gatewayResult.messages).toMatch(/Authorization: Digest [^\n]*username="1000"/);
    expect(gatewayResult.messages).not.toContain(SECRET);

    const streams = await streamServer.waitForClosedStreams(2);
    const agentStream = streamByLabel(streams, 'CALLER1');
    const customerStream = streamByLabel(streams, 'CALLER2');
    for (const stream of [agentStream, customerStream]) {
      expectWellFormed(stream);
      expect(stream.metadata).toMatchObject({ callId, direction: 'outbound', callee: '44123456' });
    }
    expectTone(agentStream, 16000, 440, [1330]);
    expectTone(customerStream, 16000, 1330, [440]);
  });

  it.each([
    ['busy', 'gateway-busy.xml', 3],
    ['no answer', 'gateway-no-answer.xml', 4],
  ])('exits with the code for %s, opens no stream, leaves nothing behind', async (_what, scenario, code) => {
    await startProxy();
    const agent = await startSipp({ scenario: 'callee.xml', toneHz: 440, sipPort: agentPort });
    const gateway = await startSipp({ scenario, sipPort: gatewayPort, auth: { username: '1000', password: SECRET } });
    const cli = callCommand('3344123456');
    const [exitCode, agentResult, gatewayResult] = await Promise.all([cli.exited, agent.done, gateway.done]);
    expect(exitCode, cli.stderr()).toBe(code);
    expect(agentResult.exitCode, agentResult.stderr).toBe(0);
    expect(gatewayResult.exitCode, gatewayResult.stderr).toBe(0);
    expect(streamServer.streams).toHaveLength(0);
  });

  it('exits 5 when the gateway refuses our credentials (403)', async () => {
    await startProxy();
    const agent = await startSipp({ scenario: 'callee.xml', toneHz: 440, sipPort: agentPort });
    // The gateway expects another password: verifyauth fails, it answers 403 (and SIPp itself exits 1).
    const gateway = await startSipp({
      scenario: 'gateway-callee.xml',
      toneHz: 1330,
      sipPort: gatewayPort,
      auth: { username: '1000', password: 'another-password' },
    });
    const cli = callCommand('3344123456');
    const [exitCode, agentResult] = await Promise.all([cli.exited, agent.done, gateway.done]);
    expect(exitCode, cli.stderr()).toBe(5);
    expect(agentResult.exitCode, agentResult.stderr).toBe(0);
    expect(streamServer.streams).toHaveLength(0);
  });

  it('exits 2 for a NUMBER that is not dialable, before anything is dialled', async () => {
    const cli = callCommand('44&PJSIP/evil');
    expect(await cli.exited).toBe(2);
    expect(cli.stderr()).toContain('not dialable');
  });
});

describe("from an agent's phone", () => {
  it('sends a number of more than 10 digits out through the gateway, prefix stripped, agent as CALLER1', async () => {
    // The test bed's inbound context counts as the agents' side here (INTERNAL_CONTEXTS).
    await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${await freeUdpPort()}`, INTERNAL_CONTEXTS: 'transcription-proxy-inbound' });
    const gateway = await startSipp({
      scenario: 'gateway-callee.xml',
      toneHz: 1330,
      sipPort: gatewayPort,
      auth: { username: '1000', password: SECRET },
    });
    const phone = await startSipp({
      scenario: 'caller.xml',
      toneHz: 440,
      service: '3349301234567',
      callerId: '1000',
      holdMs: 4000,
      target: ASTERISK_SIP,
    });
    const [phoneResult, gatewayResult] = await Promise.all([phone.done, gateway.done]);
    expect(phoneResult.exitCode, phoneResult.stderr).toBe(0);
    expect(gatewayResult.exitCode, gatewayResult.stderr).toBe(0);
    const invites = receivedRequestLines(gatewayResult.messages).filter((line) => line.startsWith('INVITE '));
    expect(invites.at(-1)).toMatch(/^INVITE sip:49301234567@127\.0\.0\.1:\d+ SIP\/2\.0$/);
    const streams = await streamServer.waitForClosedStreams(2);
    expect(streamByLabel(streams, 'CALLER1').metadata).toMatchObject({ direction: 'outbound', caller: '1000', callee: '49301234567' });
    expectTone(streamByLabel(streams, 'CALLER1'), 16000, 440, [1330]);
    expectTone(streamByLabel(streams, 'CALLER2'), 16000, 1330, [440]);
  });
});

describe('from a trunk (toll fraud)', () => {
  it('a call to an 11-digit DID goes to the default destination, never to the gateway', async () => {
    const calleePort = await freeUdpPort();
    // No INTERNAL_CONTEXTS / INTERNAL_ENDPOINTS: the test bed's inbound endpoint is a trunk.
    await startProxy({ DESTINATION_DOMAIN: `127.0.0.1:${calleePort}` });
    const gateway = await startSipp({
      scenario: 'gateway-callee.xml',
      toneHz: 1330,
      sipPort: gatewayPort,
      auth: { username: '1000', password: SECRET },
      timeoutSeconds: 15,
    });
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller = await startSipp({
      scenario: 'caller.xml',
      toneHz: 440,
      service: '14155550100',
      callerId: '1002',
      holdMs: 3000,
      target: ASTERISK_SIP,
    });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    gateway.kill();
    const gatewayResult = await gateway.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(receivedRequestLines(calleeResult.messages).find((line) => line.startsWith('INVITE '))).toMatch(
      /^INVITE sip:14155550100@127\.0\.0\.1:\d+ SIP\/2\.0$/,
    );
    expect(receivedRequestLines(gatewayResult.messages).filter((line) => line.startsWith('INVITE '))).toEqual([]);
    const streams = await streamServer.waitForClosedStreams(2);
    expect(streamByLabel(streams, 'CALLER1').metadata).toMatchObject({ direction: 'inbound', callee: '14155550100' });
  });
});

describe('the outbound gateway in Asterisk', () => {
  it('is created at start without its password in the logs, again after an Asterisk restart, and updated when a setting changes', async () => {
    const service = await startProxy();
    expect((await gatewayObject('endpoint', 'transcription-proxy-gateway'))?.outbound_auth).toBe('transcription-proxy-gateway-auth');
    expect((await gatewayObject('auth', 'transcription-proxy-gateway-auth'))?.username).toBe('1000');
    expect(service.logTail(200)).not.toContain(SECRET);

    execFileSync('bash', [TESTBED_SCRIPT, 'stop'], { stdio: 'ignore' });
    execFileSync('bash', [TESTBED_SCRIPT, 'start'], { stdio: 'ignore' });
    // The service reconnects on its own and creates the objects again.
    const deadline = Date.now() + 30_000;
    while ((await gatewayObject('endpoint', 'transcription-proxy-gateway')) === undefined) {
      if (Date.now() > deadline) throw new Error('the gateway was not created again after the restart');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    await startProxy({ OUTBOUND_CALL_EXT: '2000' });
    expect((await gatewayObject('auth', 'transcription-proxy-gateway-auth'))?.username).toBe('2000');
    expect((await gatewayObject('endpoint', 'transcription-proxy-gateway'))?.from_user).toBe('2000');
  }, 60_000);

  it('changes nothing when the service connects again with unchanged settings', async () => {
    await startProxy({ OUTBOUND_REGISTER: 'yes' });
    const again = await startProxy({ OUTBOUND_REGISTER: 'yes' });
    const provisioned = again
      .logTail(200)
      .split('\n')
      .find((line) => line.includes('"msg":"outbound gateway provisioned"'));
    expect(JSON.parse(provisioned ?? '{}')).toMatchObject({
      created: [],
      updated: [],
      unchanged: [
        'auth/transcription-proxy-gateway-auth',
        'aor/transcription-proxy-gateway',
        'endpoint/transcription-proxy-gateway',
        'registration/transcription-proxy-gateway',
      ],
    });
  });

  it('registers at the gateway with its credentials when OUTBOUND_REGISTER is on, and reports the state', async () => {
    const registrar = await startSipp({
      scenario: 'gateway-registrar.xml',
      toneHz: 1330,
      sipPort: gatewayPort,
      calls: 1,
      auth: { username: '1000', password: SECRET },
    });
    const service = await startProxy({ OUTBOUND_REGISTER: 'yes', AMI_USERNAME, AMI_SECRET });
    const result = await registrar.done;
    expect(result.exitCode, result.stderr).toBe(0);
    expect(receivedRequestLines(result.messages).filter((line) => line.startsWith('REGISTER '))).toHaveLength(2);
    expect(receivedRequestHeader(result.messages, 'REGISTER', 'From')).toMatch(/sip:1000@/);
    expect(result.messages).toMatch(/Authorization: Digest [^\n]*username="1000"/);

    // The state reaches the log through AMI's Registry event (no event marks the log write: bounded poll).
    const deadline = Date.now() + 10_000;
    while (!/"registration":"Registered"/.test(service.logTail(100))) {
      if (Date.now() > deadline) throw new Error('no "Registered" in the service log');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const check = runCli(['check'], {
      ARI_URL,
      ARI_USERNAME,
      ARI_PASSWORD,
      AMI_USERNAME,
      AMI_SECRET,
      ...settings({ OUTBOUND_REGISTER: 'yes' }),
      STREAM_URL: streamServer.url,
    });
    expect(await check.exited, check.stdoutLines.join('\n')).toBe(0);
    expect(check.stdoutLines.join('\n')).toMatch(/registration: Registered/);
    expect(check.stdoutLines.join('\n')).not.toContain(AMI_SECRET);
  });

  it('reads the registration state again after its AMI connection is lost, and goes on reporting', async () => {
    const ami = await startTcpRelay({ host: '127.0.0.1', port: AMI_PORT });
    try {
      const service = await startProxy({ OUTBOUND_REGISTER: 'yes', AMI_USERNAME, AMI_SECRET, AMI_PORT: String(ami.url.port) });
      const states = () =>
        service
          .logTail(400)
          .split('\n')
          .filter((line) => line.includes('"msg":"outbound gateway registration"')).length;
      expect(states(), 'the state at start').toBeGreaterThanOrEqual(1);
      const before = states();
      ami.refuse(true);
      ami.cut();
      await expect.poll(() => service.logTail(100), { timeout: 5000 }).toContain('AMI connection lost: reconnecting');
      await expect.poll(() => service.logTail(100), { timeout: 5000 }).toContain('AMI unavailable; trying again');
      ami.refuse(false);
      // Read afresh on the new connection (attempts 1 s, 2 s, ... apart).
      await expect.poll(states, { timeout: 15_000 }).toBeGreaterThan(before);
      expect(ami.connections).toBeGreaterThanOrEqual(2);
      expect(service.logTail(400)).not.toContain(AMI_SECRET);
    } finally {
      await ami.close();
    }
  }, 30_000);
});
