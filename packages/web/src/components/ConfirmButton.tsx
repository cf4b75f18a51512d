import { useEffect, useRef, useState, type KeyboardEvent } from 'react';

/**
 * A destructive action asks once more in place (no browser dialog, so it is
 * styled, keyboard-reachable and testable like the rest of the page). With
 * `reasonLabel` it also offers a text field, whose text `onConfirm` gets
 * (e.g. why a run was cancelled, shown to everyone who looks at it later).
 * The question takes the focus (its reason field, else its confirm button),
 * Enter in the reason confirms, Escape keeps things as they are, and either way the focus then goes
 * back to the button: a keyboard user never lands on the page's body. So the button is never
 * `disabled`, which could not hold the focus (Cancel run is unavailable once a cancel was asked),
 * but aria-disabled: announced and shown as unavailable, and a click does nothing.
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
  const button = useRef<HTMLButtonElement>(null);
  const giveFocusBack = useRef(false);
  useEffect(() => {
    if (asking || !giveFocusBack.current) return;
    giveFocusBack.current = false;
    button.current?.focus();
  }, [asking]);
  const keep = () => {
    giveFocusBack.current = true;
    setAsking(false);
  };
  const confirm = () => {
    setBusy(true);
    onConfirm(reason.trim()).finally(() => {
      giveFocusBack.current = true;
      setBusy(false);
      setAsking(false);
      setReason('');
    });
  };
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && !busy) {
      e.preventDefault();
      keep();
    }
  };
  if (!asking) {
    return (
      <button ref={button} type="button" className={danger ? 'danger' : undefined} aria-disabled={disabled || undefined} onClick={() => !disabled && setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question} onKeyDown={onKeyDown}>
      <span>{question}</span>
      {reasonLabel !== undefined && (
        <input
          type="text"
          className="confirm-reason"
          aria-label={reasonLabel}
          placeholder={reasonLabel}
          maxLength={8192}
          autoFocus
          value={reason}
          onChange={(e) => setReason(e.target.value)}
          // Typed a reason, pressed Enter: that is the confirmation, as in any form.
          onKeyDown={(e) => {
            if (e.key === 'Enter' && !busy) {
              e.preventDefault();
              confirm();
            }
          }}
        />
      )}
      <button
        type="button"
        className="danger"
        disabled={busy}
        autoFocus={reasonLabel === undefined}
        onClick={confirm}
      >
        {confirmLabel}
      </button>
      <button type="button" disabled={busy} onClick={keep}>
        Keep it
      </button>
    </span>
  );
}
