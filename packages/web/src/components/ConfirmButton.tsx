import { useState } from 'react';

/**
 * A destructive action asks once more in place (no browser dialog, so it is
 * styled, keyboard-reachable and testable like the rest of the page). With
 * `reasonLabel` it also offers a text field, whose text `onConfirm` gets
 * (e.g. why a run was cancelled, shown to everyone who looks at it later).
 */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  disabled,
  danger,
  reasonLabel,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: (reason: string) => Promise<void>;
  disabled?: boolean;
  danger?: boolean;
  reasonLabel?: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [reason, setReason] = useState('');
  if (!asking) {
    return (
      <button type="button" className={danger ? 'danger' : undefined} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      {reasonLabel !== undefined && (
        <input
          type="text"
          className="confirm-reason"
          aria-label={reasonLabel}
          placeholder={reasonLabel}
          maxLength={8192}
          value={reason}
          onChange={(e) => setReason(e.target.value)}
        />
      )}
      <button
        type="button"
        className="danger"
        disabled={busy}
        autoFocus={reasonLabel === undefined}
        onClick={() => {
          setBusy(true);
          onConfirm(reason.trim()).finally(() => {
            setBusy(false);
            setAsking(false);
            setReason('');
          });
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" disabled={busy} onClick={() => setAsking(false)}>
        Keep it
      </button>
    </span>
  );
}
