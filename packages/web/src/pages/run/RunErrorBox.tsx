import type { RunError } from '@runtrail/protocol';
import { errorKindText } from '../../format.js';

export function RunErrorBox({ error }: { error: RunError | null }) {
  if (!error) return null;
  return (
    <div className="run-error" role="alert" data-testid="run-error">
      <strong data-testid="error-kind">{error.kind}</strong>: {errorKindText(error.kind)}
      <div className="mono">{error.message}</div>
    </div>
  );
}
