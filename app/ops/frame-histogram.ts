/**
 * A Prometheus histogram without labels for values observed on every audio
 * frame (thousands a second): observe() only bumps one slot of a typed array.
 * prom-client's Histogram hashes its labels and builds a closure on each
 * observation; here the work waits for a scrape, where get() returns the same
 * shape prom-client's own metrics return, so the registry prints it like any
 * other (`_bucket{le=...}`, `_sum`, `_count`).
 */
import type { Registry } from 'prom-client';

interface Value {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class FrameHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #upperBounds: readonly number[];
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(options: { name: string; help: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = options.name;
    this.help = options.help;
    this.#upperBounds = [...options.buckets].sort((a, b) => a - b);
    this.#counts = new Float64Array(this.#upperBounds.length + 1);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  observe(value: number): void {
    const bounds = this.#upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    const values: Value[] = [];
    let cumulative = 0;
    this.#upperBounds.forEach((le, i) => {
      cumulative += this.#counts[i]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { le }, value: cumulative });
    });
    values.push(
      { metricName: `${this.name}_bucket`, labels: { le: '+Inf' }, value: this.#count },
      { metricName: `${this.name}_sum`, labels: {}, value: this.#sum },
      { metricName: `${this.name}_count`, labels: {}, value: this.#count },
    );
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }
}
