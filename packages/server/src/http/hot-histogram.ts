import type { Registry } from 'prom-client';

/**
 * A Prometheus histogram cheap enough for per-frame and per-request paths:
 * its label values are fixed when it is made, and `observe` is a bucket
 * search and three additions. prom-client's Histogram hashes the label
 * object and validates it on every observation, which under 1,000 watchers
 * cost 3-5 % of the server's time for one delivery-latency observation per
 * frame. The exposition is the same (`_bucket{le}` cumulative, `+Inf`,
 * `_sum`, `_count` per label set), rendered by the registry like any metric.
 */
export class HotHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: Map<L, Series>;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[],
    private readonly labelName: string | null,
    labelValues: readonly L[],
    registry: Registry,
  ) {
    this.series = new Map(labelValues.map((value) => [value, { counts: new Float64Array(buckets.length), sum: 0, count: 0 }]));
    // The registry reads only `name` and `get()`; its type asks for prom-client's own Metric class.
    registry.registerMetric(this as never);
  }

  /** `times` observations of `value` (seconds) under the label value `label`. */
  observe(label: L, value: number, times = 1): void {
    const series = this.series.get(label);
    if (!series || !Number.isFinite(value)) return;
    const { buckets } = this;
    for (let i = 0; i < buckets.length; i++) {
      if (value <= buckets[i]!) {
        series.counts[i]! += times;
        break;
      }
    }
    series.sum += value * times;
    series.count += times;
  }

  /** What the registry renders (prom-client's metric shape; bucket lines read `{le="…",<label>="…"}` as prom-client's do). */
  get(): { name: string; help: string; type: string; aggregator: string; values: Sample[] } {
    const values: Sample[] = [];
    for (const [label, { counts, sum, count }] of this.series) {
      const sharedLabels: Record<string, string> = this.labelName === null ? {} : { [this.labelName]: label };
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += counts[i]!;
        values.push({ labels: { le }, sharedLabels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

interface Sample {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

interface Series {
  counts: Float64Array;
  sum: number;
  count: number;
}
