import { memo } from 'react';
import type { Snapshot } from '@runtrail/protocol';
import { formatNumber } from '../../format.js';
import { visibleText } from '../../visible-text.js';

/**
 * The call counters and the named ones. Memoised on the counters (the
 * snapshot keeps the object while they do not change) and two numbers the
 * page works out from the snapshot, so an event that changes another part
 * of it leaves the panel be.
 */
export const Counters = memo(function Counters({ counters, madeCalls, unfinished }: { counters: Snapshot['counters']; madeCalls: boolean; unfinished: number }) {
  const { ok, failed, retries, named } = counters;
  // Named counters (tokens, bytes) are shown even by a run without calls.
  if (!madeCalls && Object.keys(named).length === 0) return null;
  return (
    <section className="panel" aria-labelledby="counters-title">
      <h2 id="counters-title">Calls</h2>
      <div className="counters">
        <Counter kind="ok" value={ok} name="OK" said="succeeded" />
        <Counter kind="failed" value={failed} name="Failed" said="failed" />
        <Counter kind="retries" value={retries} name="Retries" said="retries" />
        {/* In flight when the run ended: striped on the timeline, and counted here so the two agree. */}
        {unfinished > 0 && <Counter kind="unfinished" value={unfinished} name="Unfinished" said="never finished: the run ended first" />}
      </div>
      {Object.keys(named).length > 0 && (
        <dl className="named-counters">
          {Object.entries(named).map(([name, value]) => (
            <div key={name}>
              <dt>{visibleText(name)}</dt>
              <dd>{formatNumber(value)}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
});

/** One call counter: `kind` is its class and test id, `said` what a screen reader says after the number. */
function Counter({ kind, value, name, said }: { kind: 'ok' | 'failed' | 'retries' | 'unfinished'; value: number; name: string; said: string }) {
  return (
    <div className={`counter ${kind}`}>
      <span className="value" data-testid={`counter-${kind}`} aria-label={`${value} ${said}`}>
        {value}
      </span>
      <span className="name">{name}</span>
    </div>
  );
}
