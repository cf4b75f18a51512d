import { readFileSync, readdirSync } from 'node:fs';

/**
 * Signal every process of a group. A subprocess is spawned as the leader of
 * its own group, so its children and grandchildren (a shell pipeline, a
 * Python pool) are reached too; killing only the leader would orphan them
 * (field note 6). Returns false when no process of the group is left.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

interface ProcStat {
  pid: number;
  state: string;
  pgrp: number;
  /** Clock ticks after boot at which the process started: with the pid, names a process for good. */
  startTime: number;
}

/** /proc/<pid>/stat, or null when the process is gone (or there is no /proc). */
function readStat(pid: number | string): ProcStat | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    // The process exited (or this is not Linux): there is nothing to read.
    void err;
    return null;
  }
  // Fields after the parenthesised command name (which may hold spaces): state, ppid, pgrp, ...
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid: Number(pid), state: rest[0]!, pgrp: Number(rest[2]), startTime: Number(rest[19]) };
}

const live = (stat: ProcStat | null): stat is ProcStat => stat !== null && stat.state !== 'Z' && stat.state !== 'X';

/**
 * When a live process started (clock ticks after boot, from /proc), or null
 * if it is gone or this is not Linux. A pid is reused once its process is
 * gone; the pair (pid, start time) is not.
 */
export function processStartTime(pid: number): number | null {
  const stat = readStat(pid);
  return live(stat) ? stat.startTime : null;
}

/** The live processes of a group, from /proc; null when /proc cannot be listed. */
function groupMembers(pgid: number): ProcStat[] | null {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch (err) {
    // No /proc (not Linux, or a restricted container): membership is unknown.
    void err;
    return null;
  }
  return entries
    .filter((entry) => /^\d+$/.test(entry))
    .map(readStat)
    .filter((stat): stat is ProcStat => live(stat) && stat.pgrp === pgid);
}

/**
 * Whether any LIVE process is left in the group. A killed grandchild stays a
 * zombie until init reaps it, and `kill(-pgid, 0)` still counts zombies; on
 * Linux /proc tells them apart, so a dead group is seen as dead at once.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  if (process.platform !== 'linux') return true;
  const members = groupMembers(pgid);
  return members === null || members.length > 0;
}

/** A process named for good: a pid is reused once its process is gone, the pair is not. */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

/** A process group as `meta.exec` records it: its id, and processes known to be in it (leader, command). */
export interface RecordedGroup {
  pgid: number;
  members: ProcessIdentity[];
}

const isSame = (p: ProcessIdentity): boolean => processStartTime(p.pid) === p.startTime;

/**
 * Stop a group recorded by a process that is gone (a server restarted
 * after kill -9): SIGTERM to the group, SIGKILL after `graceMs` to each
 * process that was in it. Only if one of the recorded processes is still
 * alive in it, the same process (pid AND start time), which proves the
 * group was never empty and its id never reused; at SIGKILL time each pid
 * is checked again the same way. So an unrelated process that got a
 * recorded pid is never signalled. Returns whether the group was signalled.
 */
export function stopRecordedGroup(group: RecordedGroup, graceMs: number): boolean {
  const verified = () => group.members.some((m) => isSame(m) && readStat(m.pid)?.pgrp === group.pgid);
  if (!verified()) return false;
  const members = (groupMembers(group.pgid) ?? []).map(({ pid, startTime }) => ({ pid, startTime }));
  if (!signalGroup(group.pgid, 'SIGTERM')) return false;
  const timer = setTimeout(() => {
    // Still the recorded group: all of it, including anything forked since the SIGTERM.
    if (verified()) signalGroup(group.pgid, 'SIGKILL');
    for (const member of members) {
      if (!isSame(member)) continue;
      try {
        process.kill(member.pid, 'SIGKILL');
      } catch (err) {
        // It exited between the check and the kill: nothing left to stop.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }, graceMs);
  // A stopping server need not wait for this; the processes are not ours to keep alive for.
  timer.unref();
  return true;
}
