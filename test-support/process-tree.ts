import { groupAlive, processStartTime, type ProcessIdentity } from '../packages/client/src/node/index.js';
import { waitUntil } from './index.js';

/**
 * A command that leaves behind a grandchild which prints nothing and
 * ignores SIGTERM (the hung model call of field note 6), reports that
 * grandchild's pid as `meta.grandchild` through a `::runtrail::` line, and
 * keeps printing until it is stopped.
 */
export const LEAVES_STUBBORN_GRANDCHILD = [
  `sh -c 'trap "" TERM; exec sleep 300' &`,
  `echo "::runtrail:: {\\"type\\":\\"meta\\",\\"data\\":{\\"grandchild\\":$!}}"`,
  'while :; do echo tick; sleep 0.2; done',
].join('\n');

/** Whether no process at all is left in group `pgid`, zombies included (kill(-pgid, 0) answers ESRCH). */
export function groupGone(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** A live process named for good: its pid and start time, read now. */
export function identify(pid: number): ProcessIdentity {
  const startTime = processStartTime(pid);
  if (startTime === null) throw new Error(`process ${pid} is not running`);
  return { pid, startTime };
}

/**
 * Wait until no live process is left in group `pgid` and none of `processes`
 * is alive (a pid that now belongs to a process with another start time is
 * a different process: gone).
 */
export async function waitGroupGone(pgid: number, processes: ProcessIdentity[], timeoutMs: number): Promise<void> {
  await waitUntil(() => !groupAlive(pgid) && processes.every((p) => processStartTime(p.pid) !== p.startTime), {
    timeoutMs,
    what: `process group ${pgid} (${processes.map((p) => p.pid).join(', ')}) to be gone`,
  });
}
