/**
 * The blind-transfer feature code keyed on a phone (BLIND_TRANSFER_CODE, `##`
 * by default, FreePBX's blindxfer), digit by digit as ARI reports a leg's
 * DTMF: the code, then the target's digits until `#` or a pause of
 * `digitTimeoutMs`. Asterisk runs no features.conf codes on the ARI bridges of
 * the service (docs/transfers.md), so the service collects them itself.
 *
 * The digits of the code and of the target are the caller's business, not the
 * transcript's: a digit that may begin the code is held back until it turns
 * out not to (the next digit, or the gap passing), and only then passed on
 * (STREAM_DTMF); the code and the number are never passed on. Pure: the
 * session feeds it digits and times and calls `expire` at `deadlineMs`; a
 * digit held or collected yields no step.
 */

/** What became of the digits so far. */
export type TransferCodeStep =
  /** Digits that are not part of a code: the session handles them as ordinary DTMF (possibly none). */
  | { kind: 'pass'; digits: string }
  /** The code was keyed: the target's digits follow. */
  | { kind: 'code' }
  /** The target's number, ended by `#` or by the timeout. */
  | { kind: 'transfer'; number: string }
  /** The code was keyed but no number followed (`#` at once, the timeout, or a number too long). */
  | { kind: 'abandoned' };

/** Longer than any number a phone would transfer to: more digits abandon the transfer. */
export const MAX_TARGET_DIGITS = 32;

const TERMINATOR = '#';

export class TransferCodeCollector {
  readonly #code: string;
  readonly #gapMs: number;
  readonly #digitTimeoutMs: number;
  /** Digits that may be the start of the code. */
  #held = '';
  /** The target's digits, once the code was keyed (undefined before). */
  #target: string | undefined;
  #lastAtMs = 0;

  /** `gapMs`: most time between the code's digits; `digitTimeoutMs`: most time before each of the target's digits. */
  constructor(code: string, gapMs = 2000, digitTimeoutMs = 3000) {
    this.#code = code;
    this.#gapMs = gapMs;
    this.#digitTimeoutMs = digitTimeoutMs;
  }

  /** True while the code's digits or the target's are being collected. */
  get collecting(): boolean {
    return this.#target !== undefined;
  }

  /** When `expire` must be called (ms, the clock of `push`), or undefined when nothing waits. */
  get deadlineMs(): number | undefined {
    if (this.#target !== undefined) return this.#lastAtMs + this.#digitTimeoutMs;
    if (this.#held !== '') return this.#lastAtMs + this.#gapMs;
    return undefined;
  }

  /**
   * One digit keyed at `atMs`: what it and the time since the last digit made of the digits
   * so far, in order (a late digit may first complete a target or pass held digits on).
   */
  push(digit: string, atMs: number): TransferCodeStep[] {
    if (this.#code === '') return [{ kind: 'pass', digits: digit }];
    const late = this.expire(atMs);
    const steps = late === undefined ? [] : [late];
    this.#lastAtMs = atMs;
    if (this.#target !== undefined) {
      const step = this.#targetDigit(digit);
      return step === undefined ? steps : [...steps, step];
    }
    this.#held += digit;
    // What cannot begin the code goes on, oldest first.
    let passed = '';
    while (this.#held !== '' && !this.#code.startsWith(this.#held)) {
      passed += this.#held[0];
      this.#held = this.#held.slice(1);
    }
    if (passed !== '') steps.push({ kind: 'pass', digits: passed });
    if (this.#held === this.#code) {
      this.#held = '';
      this.#target = '';
      steps.push({ kind: 'code' });
    }
    return steps;
  }

  /**
   * Time passes (`atMs`): digits held for a code that did not come are passed on, a target
   * whose digits stopped is complete. Nothing happens before `deadlineMs`.
   */
  expire(atMs: number): TransferCodeStep | undefined {
    const deadline = this.deadlineMs;
    if (deadline === undefined || atMs < deadline) return undefined;
    if (this.#target !== undefined) {
      const number = this.#target;
      this.#target = undefined;
      return number === '' ? { kind: 'abandoned' } : { kind: 'transfer', number };
    }
    const digits = this.#held;
    this.#held = '';
    return { kind: 'pass', digits };
  }

  /** Forgets everything held (the digits are dropped, not passed on). */
  reset(): void {
    this.#held = '';
    this.#target = undefined;
  }

  #targetDigit(digit: string): TransferCodeStep | undefined {
    const target = this.#target ?? '';
    if (digit === TERMINATOR) {
      this.#target = undefined;
      return target === '' ? { kind: 'abandoned' } : { kind: 'transfer', number: target };
    }
    if (target.length >= MAX_TARGET_DIGITS) {
      this.#target = undefined;
      return { kind: 'abandoned' };
    }
    this.#target = target + digit;
    return undefined;
  }
}
