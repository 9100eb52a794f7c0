/**
 * Arguments the dialplan passes to the app: `Stasis(transcription-proxy,key=value,...)`.
 *   number=NUMBER        the number to route (a FreePBX custom destination lands on `s`)
 *   rules=SET            the routing rule set to use (default: `default`)
 *   destination=DEST     overrides the destination (domain:HOST, trunk:HOST, dialplan:CONTEXT, gateway)
 *   direction=outbound   an agent's outbound call: out through the outbound gateway
 *   call-id=UUID         the call id to use (the `call` command chooses it, to print it at once)
 *   transport=KIND       how this call's audio is tapped: rtp, audiosocket or websocket
 * One FreePBX installation can so offer several custom destinations. Unknown keys
 * and bad values are reported, never guessed at.
 */
import { checkNumber } from './dial-validator.js';
import { parseDestination, type Destination } from './destination.js';
import { MEDIA_TRANSPORTS, type MediaTransportKind } from '../media/tap-transport.js';

export interface StasisArgs {
  number?: string;
  ruleSet?: string;
  destination?: Destination;
  direction?: 'inbound' | 'outbound';
  callId?: string;
  transport?: MediaTransportKind;
}

export type ParsedStasisArgs = { ok: true; args: StasisArgs } | { ok: false; reason: string };

const RULE_SET_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function parseStasisArgs(raw: readonly string[]): ParsedStasisArgs {
  const args: StasisArgs = {};
  for (const item of raw) {
    if (item.trim() === '') continue;
    const equals = item.indexOf('=');
    // Values stay out of reasons that may carry a number (reasons are logged; numbers only masked).
    if (equals <= 0) return { ok: false, reason: `an argument (${item.length} characters) is not key=value` };
    const key = item.slice(0, equals).trim().toLowerCase();
    const value = item.slice(equals + 1).trim();
    switch (key) {
      case 'number': {
        const verdict = checkNumber(value);
        if (!verdict.ok) return { ok: false, reason: `number=: ${verdict.reason}` };
        args.number = value;
        break;
      }
      case 'rules':
        if (!RULE_SET_PATTERN.test(value)) return { ok: false, reason: `rules=${JSON.stringify(value)} is not a rule set name` };
        args.ruleSet = value;
        break;
      case 'destination':
        try {
          args.destination = parseDestination(value);
        } catch (error) {
          return { ok: false, reason: `destination=: ${(error as Error).message}` };
        }
        break;
      case 'direction':
        if (value !== 'inbound' && value !== 'outbound')
          return { ok: false, reason: `direction=${JSON.stringify(value)} is not inbound or outbound` };
        args.direction = value;
        break;
      case 'transport': {
        const kind = MEDIA_TRANSPORTS.find((known) => known === value);
        if (kind === undefined) return { ok: false, reason: `transport=${JSON.stringify(value)} is not ${MEDIA_TRANSPORTS.join(', ')}` };
        args.transport = kind;
        break;
      }
      case 'call-id':
        if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(value))
          return { ok: false, reason: `call-id=${JSON.stringify(value)} is not a UUID` };
        args.callId = value;
        break;
      default:
        return { ok: false, reason: `unknown argument "${key}"` };
    }
  }
  return { ok: true, args };
}
