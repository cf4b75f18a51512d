import type { Snapshot } from '@runtrail/protocol';
import { MetricChart } from '../../components/MetricChart.js';

export function Metrics({ snapshot }: { snapshot: Snapshot }) {
  const names = Object.keys(snapshot.metrics).sort();
  if (names.length === 0) return null;
  return (
    <section className="panel" aria-labelledby="metrics-title">
      <h2 id="metrics-title">Metrics</h2>
      <div className="metrics">
        {names.map((name) => (
          <MetricChart key={name} name={name} metric={snapshot.metrics[name]!} />
        ))}
      </div>
    </section>
  );
}
