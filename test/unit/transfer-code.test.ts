import { describe, expect, it } from 'vitest';
import { MAX_TARGET_DIGITS, TransferCodeCollector, type TransferCodeStep } from '../../app/calls/transfer-code.js';

/** Keys `digits` from `startMs`, `stepMs` apart; every step in order. */
function key(collector: TransferCodeCollector, digits: string, startMs = 0, stepMs = 300): TransferCodeStep[] {
  return [...digits].flatMap((digit, i) => collector.push(digit, startMs + i * stepMs));
}

describe('TransferCodeCollector', () => {
  it('the code, the number and # make a transfer; nothing of them is passed on', () => {
    const collector = new TransferCodeCollector('##', 2000, 3000);
    expect(key(collector, '##4568#')).toEqual([{ kind: 'code' }, { kind: 'transfer', number: '4568' }]);
    expect(collector.collecting).toBe(false);
    expect(collector.deadlineMs).toBeUndefined();
  });

  it('a pause of the digit timeout ends the number; the deadline follows each digit', () => {
    const collector = new TransferCodeCollector('##', 2000, 3000);
    expect(key(collector, '##45')).toEqual([{ kind: 'code' }]);
    expect(collector.collecting).toBe(true);
    expect(collector.deadlineMs).toBe(900 + 3000);
    expect(collector.expire(3899)).toBeUndefined();
    expect(collector.expire(3900)).toEqual({ kind: 'transfer', number: '45' });
    // A digit after the deadline but before expire was called: the number is complete first.
    const late = new TransferCodeCollector('##', 2000, 3000);
    key(late, '##7');
    expect(late.push('1', 600 + 5000)).toEqual([
      { kind: 'transfer', number: '7' },
      { kind: 'pass', digits: '1' },
    ]);
  });

  it('the code with no number, # at once or a silence, or an endless number, is abandoned', () => {
    expect(key(new TransferCodeCollector('##'), '###')).toEqual([{ kind: 'code' }, { kind: 'abandoned' }]);
    const silent = new TransferCodeCollector('##', 2000, 3000);
    key(silent, '##');
    expect(silent.expire(300 + 3000)).toEqual({ kind: 'abandoned' });
    const endless = new TransferCodeCollector('##', 2000, 3000);
    expect(key(endless, `##${'1'.repeat(MAX_TARGET_DIGITS)}`)).toEqual([{ kind: 'code' }]);
    expect(endless.push('1', (2 + MAX_TARGET_DIGITS) * 300)).toEqual([{ kind: 'abandoned' }]);
  });

  it('a digit that may begin the code is held until the next digit or the gap says it does not', () => {
    const collector = new TransferCodeCollector('##', 2000, 3000);
    expect(collector.push('1', 0)).toEqual([{ kind: 'pass', digits: '1' }]);
    expect(collector.push('#', 100)).toEqual([]);
    expect(collector.deadlineMs).toBe(2100);
    expect(collector.push('5', 200)).toEqual([{ kind: 'pass', digits: '#5' }]);
    expect(collector.push('#', 300)).toEqual([]);
    expect(collector.expire(2300)).toEqual({ kind: 'pass', digits: '#' });
    // The gap passed unseen: the held digit goes on, then the new one is judged afresh.
    expect(collector.push('#', 3000)).toEqual([]);
    expect(collector.push('#', 6000)).toEqual([{ kind: 'pass', digits: '#' }]);
    expect(collector.push('#', 6100)).toEqual([{ kind: 'code' }]);
  });

  it('a longer code found after a false start; an empty code passes everything', () => {
    const collector = new TransferCodeCollector('*2*', 2000, 3000);
    expect(key(collector, '**2*')).toEqual([{ kind: 'pass', digits: '*' }, { kind: 'code' }]);
    const none = new TransferCodeCollector('');
    expect(key(none, '##1#')).toEqual(['#', '#', '1', '#'].map((digits) => ({ kind: 'pass', digits })));
  });

  it('reset drops what is held without passing it on', () => {
    const collector = new TransferCodeCollector('##', 2000, 3000);
    key(collector, '##12');
    collector.reset();
    expect(collector.collecting).toBe(false);
    expect(collector.push('3', 1000)).toEqual([{ kind: 'pass', digits: '3' }]);
  });
});
