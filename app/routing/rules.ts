/**
 * Routing rules: ordered, kept in the ini file as one section per rule, each
 * matching the caller and/or the callee by regular expression and giving the
 * number to dial (with capture-group substitution) and where to send it.
 *
 *   [rule strip-prefix]        ; sections are rules in file order; first match wins
 *   set = default              ; rule set (chosen by Stasis(...,rules=SET)); default "default"
 *   callee = 55(\d{4})         ; whole-string regular expressions; a rule with neither
 *   caller = 1\d{3}            ;   callee nor caller matches every call (a default route)
 *   number = $1                ; $1..$9 and $<name> from the callee's match; default: as dialled
 *   destination = trunk:10.1.0.4:5060   ; domain:HOST, trunk:HOST or dialplan:CONTEXT;
 *                                       ; default: SIP_GATEWAY_IP (trunk), else DESTINATION_DOMAIN
 *
 * The seed's DIALED_NUMBER_MAPPING is the simple case: each FROM:TO pair is a
 * rule `callee = FROM`, `number = TO`, to the default destination, placed after
 * the rules of the file.
 */
import { parseDestination, type Destination } from './destination.js';
import type { NumberMapping } from './number-mapping.js';

export interface RoutingRule {
  name: string;
  set: string;
  callee?: RegExp;
  caller?: RegExp;
  /** Template of the number to dial; undefined: the dialled number. */
  number?: string;
  /** undefined: the default destination. */
  destination?: Destination;
}

export const DEFAULT_RULE_SET = 'default';
const RULE_KEYS = new Set(['set', 'callee', 'caller', 'number', 'destination']);

function wholeMatch(pattern: string, what: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (error) {
    throw new Error(`${what} "${pattern}" is not a regular expression: ${(error as Error).message}`, { cause: error });
  }
}

/** One rule from an ini section's keys; throws an Error naming the bad key. */
export function parseRule(name: string, keys: ReadonlyMap<string, string>): RoutingRule {
  for (const key of keys.keys()) {
    if (!RULE_KEYS.has(key)) throw new Error(`unknown key "${key}" (a rule has ${[...RULE_KEYS].join(', ')})`);
  }
  const rule: RoutingRule = { name, set: keys.get('set') ?? DEFAULT_RULE_SET };
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(rule.set)) throw new Error(`set "${rule.set}" is not a rule set name`);
  const callee = keys.get('callee');
  const caller = keys.get('caller');
  if (callee !== undefined) rule.callee = wholeMatch(callee, 'callee');
  if (caller !== undefined) rule.caller = wholeMatch(caller, 'caller');
  const number = keys.get('number');
  if (number !== undefined) {
    const groups = (rule.callee?.source.match(/\((?!\?:)/g) ?? []).length;
    for (const reference of number.matchAll(/\$(\d)/g)) {
      if (Number(reference[1]) > groups) throw new Error(`number "${number}" refers to $${reference[1]} but callee has ${groups} group(s)`);
    }
    rule.number = number;
  }
  const destination = keys.get('destination');
  if (destination !== undefined) {
    try {
      rule.destination = parseDestination(destination);
    } catch (error) {
      throw new Error(`destination: ${(error as Error).message}`, { cause: error });
    }
  }
  return rule;
}

/** The mapping pairs as rules of the default set. */
export function mappingRules(mapping: NumberMapping): RoutingRule[] {
  // Named by position, not by number: rule names are logged, numbers only masked.
  return [...mapping].map(([from, to], index) => ({
    name: `DIALED_NUMBER_MAPPING pair ${index + 1}`,
    set: DEFAULT_RULE_SET,
    callee: new RegExp(`^${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
    number: to,
  }));
}

/** Fills `$1`..`$9` and `$<name>` of `template` from a regular expression match. */
export function substitute(template: string, match: RegExpExecArray | null): string {
  return template.replace(/\$(\d)|\$<([A-Za-z_][A-Za-z0-9_]*)>/g, (_all, index: string | undefined, name: string | undefined) => {
    if (index !== undefined) return match?.[Number(index)] ?? '';
    return match?.groups?.[name ?? ''] ?? '';
  });
}
