import { useState, type FormEvent } from 'react';
import { RuntrailClient } from '@runtrail/client';
import { serverUrl } from '../client.js';
import { TRY_AGAIN, problemText } from '../problem-text.js';
import { logIn } from '../session.js';
import { useDocumentTitle } from './run/use-document-title.js';

/**
 * Shown when the server needs a token and this tab has none that works:
 * the token is checked with the server before it is kept.
 */
export function LoginPage({ rejected }: { rejected: boolean }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(rejected ? 'The token this tab had is not valid any more (expired or revoked).' : null);
  const [checking, setChecking] = useState(false);
  useDocumentTitle('Log in · runtrail');

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const value = token.trim();
    if (!value) return;
    setChecking(true);
    setError(null);
    new RuntrailClient({ url: serverUrl, token: value }).whoami().then(
      (who) => {
        if (who.principal) logIn(value);
        else {
          setChecking(false);
          setError('This server does not accept that token.');
        }
      },
      (err: unknown) => {
        setChecking(false);
        setError(problemText(err, 'could not check the token', TRY_AGAIN));
      },
    );
  };

  return (
    <main className="page login">
      <h1>Log in</h1>
      <p>This runtrail server needs a token. Paste one (an admin gets them with <code>runtrail tokens create</code>).</p>
      <form className="panel login-form" onSubmit={submit}>
        <label>
          Token
          <input
            type="password"
            name="token"
            autoComplete="off"
            spellCheck={false}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            aria-label="token"
            autoFocus
          />
        </label>
        <button type="submit" className="primary" disabled={checking || token.trim() === ''}>
          {checking ? 'Checking…' : 'Log in'}
        </button>
        <p className="muted">Kept for this browser tab only (session storage).</p>
      </form>
      {error && (
        <p className="invalid" role="alert">
          {error}
        </p>
      )}
    </main>
  );
}
