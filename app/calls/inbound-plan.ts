/**
 * Decides what to do with a call that entered the app from the dialplan, as a
 * pure function of what we know about leg A (its channel, Stasis arguments,
 * request URI, headers and variables) and the configuration:
 *
 *   1. a call carrying our loop marker is refused (a destination that points back
 *      at this Asterisk must not multiply calls);
 *   2. the host-domain check (HOST_DOMAIN / the seed's FREESWITCH_HOST_DOMAIN): 403, also
 *      when the request URI cannot be read (fail closed); direction=outbound calls are exempt;
 *   3. the dialled number: `number=` argument, else the extension, else the user
 *      part of the request URI (`s` counts as no number in the first two);
 *   4. routing (rules, mapping, trunk or domain mode, dialplan targets): 404 when none; the
 *      length rule to the outbound gateway only for agents' calls (routing/call-origin.ts);
 *   5. what leg B carries: caller ID, our call id and session id headers, the
 *      chosen X- headers of leg A, and the loop marker.
 * Every value that reaches a dial string or header passes the dial validator.
 */
import type { AriChannel, HangupReason } from '../ari/ari-port.js';
import type { Config } from '../config/keys.js';
import { checkCallerId, checkHeaderValue, checkNumber } from '../routing/dial-validator.js';
import { dialString, type Destination } from '../routing/destination.js';
import { isAgentCall } from '../routing/call-origin.js';
import { route } from '../routing/router.js';
import { parseStasisArgs, type StasisArgs } from '../routing/stasis-args.js';
import { GATEWAY_ENDPOINT } from '../outbound/gateway.js';
import type { MediaTransportKind } from '../media/tap-transport.js';

/** Marks leg B: as a SIP header on its INVITE, and as a channel variable inherited down Local chains. */
export const LOOP_HEADER = 'X-Transcription-Proxy-Hop';
export const LOOP_VARIABLE = 'TRANSCRIPTION_PROXY_HOP';

/**
 * Written on every PJSIP leg of a call (Asterisk 22.3, 21.8, 20.13 and later): a REFER on it then
 * raises an ARI ChannelTransfer and the service does the transfer, instead of Asterisk's core
 * putting channels of its own into the call's bridge (docs/transfers.md).
 */
export const TRANSFER_HANDLING_VARIABLE = 'PJSIP_TRANSFER_HANDLING()';

/** What the service reads from leg A before deciding (undefined: absent or not a SIP channel). */
export interface LegAFacts {
  requestUri?: string | undefined;
  loopHeader?: string | undefined;
  loopVariable?: string | undefined;
  linkedId: string;
  /** Values of the PASS_HEADERS headers that leg A carries. */
  headers: Readonly<Record<string, string | undefined>>;
}

export type InboundPlan =
  | {
      ok: true;
      dialled: string;
      number: string;
      destination: Destination;
      direction: 'inbound' | 'outbound';
      /** How this call's legs are tapped (transport=, else MEDIA_TRANSPORT). */
      transport: MediaTransportKind;
      /** The call id the dialplan chose (call-id=), if any. */
      callId?: string | undefined;
      dialString: string;
      /** Channel variables for leg B (PJSIP_HEADER(add,...) puts headers on its INVITE). */
      variables: Record<string, string>;
      rule: string;
      /** Things left out of leg B, with why (logged; the call goes on). */
      dropped: string[];
    }
  | { ok: false; reason: string; hangup: HangupReason };

/** The user part and host[:port] of a SIP URI (`sip:4567@example.com:5060;transport=udp`). */
export function parseSipUri(uri: string | undefined): { user?: string; hostPort: string } | undefined {
  const match = /^sips?:(?:([^@;?]*)@)?([^;?>\s]+)/i.exec(uri ?? '');
  if (!match) return undefined;
  return { ...(match[1] !== undefined && { user: match[1] }), hostPort: (match[2] ?? '').toLowerCase() };
}

function hostDomainMatches(configured: string, hostPort: string): boolean {
  // HOST_DOMAIN with a port must match host and port; without one, the host alone. Case does not matter.
  const hostDomain = configured.toLowerCase();
  if (/:\d+$/.test(hostDomain)) return hostPort === hostDomain;
  return hostPort.replace(/:\d+$/, '') === hostDomain;
}

export function planInboundCall(
  channel: AriChannel,
  rawArgs: readonly string[],
  facts: LegAFacts,
  config: Config,
  callId: string,
): InboundPlan {
  if (facts.loopHeader !== undefined || facts.loopVariable !== undefined) {
    return {
      ok: false,
      reason: `loop: the call already went through this service (call ${facts.loopHeader ?? facts.loopVariable})`,
      hangup: 'rejected',
    };
  }
  const uri = parseSipUri(facts.requestUri);
  const parsedArgs = parseStasisArgs(rawArgs);
  // An outbound call by the dialplan's or the `call` command's word did not come in over SIP for a domain.
  const outboundByDialplan = parsedArgs.ok && parsedArgs.args.direction === 'outbound';
  if (config.HOST_DOMAIN !== undefined && !outboundByDialplan) {
    // Fail closed: a request URI that cannot be read (not a SIP call, no URI) is not for HOST_DOMAIN.
    if (uri === undefined)
      return { ok: false, reason: 'HOST_DOMAIN is set and the request URI cannot be read: refused', hangup: 'rejected' };
    if (!hostDomainMatches(config.HOST_DOMAIN, uri.hostPort))
      return { ok: false, reason: `request URI domain "${uri.hostPort}" is not HOST_DOMAIN "${config.HOST_DOMAIN}"`, hangup: 'rejected' };
  }
  if (!parsedArgs.ok) return { ok: false, reason: `Stasis arguments: ${parsedArgs.reason}`, hangup: 'unallocated' };
  const { args } = parsedArgs;

  // `s` is no number: FreePBX passes number=${EXTEN} = s for an internal call without a DID.
  const given = (value: string | undefined) => (value && value !== 's' ? value : undefined);
  const dialled = given(args.number) ?? given(channel.dialplan.exten) ?? uri?.user;
  if (dialled === undefined)
    return { ok: false, reason: 'no dialled number (no number= argument, extension s, no request URI user)', hangup: 'unallocated' };
  return planDestination(
    {
      dialled,
      caller: channel.caller.number ?? '',
      callerName: channel.caller.name ?? '',
      headers: facts.headers,
      linkedId: facts.linkedId,
      fromAgent: isAgentCall(channel, config),
    },
    args,
    config,
    callId,
  );
}

/** Who calls a number the service dials (leg B, or a transfer's target), and what travels with the call. */
export interface DialRequest {
  dialled: string;
  caller: string;
  callerName: string;
  /** PASS_HEADERS values to put on the INVITE. */
  headers: Readonly<Record<string, string | undefined>>;
  linkedId: string;
  /** The party that dials comes from the agents' side (routing/call-origin.ts): only then the length rule. */
  fromAgent: boolean;
}

/**
 * Routes a number and builds the channel that dials it: the rules, mapping and destination
 * of the call's Stasis arguments; caller ID, the call's id and session headers, the chosen
 * X- headers and the loop marker on the new channel. Used for leg B and for the target of a
 * transfer (the number a party transferred the call to is routed as if dialled into it).
 */
export function planDestination(request: DialRequest, args: StasisArgs, config: Config, callId: string): InboundPlan {
  const { dialled, caller } = request;
  const dialledVerdict = checkNumber(dialled);
  if (!dialledVerdict.ok) return { ok: false, reason: `dialled number not dialable: ${dialledVerdict.reason}`, hangup: 'unallocated' };
  const decision = route(config.routing, {
    dialled,
    caller,
    ruleSet: args.ruleSet,
    destination: args.destination,
    direction: args.direction,
    fromAgent: request.fromAgent,
  });
  if (!decision.ok) return { ok: false, reason: decision.reason, hangup: 'unallocated' };

  let target: string;
  try {
    target = dialString(decision.destination, decision.number, {
      domainEndpoint: config.DESTINATION_ENDPOINT,
      trunkEndpoint: config.SIP_GATEWAY_ENDPOINT ?? config.DESTINATION_ENDPOINT,
      gateway: config.OUT_SIP_GATEWAY_IP === undefined ? undefined : { endpoint: GATEWAY_ENDPOINT, host: config.OUT_SIP_GATEWAY_IP },
    });
  } catch (error) {
    return { ok: false, reason: `destination not dialable: ${(error as Error).message}`, hangup: 'unallocated' };
  }

  const dropped: string[] = [];
  // Double underscore: inherited by every channel leg B creates (Local chains back into the PBX).
  const variables: Record<string, string> = { [`__${LOOP_VARIABLE}`]: callId };
  // PJSIP builds leg B's From from B's connected line. ARI's dial would copy A's caller ID
  // there unchecked when given `caller`, so the service dials without it and sets it here.
  if (checkCallerId(caller).ok) {
    variables['CONNECTEDLINE(num)'] = caller;
    const name = request.callerName;
    if (name !== '' && checkHeaderValue(name).ok && !/["\\]/.test(name)) variables['CONNECTEDLINE(name)'] = name;
  } else {
    dropped.push('caller ID (not a plain number)');
  }
  // SIP headers only exist on a SIP leg B; a dialplan target is a Local channel.
  if (decision.destination.kind !== 'dialplan') {
    const headers: Record<string, string> = {
      [LOOP_HEADER]: callId,
      [config.UNIQUE_CALL_ID_HEADER]: callId,
      [config.SESSION_ID_HEADER]: request.linkedId,
    };
    for (const name of config.PASS_HEADERS) {
      const value = request.headers[name];
      if (value === undefined) continue;
      const verdict = checkHeaderValue(value);
      if (verdict.ok) headers[name] = value;
      else dropped.push(`header ${name} (${verdict.reason})`);
    }
    for (const [name, value] of Object.entries(headers)) variables[`PJSIP_HEADER(add,${name})`] = value;
    // A REFER from this party raises a ChannelTransfer for the service instead of Asterisk's own transfer (docs/transfers.md).
    variables[TRANSFER_HANDLING_VARIABLE] = 'ari-only';
  }
  return {
    ok: true,
    dialled,
    number: decision.number,
    destination: decision.destination,
    direction: decision.direction,
    transport: args.transport ?? config.MEDIA_TRANSPORT,
    callId: args.callId,
    dialString: target,
    variables,
    rule: decision.rule,
    dropped,
  };
}

/**
 * The call's Stasis arguments as they apply to a transfer's number. What sends a call out
 * through the gateway (`direction=outbound`, `destination=gateway`: an agent's outbound
 * call) was the agent's choice for the number the agent dialled; a party off the agents'
 * side (the customer of that call) that transfers does not inherit it, or any number it
 * names would leave through the gateway.
 */
export function transferArgs(args: StasisArgs, fromAgent: boolean): StasisArgs {
  if (fromAgent) return args;
  const { direction, destination, ...rest } = args;
  return {
    ...rest,
    ...(direction !== undefined && direction !== 'outbound' && { direction }),
    ...(destination !== undefined && destination.kind !== 'gateway' && { destination }),
  };
}
