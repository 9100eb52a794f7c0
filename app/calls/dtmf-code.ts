/**
 * Recognises a code keyed on a phone (PAUSE_DTMF_CODE, `*81` by default) in a
 * leg's DTMF as ARI reports it, digit by digit: the code counts when its
 * digits come in order, each within `gapMs` of the one before. Asterisk's own
 * feature codes (features.conf's applicationmap) do not work for channels in a
 * Stasis app's bridges, so the service listens for the code itself. Pure; the
 * digits are never kept beyond the code's length.
 */
export class DtmfCodeDetector {
  readonly #code: string;
  readonly #gapMs: number;
  #recent = '';
  #lastAtMs = -Infinity;

  constructor(code: string, gapMs = 2000) {
    this.#code = code;
    this.#gapMs = gapMs;
  }

  /** One digit keyed at `atMs`; true when it completes the code. */
  push(digit: string, atMs: number): boolean {
    if (this.#code === '') return false;
    if (atMs - this.#lastAtMs > this.#gapMs) this.#recent = '';
    this.#lastAtMs = atMs;
    this.#recent = (this.#recent + digit).slice(-this.#code.length);
    if (this.#recent !== this.#code) return false;
    this.#recent = '';
    return true;
  }
}
