import { describe, expect, it } from 'vitest';
import { DtmfCodeDetector } from '../../app/calls/dtmf-code.js';

describe('DtmfCodeDetector', () => {
  it('recognises the code keyed in order, each digit within the gap, and again after', () => {
    const code = new DtmfCodeDetector('*81', 2000);
    expect(['*', '8', '1'].map((d, i) => code.push(d, 1000 + i * 300))).toEqual([false, false, true]);
    expect(['*', '8', '1'].map((d, i) => code.push(d, 5000 + i * 300))).toEqual([false, false, true]);
  });

  it('finds it after other digits, but not across a long gap or out of order', () => {
    const code = new DtmfCodeDetector('*81', 2000);
    expect(['4', '1', '*', '8', '1'].map((d, i) => code.push(d, i * 100)).at(-1)).toBe(true);
    const slow = new DtmfCodeDetector('*81', 2000);
    expect([slow.push('*', 0), slow.push('8', 2500), slow.push('1', 2700)]).toEqual([false, false, false]);
    const wrong = new DtmfCodeDetector('*81', 2000);
    expect(['8', '*', '1'].map((d, i) => wrong.push(d, i * 100))).toEqual([false, false, false]);
  });

  it('an empty code never matches', () => {
    const none = new DtmfCodeDetector('');
    expect(['*', '8', '1'].map((d) => none.push(d, 0))).toEqual([false, false, false]);
  });
});
