/**
 * DIALED_NUMBER_MAPPING, the seed proxy's fixed map of dialled numbers:
 * `1233:4567,1234:5678` turns a call to 1233 into a call to 4567. Parsing
 * checks both sides with the dial validator, so a bad mapping fails at start-up
 * rather than on the first call.
 */
import { checkNumber } from './dial-validator.js';

export type NumberMapping = ReadonlyMap<string, string>;

export function parseNumberMapping(text: string): NumberMapping {
  const mapping = new Map<string, string>();
  for (const rawPair of text.split(',')) {
    const pair = rawPair.trim();
    if (pair === '') continue;
    const parts = pair.split(':');
    if (parts.length !== 2) throw new Error(`"${pair}" is not FROM:TO`);
    const [from, to] = parts.map((part) => part.trim()) as [string, string];
    for (const side of [from, to]) {
      const verdict = checkNumber(side);
      if (!verdict.ok) throw new Error(`"${side}" in "${pair}": ${verdict.reason}`);
    }
    if (mapping.has(from)) throw new Error(`"${from}" is mapped twice`);
    mapping.set(from, to);
  }
  return mapping;
}

/** The number to dial for `dialled`: its mapping when it has one, else itself. */
export function mapDialledNumber(mapping: NumberMapping, dialled: string): string {
  return mapping.get(dialled) ?? dialled;
}
