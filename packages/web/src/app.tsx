import { useEffect, useRef, useState } from 'react';
import { RuntrailProvider } from '@runtrail/client/react';
import { matchDashboardRunPath, type WhoamiResponse } from '@runtrail/protocol';
import { AccessProvider, accessOf, runLinkText, type Access } from './access.js';
import { client, serverUrl, token } from './client.js';
import { problemText } from './problem-text.js';
import { LoginPage } from './pages/LoginPage.js';
import { RunPage } from './pages/RunPage.js';
import { RunsPage } from './pages/RunsPage.js';
import { Link, usePath } from './router.js';
import { logOut } from './session.js';
import { visibleText } from './visible-text.js';

export function App() {
  const path = usePath();
  const runId = matchDashboardRunPath(path);
  const who = useWhoami();
  useFocusOnNewPage(path);
  if (who.error) {
    return (
      <main className="page">
        <p className="invalid" role="alert">
          {who.error}
        </p>
      </main>
    );
  }
  if (!who.value) return null;
  if (!who.value.principal) return <LoginPage rejected={token !== undefined} />;
  const access = accessOf(who.value.auth, who.value.principal);
  return (
    <AccessProvider access={access}>
      <RuntrailProvider url={serverUrl} token={token}>
        <nav className="topbar" aria-label="runtrail">
          <Link href="/" className="brand">
            runtrail
          </Link>
          {access.auth && <Identity access={access} />}
        </nav>
        {/* The key gives each run its own page state: nothing of one run can leak into the next (field note 3). */}
        {runId !== null ? <RunPage key={runId} id={runId} /> : <RunsPage />}
      </RuntrailProvider>
    </AccessProvider>
  );
}

/**
 * When the app moves to another page (a link, Retry, Delete, Back), the
 * focus goes to the new page's <main>: the link or button that had it is
 * gone with the old page, and a keyboard user's next Tab started again at
 * the top bar, with nothing said about the new page. Not on the first load,
 * where the browser (and the login box's autofocus) decide.
 */
function useFocusOnNewPage(path: string): void {
  const shown = useRef(path);
  useEffect(() => {
    if (shown.current === path) return;
    shown.current = path;
    document.querySelector<HTMLElement>('main')?.focus({ preventScroll: true });
  }, [path]);
}

/** Whether the server needs a token and what ours may do; asked once per page load. */
function useWhoami(): { value: WhoamiResponse | null; error: string | null } {
  const [state, setState] = useState<{ value: WhoamiResponse | null; error: string | null }>({ value: null, error: null });
  useEffect(() => {
    client.whoami().then(
      (value) => setState({ value, error: null }),
      // Asked once per load, so a reload is the retry.
      (err: unknown) => setState({ value: null, error: problemText(err, 'could not reach the server', 'reload the page to try again.') }),
    );
  }, []);
  return state;
}

function Identity({ access }: { access: Access }) {
  const p = access.principal;
  // A token's name is chosen by whoever made it: shown like every such text (see visibleText).
  const who = p.kind === 'scoped' ? `${visibleText(p.name)} (${p.scope})` : p.kind === 'run' ? runLinkText(p.write) : 'open';
  return (
    <span className="identity">
      <span className="muted" data-testid="identity">
        {who}
      </span>
      <button type="button" className="small" onClick={logOut}>
        Log out
      </button>
    </span>
  );
}
