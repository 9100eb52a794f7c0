import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FrameHistogram } from '../../app/ops/frame-histogram.js';

const BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01];

describe('FrameHistogram', () => {
  it("prints what prom-client's Histogram prints for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const fast = new FrameHistogram({ name: 'x_seconds', help: 'Latency.', buckets: BUCKETS, registers: [ours] });
    const reference = new Histogram({ name: 'x_seconds', help: 'Latency.', buckets: BUCKETS, registers: [theirs] });
    // On a bound, between bounds, above them all, and zero.
    for (const value of [0, 0.0001, 0.0005, 0.0007, 0.001, 0.002, 0.0049, 0.01, 0.5, 30]) {
      fast.observe(value);
      reference.observe(value);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('prints zeros before any observation, and again after a reset', async () => {
    const registry = new Registry();
    const fast = new FrameHistogram({ name: 'y_seconds', help: 'Latency.', buckets: BUCKETS, registers: [registry] });
    const empty = await registry.metrics();
    expect(empty).toMatch(/^y_seconds_bucket\{le="\+Inf"\} 0$/m);
    expect(empty).toMatch(/^y_seconds_count 0$/m);
    fast.observe(0.003);
    expect(await registry.metrics()).toMatch(/^y_seconds_bucket\{le="0.005"\} 1$/m);
    registry.resetMetrics();
    expect(await registry.metrics()).toBe(empty);
  });

  it('takes bounds in any order', async () => {
    const registry = new Registry();
    const fast = new FrameHistogram({ name: 'z_seconds', help: 'Latency.', buckets: [0.01, 0.001], registers: [registry] });
    fast.observe(0.005);
    const text = await registry.metrics();
    expect(text).toMatch(/^z_seconds_bucket\{le="0.001"\} 0$/m);
    expect(text).toMatch(/^z_seconds_bucket\{le="0.01"\} 1$/m);
  });
});
