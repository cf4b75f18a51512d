import { readFileSync } from 'node:fs';

/**
 * Descriptors a server needs besides its clients' connections: the
 * database and its journal, artifacts being written or read, the
 * listening socket, log files, a PostgreSQL pool.
 */
const FILES_BESIDES_CONNECTIONS = 64;

/**
 * The process's limit of open files (`ulimit -n`), or null where it cannot
 * be read (not Linux). The soft one: Node raised it to the hard one as it
 * started, so it is what the process has.
 */
export function openFileLimit(limitsText: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | null {
  let text: string;
  try {
    text = limitsText();
  } catch (err) {
    // No /proc (macOS, Windows): the limit is unknown and there is nothing to warn about.
    void err;
    return null;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  return soft === undefined || soft === 'unlimited' ? null : Number(soft);
}

/**
 * What to warn about when one client address may hold more connections
 * than the process may open files: maxHttpConnectionsPerIp protects the
 * server only below that limit; at or above it, one client could take
 * every descriptor and the server could accept no one (nor open its
 * database or an artifact). Null when the limit leaves room.
 */
export function openFileLimitProblem(maxHttpConnectionsPerIp: number, limit: number | null): string | null {
  if (limit === null || limit >= maxHttpConnectionsPerIp + FILES_BESIDES_CONNECTIONS) return null;
  return (
    `this process may open at most ${limit} files (ulimit -n), but maxHttpConnectionsPerIp lets one client address hold ` +
    `${maxHttpConnectionsPerIp} connections: one client could take every descriptor and the server could accept no one; ` +
    `raise the limit above ${maxHttpConnectionsPerIp + FILES_BESIDES_CONNECTIONS} (ulimit -n, LimitNOFILE= in systemd, --ulimit nofile= in docker) or lower maxHttpConnectionsPerIp`
  );
}
