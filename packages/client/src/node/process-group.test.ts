import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { groupAlive, processStartTime, stopRecordedGroup } from './process-group.js';

describe('stopRecordedGroup', () => {
  it('never signals a group whose recorded process has another start time (a reused pid), and stops it when they match', async () => {
    const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
    const exited = once(child, 'exit');
    await once(child, 'spawn');
    const pid = child.pid!;
    const startTime = processStartTime(pid)!;
    expect(startTime).toBeGreaterThan(0);

    expect(stopRecordedGroup({ pgid: pid, members: [{ pid, startTime: startTime + 1 }] }, 10)).toBe(false);
    expect(groupAlive(pid)).toBe(true);
    expect(stopRecordedGroup({ pgid: pid + 1, members: [{ pid, startTime }] }, 10)).toBe(false);
    expect(groupAlive(pid)).toBe(true);

    expect(stopRecordedGroup({ pgid: pid, members: [{ pid, startTime }] }, 10)).toBe(true);
    expect(await exited).toEqual([null, 'SIGTERM']);
  });
});
