import type { RunError } from '@runtrail/protocol';
import { ErrorText } from '../../components/ErrorText.js';
import { errorKindText } from '../../format.js';

export function RunErrorBox({ error }: { error: RunError | null }) {
  if (!error) return null;
  return (
    <div className="run-error" role="alert" data-testid="run-error">
      <strong data-testid="error-kind">{error.kind}</strong>: {errorKindText(error.kind)}
      <ErrorText message={error.message} label="run error details" />
    </div>
  );
}
