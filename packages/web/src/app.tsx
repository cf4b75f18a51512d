import { RuntrailProvider } from '@runtrail/client/react';
import { serverUrl } from './client.js';
import { RunPage } from './pages/RunPage.js';
import { RunsPage } from './pages/RunsPage.js';
import { Link, usePath } from './router.js';

const RUN_PATH = /^\/runs\/([^/]+)\/?$/;

export function App() {
  const path = usePath();
  const match = RUN_PATH.exec(path);
  return (
    <RuntrailProvider url={serverUrl}>
      <nav className="topbar" aria-label="runtrail">
        <Link href="/" className="brand">
          runtrail
        </Link>
      </nav>
      {/* The key gives each run its own page state: nothing of one run can leak into the next (field note 3). */}
      {match ? <RunPage key={match[1]} id={decodeURIComponent(match[1]!)} /> : <RunsPage />}
    </RuntrailProvider>
  );
}
