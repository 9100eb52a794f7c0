/**
 * The Asterisk Manager Interface's wire format, as pure functions: a message
 * is `Key: Value` lines ending with an empty line (CRLF CRLF); the server
 * first sends one banner line (`Asterisk Call Manager/x.y.z`). The decoder is
 * fed TCP chunks as they come: a message split across reads, or several in
 * one read, are ordinary cases.
 *
 * The service needs AMI for one thing ARI does not offer in Asterisk 22: the
 * state of an outbound registration (docs/notes-outbound-gateway.md).
 */

export type AmiMessage = Readonly<Record<string, string>>;

/** Bytes of one action: `Action: NAME` then its fields. Values must be one line. */
export function encodeAction(action: string, fields: Readonly<Record<string, string>> = {}): string {
  const lines = [`Action: ${action}`, ...Object.entries(fields).map(([key, value]) => `${key}: ${value}`)];
  for (const line of lines) {
    if (/[\r\n]/.test(line)) throw new Error(`AMI field "${line.split(':')[0]}" must be one line`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Turns a stream of chunks into messages. */
export class AmiDecoder {
  #pending = '';
  #bannerSeen = false;
  banner: string | undefined;

  /** The complete messages in `chunk` (with what was pending). */
  push(chunk: string): AmiMessage[] {
    this.#pending += chunk;
    if (!this.#bannerSeen) {
      const end = this.#pending.indexOf('\r\n');
      if (end < 0) return [];
      this.banner = this.#pending.slice(0, end);
      this.#pending = this.#pending.slice(end + 2);
      this.#bannerSeen = true;
    }
    const messages: AmiMessage[] = [];
    for (let end = this.#pending.indexOf('\r\n\r\n'); end >= 0; end = this.#pending.indexOf('\r\n\r\n')) {
      const block = this.#pending.slice(0, end);
      this.#pending = this.#pending.slice(end + 4);
      const message: Record<string, string> = {};
      for (const line of block.split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        message[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
      }
      if (Object.keys(message).length > 0) messages.push(message);
    }
    return messages;
  }
}
