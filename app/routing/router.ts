/**
 * The routing decision for one call, as a pure function: given the dialled
 * number, the caller, and what the dialplan chose (rule set, destination), it
 * returns the number to dial and where, or why the call is refused. It is the
 * seed proxy's behaviour (mapping, trunk mode vs domain mode) generalised to
 * ordered rules; see rules.ts for the rule format.
 */
import { checkNumber } from './dial-validator.js';
import { describeDestination, type Destination } from './destination.js';
import { DEFAULT_RULE_SET, substitute, type RoutingRule } from './rules.js';

export interface RoutingTable {
  /** The ini file's rules in order, then the DIALED_NUMBER_MAPPING rules. */
  rules: readonly RoutingRule[];
  /** SIP_GATEWAY_IP (trunk mode) when set, else DESTINATION_DOMAIN, else none. */
  defaultDestination?: Destination | undefined;
  /** The outbound gateway: its prefix when configured, else the keys it lacks. */
  outbound: { prefix: string } | { missing: readonly string[] };
}

export interface RouteRequest {
  dialled: string;
  caller: string;
  ruleSet?: string | undefined;
  /** An override from the dialplan (Stasis argument destination=). */
  destination?: Destination | undefined;
  /** `outbound` when the dialplan says so (Stasis argument direction=outbound). */
  direction?: 'inbound' | 'outbound' | undefined;
  /**
   * The call comes from the agents' side (call-origin.ts): only then may the length rule send
   * it out through the outbound gateway. A trunk's call reaches the gateway only by a rule
   * with `destination = gateway` or the dialplan's `destination=gateway` / `direction=outbound`.
   */
  fromAgent?: boolean | undefined;
}

export type RouteDecision =
  { ok: true; number: string; destination: Destination; rule: string; direction: 'inbound' | 'outbound' } | { ok: false; reason: string };

// The seed proxy's test for an outbound call: a destination longer than 10 digits (agents' calls only).
const OUTBOUND_NUMBER = /^\+?\d{11,}$/;

export function ruleSetsOf(table: RoutingTable): Set<string> {
  return new Set([DEFAULT_RULE_SET, ...table.rules.map((rule) => rule.set)]);
}

export function route(table: RoutingTable, request: RouteRequest): RouteDecision {
  if (request.direction === 'outbound') return outbound(table, request.dialled, 'direction=outbound');
  const set = request.ruleSet ?? DEFAULT_RULE_SET;
  if (!ruleSetsOf(table).has(set)) return { ok: false, reason: `unknown rule set "${set}"` };

  for (const rule of table.rules) {
    if (rule.set !== set) continue;
    const calleeMatch = rule.callee ? rule.callee.exec(request.dialled) : null;
    if (rule.callee && calleeMatch === null) continue;
    if (rule.caller && !rule.caller.test(request.caller)) continue;
    const number = rule.number === undefined ? request.dialled : substitute(rule.number, calleeMatch);
    const destination = request.destination ?? rule.destination ?? table.defaultDestination;
    if (destination?.kind === 'gateway') return outbound(table, number, `rule "${rule.name}"`);
    return decide(number, destination, `rule "${rule.name}"`, 'inbound');
  }
  if (request.destination?.kind === 'gateway') return outbound(table, request.dialled, 'destination=gateway');
  if (request.fromAgent === true && 'prefix' in table.outbound && OUTBOUND_NUMBER.test(request.dialled)) {
    return outbound(table, request.dialled, "more than 10 digits, an agent's call");
  }
  const fallback = request.destination ?? table.defaultDestination;
  if (fallback === undefined) return { ok: false, reason: `no rule of set "${set}" matches and there is no default destination` };
  return decide(request.dialled, fallback, 'default destination', 'inbound');
}

/** Out through the outbound gateway, with a leading OUTBOUND_CALL_PREFIX stripped. */
function outbound(table: RoutingTable, dialled: string, why: string): RouteDecision {
  if (!('prefix' in table.outbound)) {
    return {
      ok: false,
      reason: `outbound call (${why}) but the outbound gateway is not configured: missing ${table.outbound.missing.join(', ')}`,
    };
  }
  const { prefix } = table.outbound;
  const number = prefix !== '' && dialled.startsWith(prefix) && dialled.length > prefix.length ? dialled.slice(prefix.length) : dialled;
  return decide(number, { kind: 'gateway' }, `outbound (${why})`, 'outbound');
}

function decide(number: string, destination: Destination | undefined, rule: string, direction: 'inbound' | 'outbound'): RouteDecision {
  if (destination === undefined) return { ok: false, reason: `${rule} matched but gives no destination, and there is no default` };
  const verdict = checkNumber(number);
  // The number stays out of the reason: reasons are logged, numbers only under `numbers` (masked).
  if (!verdict.ok) return { ok: false, reason: `${rule} produced a number that is not dialable: ${verdict.reason}` };
  return { ok: true, number, destination, rule: `${rule} → ${describeDestination(destination)}`, direction };
}
