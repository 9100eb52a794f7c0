/**
 * Which side of the PBX a call comes from, for the one decision that depends
 * on it: the seed's length rule (an unmatched number of more than 10 digits
 * leaves through the outbound gateway) is for agents' calls only. A call from
 * a trunk that could use it would be toll fraud: anyone dialling an E.164 DID
 * would be dialled back out to the PSTN at the operator's cost. So a call is an
 * agent's only when the configuration says so, by the dialplan context that
 * sent it to the app (INTERNAL_CONTEXTS) or the PJSIP endpoint it came from
 * (INTERNAL_ENDPOINTS); every other call is treated as coming from a trunk.
 * The `call` command and `direction=outbound` do not need this: they are
 * outbound by the dialplan's or the operator's explicit word.
 */

/** A comma-separated list of names where `*` stands for any characters (`2*`, `from-internal`). */
export type NamePatterns = readonly RegExp[];

const PATTERN_ITEM = /^[A-Za-z0-9_.*-]{1,80}$/;

/** Parses INTERNAL_CONTEXTS / INTERNAL_ENDPOINTS; throws an Error naming the bad item. */
export function parseNamePatterns(value: string): NamePatterns {
  const items = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  return items.map((item) => {
    if (!PATTERN_ITEM.test(item)) throw new Error(`"${item}" is not a name or pattern (letters, digits, _ . - and * for any characters)`);
    const escaped = item.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
    return new RegExp(`^${escaped}$`);
  });
}

/** The PJSIP endpoint of a channel name: `PJSIP/201-0000002a` → `201`; undefined for other technologies. */
export function endpointOfChannel(name: string): string | undefined {
  const match = /^PJSIP\/(.+)-[0-9a-f]{8}$/i.exec(name);
  return match?.[1];
}

export interface AgentSide {
  INTERNAL_CONTEXTS: NamePatterns;
  INTERNAL_ENDPOINTS: NamePatterns;
}

// What a context or endpoint name may be for `*` to match it: a value with other characters is no one's.
const NAME = /^[A-Za-z0-9_.-]{1,80}$/;

/** True when the configuration names the call's context or endpoint as the agents' side. */
export function isAgentCall(channel: { name: string; dialplan: { context: string } }, config: AgentSide): boolean {
  const context = channel.dialplan.context;
  if (NAME.test(context) && config.INTERNAL_CONTEXTS.some((pattern) => pattern.test(context))) return true;
  const endpoint = endpointOfChannel(channel.name);
  return endpoint !== undefined && NAME.test(endpoint) && config.INTERNAL_ENDPOINTS.some((pattern) => pattern.test(endpoint));
}
