/**
 * watchRegistration against a stand-in AMI server: when to try again and when
 * not. (Reconnecting to the real Asterisk's AMI is tested end to end in
 * test/e2e/outbound.test.ts.) Retry pauses run on faked timers.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../app/config/load-config.js';
import { watchRegistration } from '../../app/outbound/registration-state.js';

/** An AMI that answers Login with `login` and lists the gateway's registration as Registered. */
async function fakeAmi(login: 'Success' | 'Error'): Promise<{ server: Server; port: number; logins: number; sockets: Socket[] }> {
  const ami = { server: createServer(), port: 0, logins: 0, sockets: [] as Socket[] };
  ami.server.on('connection', (socket) => {
    ami.sockets.push(socket);
    socket.write('Asterisk Call Manager/9.0.0\r\n');
    let pending = '';
    socket.on('data', (chunk) => {
      pending += chunk.toString();
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
        const fields = Object.fromEntries(
          pending
            .slice(0, end)
            .split('\r\n')
            .map((line) => line.split(': ') as [string, string]),
        );
        pending = pending.slice(end + 4);
        const id = `ActionID: ${fields.ActionID}\r\n`;
        if (fields.Action === 'Login') {
          ami.logins++;
          socket.write(
            login === 'Success'
              ? `Response: Success\r\n${id}Message: Authentication accepted\r\n\r\n`
              : `Response: Error\r\n${id}Message: Authentication failed\r\n\r\n`,
          );
        } else if (fields.Action === 'PJSIPShowRegistrationsOutbound') {
          socket.write(
            `Response: Success\r\n${id}EventList: start\r\n\r\n` +
              `Event: OutboundRegistrationDetail\r\n${id}ObjectName: transcription-proxy-gateway\r\nStatus: Registered\r\n\r\n` +
              `Event: OutboundRegistrationDetailComplete\r\n${id}EventList: Complete\r\n\r\n`,
          );
        }
      }
    });
  });
  ami.server.listen(0, '127.0.0.1');
  await once(ami.server, 'listening');
  ami.port = (ami.server.address() as AddressInfo).port;
  return ami;
}

function settings(amiPort: number) {
  return loadConfig({
    cwd: mkdtempSync(join(tmpdir(), 'atp-reg-')),
    env: {
      DESTINATION_DOMAIN: '127.0.0.1:5070',
      OUT_SIP_GATEWAY_IP: '127.0.0.1:5090',
      OUTBOUND_CALL_EXT: '1000',
      OUTBOUND_CALLS_SECRET: 'gw-secret',
      OUTBOUND_REGISTER: 'yes',
      AMI_USERNAME: 'proxy',
      AMI_SECRET: 'ami-secret',
      AMI_PORT: String(amiPort),
    },
  }).config;
}

function capturingLogger() {
  const raw: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write: (line: string) => {
        raw.push(line);
      },
    },
  );
  return { logger, raw, messages: () => raw.map((line) => String((JSON.parse(line) as { msg: unknown }).msg)) };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('watchRegistration', () => {
  it('reads the state again after the AMI connection is lost', async () => {
    const ami = await fakeAmi('Success');
    cleanups.push(() => new Promise((resolve) => ami.server.close(resolve)));
    const { logger, messages } = capturingLogger();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const watcher = await watchRegistration(settings(ami.port), logger);
    cleanups.push(() => watcher?.close());
    expect(messages().filter((m) => m === 'outbound gateway registration')).toHaveLength(1);

    ami.sockets[0]!.destroy();
    await vi.waitFor(() => expect(messages()).toContain('AMI connection lost: reconnecting to keep reporting the outbound registration'));
    expect(vi.getTimerCount(), 'the next attempt is scheduled').toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.waitFor(() => expect(messages().filter((m) => m === 'outbound gateway registration')).toHaveLength(2));
    expect(ami.logins).toBe(2);
  });

  it('keeps trying, with growing pauses, while AMI cannot be reached', async () => {
    const ami = await fakeAmi('Success');
    const port = ami.port;
    await new Promise((resolve) => ami.server.close(resolve)); // nothing listens there now
    const { logger, messages } = capturingLogger();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const watcher = await watchRegistration(settings(port), logger);
    cleanups.push(() => watcher?.close());
    expect(messages()).toContain('outbound registration state not known: AMI unavailable; trying again');
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.waitFor(() => expect(messages().filter((m) => m.includes('AMI unavailable'))).toHaveLength(2));
    // The second pause is longer: nothing after another 1 s, the third attempt after 2 s.
    await vi.advanceTimersByTimeAsync(1000);
    expect(messages().filter((m) => m.includes('AMI unavailable'))).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    await vi.waitFor(() => expect(messages().filter((m) => m.includes('AMI unavailable'))).toHaveLength(3));
    watcher?.close();
    expect(vi.getTimerCount(), 'close() cancels the next attempt').toBe(0);
  });

  it('does not ask again when AMI refuses the login, and never logs the secret', async () => {
    const ami = await fakeAmi('Error');
    cleanups.push(() => new Promise((resolve) => ami.server.close(resolve)));
    const { logger, raw, messages } = capturingLogger();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const watcher = await watchRegistration(settings(ami.port), logger);
    cleanups.push(() => watcher?.close());
    expect(messages()).toContain('outbound registration state not reported');
    expect(raw.join('')).toContain('Authentication failed');
    expect(raw.join('')).not.toContain('ami-secret');
    expect(vi.getTimerCount(), 'no further attempt').toBe(0);
    expect(ami.logins).toBe(1);
  });
});
