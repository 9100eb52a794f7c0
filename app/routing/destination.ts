/**
 * Where leg B goes, and the Asterisk dial string for it. Three kinds:
 *   domain:HOST[:PORT]  sip:NUMBER@HOST through DESTINATION_ENDPOINT (the seed's DESTINATION_DOMAIN)
 *   trunk:HOST[:PORT]   sip:NUMBER@HOST through SIP_GATEWAY_ENDPOINT (the seed's SIP_GATEWAY_IP)
 *   dialplan:CONTEXT    Local/NUMBER@CONTEXT/n, back into the PBX (extensions, queues,
 *                       ring groups); `/n` keeps the Local channel from optimising away,
 *                       which would swap the channel we tap and bridge for another.
 *   gateway             sip:NUMBER@OUT_SIP_GATEWAY_IP through the outbound gateway's
 *                       endpoint (authenticated; app/outbound/gateway.ts): outbound calls.
 * Every part is checked by the dial validator before it is used.
 */
import { checkDomain, checkEndpointName, checkNumber } from './dial-validator.js';

export type Destination =
  { kind: 'domain'; host: string } | { kind: 'trunk'; host: string } | { kind: 'dialplan'; context: string } | { kind: 'gateway' };

const CONTEXT_PATTERN = /^[A-Za-z0-9_-]{1,80}$/;

/** Parses `domain:HOST`, `trunk:HOST` or `dialplan:CONTEXT`; throws an Error saying what is wrong. */
export function parseDestination(text: string): Destination {
  if (text.trim().toLowerCase() === 'gateway') return { kind: 'gateway' };
  const colon = text.indexOf(':');
  const kind = colon < 0 ? '' : text.slice(0, colon).trim().toLowerCase();
  const value = text.slice(colon + 1).trim();
  switch (kind) {
    case 'domain':
    case 'trunk': {
      const verdict = checkDomain(value);
      if (!verdict.ok) throw new Error(`"${value}": ${verdict.reason}`);
      return { kind, host: value };
    }
    case 'dialplan':
      if (!CONTEXT_PATTERN.test(value)) throw new Error(`"${value}" is not a dialplan context name`);
      return { kind, context: value };
    default:
      throw new Error(`"${text}" is not domain:HOST, trunk:HOST, dialplan:CONTEXT or gateway`);
  }
}

export function describeDestination(destination: Destination): string {
  switch (destination.kind) {
    case 'dialplan':
      return `dialplan:${destination.context}`;
    case 'gateway':
      return 'gateway';
    default:
      return `${destination.kind}:${destination.host}`;
  }
}

export interface DialEndpoints {
  domainEndpoint: string;
  trunkEndpoint: string;
  /** The outbound gateway's endpoint and host, when one is configured. */
  gateway?: { endpoint: string; host: string } | undefined;
}

/** The channel technology string for `number` at `destination` (numbers and hosts re-checked here). */
export function dialString(destination: Destination, number: string, endpoints: DialEndpoints): string {
  const numberVerdict = checkNumber(number);
  if (!numberVerdict.ok) throw new Error(`the number: ${numberVerdict.reason}`);
  if (destination.kind === 'dialplan') return `Local/${number}@${destination.context}/n`;
  let endpoint: string;
  let host: string;
  if (destination.kind === 'gateway') {
    if (endpoints.gateway === undefined) throw new Error('no outbound gateway is configured');
    ({ endpoint, host } = endpoints.gateway);
  } else {
    endpoint = destination.kind === 'trunk' ? endpoints.trunkEndpoint : endpoints.domainEndpoint;
    host = destination.host;
  }
  const endpointVerdict = checkEndpointName(endpoint);
  if (!endpointVerdict.ok) throw new Error(`endpoint "${endpoint}": ${endpointVerdict.reason}`);
  const hostVerdict = checkDomain(host);
  if (!hostVerdict.ok) throw new Error(`host "${host}": ${hostVerdict.reason}`);
  return `PJSIP/${endpoint}/sip:${number}@${host}`;
}
