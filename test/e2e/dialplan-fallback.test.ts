/**
 * The shipped FreePBX custom destinations (asterisk/freepbx/extensions_custom.conf,
 * loaded by the test bed as shipped) on the real Asterisk with real SIPp peers.
 *
 * - With no service connected, Stasis() fails at once and the call must still
 *   reach its destination, untranscribed, through the context's fallback. The
 *   test bed's stand-ins for FreePBX's from-did-direct / from-internal dial the
 *   SIPp callee at TESTBED_CALLEE and mark the INVITE with the context's name.
 * - With a Stasis app connected (the test itself stands in for the service, so
 *   no app code is involved), the app must receive `number=` (and `rules=`) as
 *   the contract with the service says, and a comma in the DID must not add
 *   arguments.
 *
 * The test bed enters the custom destinations as a FreePBX inbound route
 * would: dialling "freepbx" + NUMBER goes to transcription-proxy,s,1 and
 * "freepbxsales" + NUMBER to transcription-proxy-sales,s,1, with FROM_DID=NUMBER
 * (asterisk/conf/extensions.conf).
 */
import { createSocket, type Socket } from 'node:dgram';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import {
  ARI_AUTHORIZATION as AUTHORIZATION,
  ARI_URL,
  ASTERISK_SIP,
  ariRequest as ari,
  asteriskLogTail,
  expectNothingLeftInAsterisk,
  setDialplanGlobal as setGlobal,
} from '../support/testbed.js';
import { freeUdpPort, receivedRequestHeader, receivedRequestLines, receivedResponseCodes, startSipp } from '../support/sipp.js';

const APP = 'transcription-proxy';
async function registeredApps(): Promise<string[]> {
  return ((await ari('GET', '/applications')) as { name: string }[]).map((app) => app.name);
}

/** Waits (bounded) until no Stasis app of our name is registered: no service is connected. */
async function expectNoServiceConnected(timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await registeredApps()).includes(APP)) {
    if (Date.now() > deadline) throw new Error(`Stasis app "${APP}" is registered: a service is connected, the fallback cannot be tested`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** A unique dialled number, so its lines can be found in Asterisk's shared log. */
function uniqueNumber(): string {
  return String(7_000_000 + Math.floor(Math.random() * 1_000_000));
}

interface StasisStart {
  args: string[];
  channel: { id: string; name: string };
}

/**
 * A bare Stasis app on ARI's event websocket, standing in for the service: it
 * records each StasisStart and does what the test asks with the channel.
 */
interface StubApp {
  nextStart(timeoutMs?: number): Promise<StasisStart>;
  close(): Promise<void>;
}

async function connectStubApp(): Promise<StubApp> {
  const url = `${ARI_URL.replace(/^http/, 'ws')}/ari/events?app=${APP}&subscribeAll=false`;
  const socket = new WebSocket(url, { headers: { Authorization: AUTHORIZATION } });
  const queued: StasisStart[] = [];
  const waiting: ((event: StasisStart) => void)[] = [];
  socket.on('message', (data) => {
    const event = JSON.parse(String(data)) as { type: string } & StasisStart;
    if (event.type !== 'StasisStart') return;
    const waiter = waiting.shift();
    if (waiter) waiter(event);
    else queued.push(event);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  expect(await registeredApps()).toContain(APP);
  return {
    nextStart(timeoutMs = 10_000) {
      const event = queued.shift();
      if (event) return Promise.resolve(event);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no StasisStart within ${timeoutMs} ms`)), timeoutMs);
        waiting.push((started) => {
          clearTimeout(timer);
          resolve(started);
        });
      });
    },
    async close() {
      if (socket.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        socket.once('close', () => resolve());
        socket.close();
      });
    },
  };
}

let calleePort: number;

beforeAll(async () => {
  calleePort = await freeUdpPort();
  await setGlobal('TESTBED_CALLEE', `127.0.0.1:${calleePort}`);
});

afterAll(async () => {
  await setGlobal('TESTBED_CALLEE', '');
});

afterEach(async () => {
  await expectNothingLeftInAsterisk();
});

function showAsteriskLogOnFailure(): void {
  onTestFailed(() => {
    console.log(`--- Asterisk log\n${asteriskLogTail(150)}`);
  });
}

describe('FreePBX custom destination with the service down', () => {
  it.each([
    { entry: 'freepbx', destination: 'transcription-proxy,s,1', fallback: 'from-did-direct' },
    { entry: 'freepbxsales', destination: 'transcription-proxy-sales,s,1', fallback: 'from-internal' },
  ])('$destination falls back to $fallback and the call still connects', async ({ entry, fallback }) => {
    showAsteriskLogOnFailure();
    await expectNoServiceConnected();
    const number = uniqueNumber();
    const callee = await startSipp({ scenario: 'callee.xml', toneHz: 1330, sipPort: calleePort });
    const caller = await startSipp({
      scenario: 'caller.xml',
      toneHz: 440,
      service: `${entry}${number}`,
      callerId: '1001',
      holdMs: 2000,
      target: ASTERISK_SIP,
    });
    const [callerResult, calleeResult] = await Promise.all([caller.done, callee.done]);
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(calleeResult.exitCode, calleeResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages)).toContain(200);

    // The callee was dialled for the DID, by the fallback context this custom destination names.
    const requests = receivedRequestLines(calleeResult.messages);
    expect(requests[0]).toBe(`INVITE sip:${number}@127.0.0.1:${calleePort} SIP/2.0`);
    expect(requests.some((line) => line.startsWith('BYE '))).toBe(true);
    expect(receivedRequestHeader(calleeResult.messages, 'INVITE', 'X-Testbed-Context')).toBe(fallback);
    // Leg B carries the caller's caller ID.
    expect(receivedRequestHeader(calleeResult.messages, 'INVITE', 'From')).toMatch(/<sip:1001@/);

    // The fallback says in Asterisk's log why the call was not transcribed.
    expect(asteriskLogTail(3000)).toContain(
      `transcription-proxy not transcribing (STASISSTATUS=FAILED): call for ${number} continues untranscribed at (${fallback},${number},1)`,
    );
  });
});

describe('FreePBX custom destination with a Stasis app connected', () => {
  let app: StubApp | undefined;
  let calleeSocket: Socket | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
    calleeSocket?.close();
    calleeSocket = undefined;
  });

  /** Nothing may be sent to TESTBED_CALLEE: the fallback must not run. Returns what arrived. */
  async function watchCallee(): Promise<Buffer[]> {
    const arrived: Buffer[] = [];
    const socket = createSocket('udp4');
    socket.on('message', (packet) => arrived.push(packet));
    await new Promise<void>((resolve) => socket.bind(calleePort, '127.0.0.1', resolve));
    calleeSocket = socket;
    return arrived;
  }

  it.each([
    { entry: 'freepbx', destination: 'transcription-proxy,s,1', args: (n: string) => [`number=${n}`] },
    { entry: 'freepbxsales', destination: 'transcription-proxy-sales,s,1', args: (n: string) => [`number=${n}`, 'rules=sales'] },
  ])('$destination passes the DID as number= (and its rule set) to the app', async ({ entry, args }) => {
    showAsteriskLogOnFailure();
    const arrived = await watchCallee();
    app = await connectStubApp();
    const number = uniqueNumber();
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: `${entry}${number}`, target: ASTERISK_SIP });
    const started = await app.nextStart();
    expect(started.args).toEqual(args(number));
    // What the service does with a call it refuses: hang it up. The dialplan must not go on.
    await ari('DELETE', `/channels/${started.channel.id}`);
    const callerResult = await caller.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages).at(-1)).toBeGreaterThanOrEqual(400);
    expect(arrived).toHaveLength(0);
  });

  it('hangs up without falling back when the app returns the call (STASISSTATUS=SUCCESS)', async () => {
    showAsteriskLogOnFailure();
    const arrived = await watchCallee();
    app = await connectStubApp();
    const number = uniqueNumber();
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: `freepbx${number}`, target: ASTERISK_SIP });
    const started = await app.nextStart();
    await ari('POST', `/channels/${started.channel.id}/continue`);
    // Had the fallback run, its Dial would ring the (silent) callee socket and the
    // caller would get no final response before SIPp's timeout.
    const callerResult = await caller.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(receivedResponseCodes(callerResult.messages).at(-1)).toBeGreaterThanOrEqual(400);
    expect(arrived).toHaveLength(0);
    expect(asteriskLogTail(3000)).not.toContain(`call for ${number} continues untranscribed`);
  });

  it('drops a comma (and the rest of what could be an argument) from the DID: no injected Stasis arguments', async () => {
    showAsteriskLogOnFailure();
    app = await connectStubApp();
    // A comma is legal in a SIP URI's user part; unfiltered, it would reach Stasis() as an extra argument.
    const caller = await startSipp({ scenario: 'caller-rejected.xml', service: 'freepbx45,rules=evil', target: ASTERISK_SIP });
    const started = await app.nextStart();
    await ari('DELETE', `/channels/${started.channel.id}`);
    const callerResult = await caller.done;
    expect(callerResult.exitCode, callerResult.stderr).toBe(0);
    expect(started.args).toEqual(['number=45rulesevil']);
  });
});
