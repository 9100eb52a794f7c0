/**
 * Wakes a waiting SIPp scenario with an in-dialog SIP INFO sent straight to
 * it over UDP (not through Asterisk): SIPp matches requests to a call by
 * Call-ID only, so the INFO needs nothing of the dialog but its Call-ID. Its
 * headers carry what the scenario could not know when it started, e.g. the
 * consultation dialog of an attended transfer (test/sipp/callee-attended.xml).
 * It is sent once and not retransmitted (a second copy would reach the
 * scenario after it moved on, and SIPp aborts on an unexpected message); SIPp
 * sends its 200 to the call's remote address, Asterisk, which drops it.
 */
import { createSocket } from 'node:dgram';
import { randomUUID } from 'node:crypto';

export async function sendSipTrigger(
  target: { host: string; port: number },
  callId: string,
  headers: Record<string, string>,
  options: { localHost?: string } = {},
): Promise<void> {
  const socket = createSocket('udp4');
  const localHost = options.localHost ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, localHost, () => resolve());
  });
  const { port } = socket.address();
  const branch = `z9hG4bK-trigger-${randomUUID()}`;
  const lines = [
    `INFO sip:trigger@${target.host}:${target.port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${localHost}:${port};branch=${branch}`,
    `From: <sip:test@${localHost}:${port}>;tag=trigger`,
    `To: <sip:trigger@${target.host}:${target.port}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INFO',
    'Max-Forwards: 70',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    'Content-Length: 0',
    '',
    '',
  ];
  const message = Buffer.from(lines.join('\r\n'));
  try {
    await new Promise<void>((resolve, reject) =>
      socket.send(message, target.port, target.host, (error) => (error ? reject(error) : resolve())),
    );
  } finally {
    socket.close();
  }
}

/** The Replaces value of an attended transfer's Refer-To, escaped for a URI header (RFC 3891). */
export function replacesParameter(dialog: { callId: string; toTag: string; fromTag: string }): string {
  return encodeURIComponent(`${dialog.callId};to-tag=${dialog.toTag};from-tag=${dialog.fromTag}`);
}
