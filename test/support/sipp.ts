/**
 * Runs real SIPp peers (Debian's sip-tester) for the end-to-end tests. Each
 * run gets its own working directory holding its tone as `tone.ulaw` (the
 * scenarios in test/sipp/ play it relatively) and its SIP message log, from
 * which tests read what was sent and received.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dtmfPcap } from './dtmf-pcap.js';
import { auditNumbers } from './log-audit.js';
import { makeAlawTone, makeUlawTone } from './tones.js';
import type { LabHost } from './netns.js';

export const SCENARIO_DIR = fileURLToPath(new URL('../sipp/', import.meta.url));

export interface SippOptions {
  scenario: string;
  /** Tone this peer plays, as tone.ulaw in its working directory. */
  toneHz?: number;
  /** Raw G.711 µ-law 8 kHz this peer plays instead of a tone (written as tone.ulaw). */
  toneUlaw?: Buffer;
  /** Extra tones, written as tone2.ulaw, tone3.ulaw, ... */
  extraTonesHz?: number[];
  /** A tone written as tone.alaw (G.711 A-law), for scenarios that switch to PCMA. */
  alawToneHz?: number;
  /** Digits this peer keys out of band (RFC 4733), as dtmf.pcap in its working directory (dtmf-pcap.ts). */
  dtmfDigits?: string;
  /** Local SIP port; a free one when absent. */
  sipPort?: number;
  /** User part of the request URI (uac). */
  service?: string;
  /** Caller ID (From user) of a uac. */
  callerId?: string;
  /** Scenario variables (`-set NAME VALUE`). */
  variables?: Record<string, string>;
  /** Credentials the gateway-*.xml scenarios check with <verifyauth> (`-set gw_user/gw_pass`; SIPp's -au/-ap do not reach verifyauth). */
  auth?: { username: string; password: string };
  /** Pause length in the scenario (`<pause/>`), i.e. how long the call is held. */
  holdMs?: number;
  /** Remote host:port (uac). */
  target?: string;
  /** Calls to handle before exiting. */
  calls?: number;
  /** uac: new calls per second (`-r`), and at most this many at once (`-l`). */
  ratePerSecond?: number;
  concurrentCalls?: number;
  /** Run inside this lab host (test/support/netns.ts): its address, ports of its own. Default: 127.0.0.1. */
  host?: LabHost;
  timeoutSeconds?: number;
}

export interface SippResult {
  exitCode: number | null;
  /** SIPp's SIP message log (-trace_msg). */
  messages: string;
  stderr: string;
}

export interface SippPeer {
  sipPort: number;
  workdir: string;
  done: Promise<SippResult>;
  kill(): void;
}

/** A UDP port that was free a moment ago (SIPp cannot report the one it picks). */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      const { port } = socket.address();
      socket.close(() => resolve(port));
    });
  });
}

/** A free even port whose next three ports are free too (RTP and RTCP for audio and video). */
async function freeMediaPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = (await freeUdpPort()) & ~1;
    const sockets = [];
    let ok = true;
    for (let offset = 0; offset < 4 && ok; offset++) {
      const socket = createSocket('udp4');
      ok = await new Promise<boolean>((resolve) => {
        socket.once('error', () => resolve(false));
        socket.bind(base + offset, '127.0.0.1', () => resolve(true));
      });
      sockets.push(socket);
    }
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve();
            }
          }),
      ),
    );
    if (ok) return base;
  }
  throw new Error('no free media port range found');
}

export async function startSipp(options: SippOptions): Promise<SippPeer> {
  // The numbers this peer dials and calls from must not show in the service's logs (log-audit.ts).
  auditNumbers(options.service, options.callerId);
  const workdir = mkdtempSync(join(tmpdir(), 'atp-sipp-'));
  if (options.toneHz !== undefined) makeUlawTone(workdir, options.toneHz);
  if (options.toneUlaw !== undefined) writeFileSync(join(workdir, 'tone.ulaw'), options.toneUlaw);
  options.extraTonesHz?.forEach((hz, index) => makeUlawTone(workdir, hz, 30, `tone${index + 2}.ulaw`));
  if (options.alawToneHz !== undefined) makeAlawTone(workdir, options.alawToneHz);
  if (options.dtmfDigits !== undefined) writeFileSync(join(workdir, 'dtmf.pcap'), dtmfPcap(options.dtmfDigits));
  const host = options.host;
  const address = host?.address ?? '127.0.0.1';
  const sipPort = options.sipPort ?? (host ? host.port() : await freeUdpPort());
  const mediaPort = host ? host.port() : await freeMediaPort();
  const messageFile = join(workdir, 'messages.log');
  const args = [
    '-sf',
    join(SCENARIO_DIR, options.scenario),
    '-i',
    address,
    '-mi',
    address,
    '-p',
    String(sipPort),
    '-mp',
    String(mediaPort),
    '-m',
    String(options.calls ?? 1),
    '-nostdin',
    '-trace_msg',
    '-message_file',
    messageFile,
    '-timeout',
    String(options.timeoutSeconds ?? 40),
    '-timeout_error',
  ];
  if (options.holdMs !== undefined) args.push('-d', String(options.holdMs));
  if (options.ratePerSecond !== undefined) args.push('-r', String(options.ratePerSecond));
  if (options.concurrentCalls !== undefined) args.push('-l', String(options.concurrentCalls));
  if (options.service !== undefined) args.push('-s', options.service);
  if (options.callerId !== undefined) args.push('-set', 'caller_id', options.callerId);
  for (const [name, value] of Object.entries(options.variables ?? {})) args.push('-set', name, value);
  if (options.auth !== undefined) args.push('-set', 'gw_user', options.auth.username, '-set', 'gw_pass', options.auth.password);
  if (options.target !== undefined) args.push(options.target);

  const spawnOptions = { cwd: workdir, stdio: ['ignore', 'ignore', 'pipe'] as ['ignore', 'ignore', 'pipe'] };
  // In a lab host, `ip netns exec` becomes sipp itself: same pid, same signals.
  const child = host ? host.spawn('sipp', args, spawnOptions) : spawn('sipp', args, spawnOptions);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<SippResult>((resolve) => {
    child.on('exit', (code) => {
      let messages = '';
      try {
        messages = readFileSync(messageFile, 'utf8');
      } catch {
        // no message was exchanged
      }
      resolve({ exitCode: code, messages, stderr });
    });
  });
  return { sipPort, workdir, done, kill: () => child.kill('SIGKILL') };
}

/** Status codes of the SIP responses SIPp received, in order. */
export function receivedResponseCodes(messages: string): number[] {
  const codes: number[] = [];
  const pattern = /message received[^\n]*\n+SIP\/2\.0 (\d{3})/g;
  for (const match of messages.matchAll(pattern)) codes.push(Number(match[1]));
  return codes;
}

/** The request lines SIPp received (e.g. "INVITE sip:4567@127.0.0.1:5070 SIP/2.0"). */
export function receivedRequestLines(messages: string): string[] {
  const lines: string[] = [];
  const pattern = /message received[^\n]*\n+([A-Z]+ \S+ SIP\/2\.0)/g;
  for (const match of messages.matchAll(pattern)) lines.push(match[1] ?? '');
  return lines;
}

/** A header of the first request SIPp received whose request line starts with `method`. */
export function receivedRequestHeader(messages: string, method: string, header: string): string | undefined {
  const pattern = new RegExp(`message received[^\\n]*\\n+${method} [^\\n]*\\n([\\s\\S]*?)\\n\\s*\\n`);
  const headers = pattern.exec(messages)?.[1] ?? '';
  const line = headers.split('\n').find((h) => h.toLowerCase().startsWith(`${header.toLowerCase()}:`));
  return line?.slice(header.length + 1).trim();
}
