import type { Snapshot } from '@runtrail/protocol';
import { formatNumber } from '../../format.js';

export function Counters({ snapshot }: { snapshot: Snapshot }) {
  const { ok, failed, retries, named } = snapshot.counters;
  return (
    <section className="panel" aria-labelledby="counters-title">
      <h2 id="counters-title">Calls</h2>
      <div className="counters">
        <div className="counter ok">
          <span className="value" data-testid="counter-ok" aria-label={`${ok} succeeded`}>
            {ok}
          </span>
          <span className="name">OK</span>
        </div>
        <div className="counter failed">
          <span className="value" data-testid="counter-failed" aria-label={`${failed} failed`}>
            {failed}
          </span>
          <span className="name">Failed</span>
        </div>
        <div className="counter retries">
          <span className="value" data-testid="counter-retries" aria-label={`${retries} retries`}>
            {retries}
          </span>
          <span className="name">Retries</span>
        </div>
      </div>
      {Object.keys(named).length > 0 && (
        <dl className="named-counters">
          {Object.entries(named).map(([name, value]) => (
            <div key={name}>
              <dt>{name}</dt>
              <dd>{formatNumber(value)}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}
