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
}

export interface RouteRequest {
  dialled: string;
  caller: string;
  ruleSet?: string | undefined;
  /** An override from the dialplan (Stasis argument destination=). */
  destination?: Destination | undefined;
}

export type RouteDecision =
  | { ok: true; number: string; destination: Destination; rule: string }
  | { ok: false; reason: string };

export function ruleSetsOf(table: RoutingTable): Set<string> {
  return new Set([DEFAULT_RULE_SET, ...table.rules.map((rule) => rule.set)]);
}

export function route(table: RoutingTable, request: RouteRequest): RouteDecision {
  const set = request.ruleSet ?? DEFAULT_RULE_SET;
  if (!ruleSetsOf(table).has(set)) return { ok: false, reason: `unknown rule set "${set}"` };

  for (const rule of table.rules) {
    if (rule.set !== set) continue;
    const calleeMatch = rule.callee ? rule.callee.exec(request.dialled) : null;
    if (rule.callee && calleeMatch === null) continue;
    if (rule.caller && !rule.caller.test(request.caller)) continue;
    const number = rule.number === undefined ? request.dialled : substitute(rule.number, calleeMatch);
    return decide(number, request.destination ?? rule.destination ?? table.defaultDestination, `rule "${rule.name}"`);
  }
  const fallback = request.destination ?? table.defaultDestination;
  if (fallback === undefined) return { ok: false, reason: `no rule of set "${set}" matches and there is no default destination` };
  return decide(request.dialled, fallback, 'default destination');
}

function decide(number: string, destination: Destination | undefined, rule: string): RouteDecision {
  if (destination === undefined) return { ok: false, reason: `${rule} matched but gives no destination, and there is no default` };
  const verdict = checkNumber(number);
  if (!verdict.ok) return { ok: false, reason: `${rule} produced the number "${number}": ${verdict.reason}` };
  return { ok: true, number, destination, rule: `${rule} → ${describeDestination(destination)}` };
}
