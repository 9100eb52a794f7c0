/** Helpers for codec tests: hex fixtures, and the stable code of a thrown error. */

/** Bytes from hex text; spaces are ignored (`'80 00 12 34'`). */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/ /g, ''), 'hex');
}

/** The `code` of what `action` throws; fails the test when it throws nothing. */
export function codeOf(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  throw new Error('expected a throw');
}
