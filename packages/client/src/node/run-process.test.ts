import { closeSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { LogLevel } from '@runtrail/protocol';
import { listenerLeakWarnings, tempDir, waitUntil } from '@runtrail/test-support';
import { abortCallbackCount } from '../on-abort.js';
import { groupAlive } from './process-group.js';
import { failureMessage } from './process-end.js';
import { ProcessStartError, runProcess, spawnProcess, type OutputStream, type ProcessSink } from './run-process.js';
import { groupGone } from '@runtrail/test-support/process-tree';

/** Real child processes and signals; every wait is for a condition, with a deadline. */

class Collect implements ProcessSink {
  events: Array<{ type: string; data: unknown }> = [];
  logs: Array<{ message: string; level: LogLevel; output?: OutputStream }> = [];
  event(type: string, data?: unknown): void {
    this.events.push({ type, data });
  }
  log(message: string, level: LogLevel = 'info', output?: OutputStream): void {
    this.logs.push(output ? { message, level, output } : { message, level });
  }
  of(type: string) {
    return this.events.filter((e) => e.type === type).map((e) => e.data);
  }
}

const scratch = tempDir('runtrail-proc-');
const dir = scratch.path;
afterAll(() => scratch.remove());

describe('runProcess', () => {
  it('turns stdout/stderr lines into log events and ::runtrail:: lines into events, and records the exit code', async () => {
    const sink = new Collect();
    const script = [
      'echo hello',
      'echo oops >&2',
      `echo '::runtrail:: {"type":"counter","data":{"name":"docs","delta":2}}'`,
      `echo '::runtrail:: {"type":"progress","data":{"done":3,"total":10,"message":"three"}}'`,
      `echo '::runtrail:: {"type":"x.custom","data":{"any":"thing"}}'`,
      'exit 3',
    ].join('\n');
    const result = await runProcess('sh', ['-c', script], { sink });
    expect(result).toMatchObject({ exitCode: 3, signal: null, reason: 'exit', events: 3, badLines: 0 });
    expect(sink.logs.slice(0, 2)).toEqual([
      { message: 'hello', level: 'info', output: 'stdout' },
      { message: 'oops', level: 'warn', output: 'stderr' },
    ]);
    expect(sink.of('counter')).toEqual([{ name: 'docs', delta: 2 }]);
    expect(sink.of('progress')).toEqual([{ done: 3, total: 10, message: 'three' }]);
    expect(sink.of('x.custom')).toEqual([{ any: 'thing' }]);
    const exec = sink.of('meta').at(-1) as { exec: Record<string, unknown> };
    expect(exec.exec).toMatchObject({ exitCode: 3, signal: null, reason: 'exit', pid: result.pid });
    expect(sink.logs.at(-1)?.message).toContain('exited with code 3');
  });

  it('a bad ::runtrail:: line becomes a warn log naming what is wrong, and the process goes on', async () => {
    const sink = new Collect();
    const script = [
      `echo '::runtrail:: not json'`,
      `echo '::runtrail:: {"type":"no.such.type"}'`,
      `echo '::runtrail:: {"type":"progress","data":{"done":-1}}'`,
      `echo '::runtrail:: {"type":"run.succeeded","data":{}}'`,
      `echo '::runtrail:: [1,2]'`,
      `echo '::runtrail:: {"type":"counter","data":{"name":"ok","delta":1}}'`,
    ].join('\n');
    const result = await runProcess('sh', ['-c', script], { sink });
    expect(result).toMatchObject({ exitCode: 0, badLines: 5, events: 1 });
    const warnings = sink.logs.filter((l) => l.level === 'warn').map((l) => l.message);
    expect(warnings).toHaveLength(5);
    expect(warnings[0]).toMatch(/not JSON/);
    expect(warnings[1]).toMatch(/unknown event type/);
    expect(warnings[2]).toMatch(/\(data\.done: /);
    expect(warnings[3]).toMatch(/run\.succeeded cannot be sent from a subprocess/);
    expect(sink.of('counter')).toEqual([{ name: 'ok', delta: 1 }]);
  });

  it('echoes output and reports bad ::runtrail:: lines in the order the lines came, several lines in one write included', async () => {
    const seen: string[] = [];
    // One write of four lines: the pipe hands them over as one chunk.
    const script = `printf 'first\\n::runtrail:: not json\\nsecond\\n::runtrail:: [1]\\n'`;
    const result = await runProcess('sh', ['-c', script], {
      sink: new Collect(),
      echo: (_stream, bytes) => seen.push(...bytes.toString().split(/(?<=\n)/)),
      onBadLine: (reason) => seen.push(`bad line: ${reason}`),
    });
    expect(result.badLines).toBe(2);
    expect(seen.map((s) => s.replace(/^bad line: .*/, 'bad line'))).toEqual(['first\n', 'bad line', 'second\n', 'bad line']);
  });

  it('bounds a flood of output: lines over the rate are counted and reported, and all are in the output log', async () => {
    const sink = new Collect();
    const logFile = join(dir, 'flood.log');
    // The window's clock held still: all 5,000 lines fall in one second, however long the machine takes to read them.
    const result = await runProcess('seq', ['1', '5000'], { sink, maxLogLinesPerSecond: 100, logFile, now: () => 0 });
    expect(result.lines).toBe(5000);
    const lineLogs = sink.logs.filter((l) => /^\d+$/.test(l.message));
    expect(lineLogs.length).toBe(5000 - result.droppedLines);
    expect(lineLogs.length).toBe(100);
    const notices = sink.logs.filter((l) => l.message.includes('not sent as events'));
    const reported = notices.reduce((n, l) => n + Number(/^(\d+)/.exec(l.message)![1]), 0);
    expect(reported).toBe(result.droppedLines);
    expect(notices[0]!.message).toContain(logFile);
    expect(readFileSync(logFile, 'utf8').trim().split('\n')).toHaveLength(5000);
  });

  it('an output log that cannot be made (under /proc, where a recursive mkdir spins for ever) is a warning; the command runs, and a missing folder is made', async () => {
    const sink = new Collect();
    const result = await runProcess('sh', ['-c', 'echo hello'], { sink, logFile: '/proc/runtrail-nope/out.log' });
    expect(result.exitCode).toBe(0);
    expect(sink.logs.map((l) => l.message)).toContain('hello');
    expect(sink.logs.find((l) => l.message.startsWith('could not write the output log /proc/runtrail-nope/out.log'))).toMatchObject({ level: 'warn' });

    const logFile = join(dir, 'logs', 'out.log');
    await runProcess('sh', ['-c', 'echo kept'], { sink: new Collect(), logFile });
    expect(readFileSync(logFile, 'utf8')).toBe('kept\n');
  });

  it('an output log given as an open descriptor gets every line and is left open, so its owner reads it back after unlinking it', async () => {
    const path = join(dir, 'by-descriptor.log');
    const fd = openSync(path, 'wx');
    unlinkSync(path);
    try {
      await runProcess('sh', ['-c', 'echo one; echo two >&2'], { sink: new Collect(), logFile: fd, logFileLabel: 'the kept copy' });
      expect(readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('one\n[stderr] two\n');
    } finally {
      closeSync(fd);
    }
  });

  it('a flood on stdout does not crowd out stderr: each stream has its own budget, and stderr lines say where they came from', async () => {
    const sink = new Collect();
    // Both streams are written at once; stdout alone is far over the budget.
    const result = await runProcess('sh', ['-c', 'seq 1 3000; echo "Traceback (most recent call last):" >&2; echo "  boom()" >&2; echo "RuntimeError: boom" >&2; exit 1'], {
      sink,
      maxLogLinesPerSecond: 50,
      now: () => 0,
    });
    expect(result.droppedLines).toBeGreaterThan(0);
    const stderrLines = sink.logs.filter((l) => l.output === 'stderr').map((l) => l.message);
    expect(stderrLines).toEqual(['Traceback (most recent call last):', '  boom()', 'RuntimeError: boom']);
    expect(sink.logs.filter((l) => l.output === 'stdout').length).toBe(50);
    expect(result.exception).toBe('RuntimeError: boom');
    expect(result.stderrTail).toEqual(['Traceback (most recent call last):', '  boom()', 'RuntimeError: boom']);
  });

  it("a Node script's uncaught exception is its exception line, as a Python traceback's is", async () => {
    const script = "function judge(doc) { throw new TypeError(`no score for ${doc}`); }\nconsole.error('Error: not this one, it has no stack');\njudge('doc_7');";
    const result = await runProcess(process.execPath, ['-e', script], { sink: new Collect() });
    expect(result.exitCode).toBe(1);
    expect(result.exception).toBe('TypeError: no score for doc_7');
    // A headline on one line, though the command line spans three: its first line, how it ended, the exception, where the rest is.
    const [head, blank, ...detail] = failureMessage(result).split('\n');
    expect(head).toBe(
      `${process.execPath} -e 'function judge(doc) { throw new TypeError(\`no score for \${doc}\`); } … exited with code 1: TypeError: no score for doc_7 (the whole command line is in meta.exec.command)`,
    );
    expect(blank).toBe('');
    expect(detail[0]).toMatch(/^last \d+ lines of stderr:$/);
    expect(detail.slice(1)).toEqual(result.stderrTail);
    expect(detail).toContain('TypeError: no score for doc_7');
    // Where the whole command line is kept, as its runner says.
    expect(failureMessage(result, { wholeCommandIn: 'meta.exec.command and the output log' }).split('\n')[0]).toMatch(/ \(the whole command line is in meta\.exec\.command and the output log\)$/);
  });

  it("a failed command's message: a headline of at most one line however long its command line, then the last stderr lines, indentation kept", async () => {
    const long = 'x'.repeat(300);
    const result = await runProcess('sh', ['-c', `echo "loading rows" >&2; echo "  row 3 is empty" >&2; exit 3 # ${long}`]);
    const message = failureMessage(result);
    const [head, ...rest] = message.split('\n');
    // Cut to 200 characters, and said where the whole line is.
    expect(head).toMatch(/^sh -c 'echo "loading rows" >&2; echo .*x… exited with code 3 \(the whole command line is in meta\.exec\.command\)$/);
    expect(head!.indexOf(' exited')).toBe(200);
    expect(rest).toEqual(['', 'last 2 lines of stderr:', 'loading rows', '  row 3 is empty']);
    expect(result.message).toBe(head);
    expect(result.ending).toBe('exited with code 3');
  });

  it('an idle child is killed with its grandchildren, even those that ignore SIGTERM, and the reason is recorded', async () => {
    const sink = new Collect();
    let pgid = 0;
    const script = `(trap '' TERM; sleep 60) & echo "::runtrail:: {\\"type\\":\\"meta\\",\\"data\\":{\\"grandchild\\":$!}}"; sleep 60`;
    const running = spawnProcess('sh', ['-c', script], { sink, idleTimeoutMs: 400, killGraceMs: 300 });
    pgid = running.pgid!;
    const result = await running.result;
    expect(result.reason).toBe('idle_timeout');
    expect(result.killedWith).toBe('SIGKILL');
    // sh itself ends on SIGTERM; the grandchild that ignores it is what needed SIGKILL.
    expect(result.ending).toBe('printed nothing for 400 ms (idle timeout): sent SIGTERM, which ended it; then SIGKILL after a 300 ms grace to what it left running');
    // Resolved only once no live process of the group is left …
    expect(groupAlive(pgid)).toBe(false);
    const grandchild = (sink.of('meta').find((m) => (m as { grandchild?: number }).grandchild) as { grandchild: number }).grandchild;
    expect(grandchild).toBeGreaterThan(0);
    // … and the kernel agrees once the zombies are reaped.
    await waitUntil(() => groupGone(pgid), { what: `process group ${pgid} to disappear` });
  });

  it('a total timeout stops a process that keeps printing', async () => {
    const sink = new Collect();
    const result = await runProcess('sh', ['-c', 'while true; do echo tick; sleep 0.05; done'], {
      sink,
      timeoutMs: 500,
      idleTimeoutMs: 5_000,
      killGraceMs: 1_000,
    });
    expect(result.reason).toBe('timeout');
    expect(result.signal).toBe('SIGTERM');
    expect(result.message).toBe(`sh -c 'while true; do echo tick; sleep 0.05; done' timed out after 500 ms: sent SIGTERM, which ended it`);
    expect(groupAlive(result.pgid)).toBe(false);
  });

  it('a timeout or idle timeout of 25 days (past what setTimeout holds) lets the command finish', async () => {
    const sink = new Collect();
    const days25 = 25 * 24 * 3600_000;
    // Node fires a timer of more than 2^31-1 ms after 1 ms: the command was killed as timed out at once.
    const result = await runProcess('sh', ['-c', 'sleep 0.2; echo done'], { sink, timeoutMs: days25, idleTimeoutMs: days25, killGraceMs: 1_000 });
    expect(result.reason).toBe('exit');
    expect(result.exitCode).toBe(0);
    expect(sink.logs.map((l) => l.message)).toContain('done');
  });

  it('an abort stops the whole group at once', async () => {
    const controller = new AbortController();
    const running = spawnProcess('sh', ['-c', 'sleep 60 & sleep 60'], { signal: controller.signal, killGraceMs: 2_000 });
    await waitUntil(() => running.pgid !== undefined, { what: 'the spawn' });
    controller.abort(new Error('user cancelled'));
    const result = await running.result;
    expect(result.reason).toBe('aborted');
    expect(result.ending).toBe('was stopped (user cancelled): sent SIGTERM, which ended it');
    expect(result.killedWith).toBe('SIGTERM');
    expect(groupAlive(result.pgid)).toBe(false);
  });

  it('one signal shared by 11 commands prints no listener-leak warning, and its abort stops them all', async () => {
    const leaks = listenerLeakWarnings();
    try {
      const controller = new AbortController();
      const sinks = Array.from({ length: 11 }, () => new Collect());
      const running = sinks.map((sink) => spawnProcess('sleep', ['60'], { sink, signal: controller.signal, killGraceMs: 2_000 }));
      // The exec meta is recorded as the command spawns, where the process starts listening to the signal.
      await waitUntil(() => sinks.every((sink) => sink.of('meta').length > 0), { what: 'every command spawned' });
      controller.abort(new Error('user cancelled'));
      const results = await Promise.all(running.map((r) => r.result));
      expect(results.map((r) => r.reason)).toEqual(Array.from({ length: 11 }, () => 'aborted'));
      expect(results.every((r) => !groupAlive(r.pgid))).toBe(true);
      expect(abortCallbackCount(controller.signal)).toBe(0);
      expect(await leaks.seen()).toEqual([]);
    } finally {
      leaks.stop();
    }
  });

  it('records the signal that killed a process', async () => {
    const result = await runProcess('sh', ['-c', 'kill -KILL $$']);
    expect(result).toMatchObject({ exitCode: null, signal: 'SIGKILL', reason: 'exit' });
    expect(result.message).toContain('was killed by SIGKILL');
  });

  it('kills what a command left running in its group when it exits', async () => {
    const result = await runProcess('sh', ['-c', 'sleep 60 > /dev/null 2>&1 & echo started'], { killGraceMs: 2_000 });
    expect(result.exitCode).toBe(0);
    expect(groupAlive(result.pgid)).toBe(false);
    expect(result.ending).toBe('exited with code 0; what it left running was sent SIGTERM');
  });

  it('a sink that refuses events (a full queue) does not crash the runner; what was lost is reported once', async () => {
    let calls = 0;
    const logs: string[] = [];
    const sink: ProcessSink = {
      event: () => undefined,
      log: (message) => {
        if (++calls === 1) throw new Error('queue full');
        logs.push(message);
      },
    };
    const result = await runProcess('sh', ['-c', 'echo a; echo b'], { sink, recordMeta: false });
    expect(result.exitCode).toBe(0);
    expect(result.sinkError?.message).toBe('queue full');
    expect(logs).toEqual([`some output of sh -c 'echo a; echo b' was not recorded: queue full`]);
  });

  it('a line of 100,000 characters written at once is recorded in pieces a log event can hold, and what follows it is kept', async () => {
    for (const length of [17_000, 40_000, 100_000]) {
      const sink = new Collect();
      const script = [
        'import sys',
        `sys.stdout.write("é" * ${length} + "\\n")`,
        `print('::runtrail:: {"type":"progress","data":{"done":7,"total":10}}')`,
        'print("final line")',
      ].join('\n');
      const result = await runProcess('python3', ['-c', script], { sink, recordMeta: false });
      expect(result.sinkError, `${length}`).toBeNull();
      const lines = sink.logs.filter((l) => l.output === 'stdout').map((l) => l.message);
      expect(lines.every((line) => line.length <= 8192), `${length}`).toBe(true);
      expect(lines.slice(0, -1).join(''), `${length}`).toBe('é'.repeat(length));
      expect(lines.at(-1)).toBe('final line');
      expect(sink.of('progress')).toEqual([{ done: 7, total: 10 }]);
    }
  });

  it('rejects with ProcessStartError when the command does not exist', async () => {
    await expect(runProcess('/no/such/command-xyz', [])).rejects.toBeInstanceOf(ProcessStartError);
  });

  it('a working directory that does not exist is named as what is wrong, not the command or the watchdog', async () => {
    const err = await runProcess('sh', ['-c', 'true'], { cwd: '/no/such/folder-xyz' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessStartError);
    expect((err as Error).message).toBe('could not start sh: its working directory /no/such/folder-xyz is not a folder that exists');
  });
});

describe('interrupting a process group (a Ctrl-C)', () => {
  const ready = (sink: Collect) => waitUntil(() => sink.logs.some((l) => l.message === 'ready'), 10_000, 'the script to start');

  it('sends SIGINT, then SIGTERM and SIGKILL a grace period apart, to a group that ignores the first two', async () => {
    const sink = new Collect();
    const running = spawnProcess('sh', ['-c', `trap '' INT TERM; echo ready; while true; do sleep 0.05; done`], { sink, killGraceMs: 300 });
    await ready(sink);
    running.interrupt('was interrupted (Ctrl-C)');
    const result = await running.result;
    expect(result.reason).toBe('aborted');
    expect(result.killedWith).toBe('SIGKILL');
    // Each signal once, in order; SIGKILL, the last, is what ended it.
    expect(result.ending).toBe('was interrupted (Ctrl-C): sent SIGINT, then SIGTERM after a 300 ms grace, then SIGKILL after a 300 ms grace');
    expect(groupAlive(result.pgid)).toBe(false);
  });

  it('a command that handles SIGINT ends on it alone, its cleanup done', async () => {
    const sink = new Collect();
    const running = spawnProcess('sh', ['-c', `trap 'echo cleaning up; exit 4' INT; echo ready; while true; do sleep 0.05; done`], {
      sink,
      killGraceMs: 60_000,
    });
    await ready(sink);
    running.interrupt('was interrupted (Ctrl-C)');
    const result = await running.result;
    expect(result.exitCode).toBe(4);
    expect(result.killedWith).toBe('SIGINT');
    expect(result.ending).toBe('was interrupted (Ctrl-C): sent SIGINT, and it exited with code 4');
    expect(sink.logs.map((l) => l.message)).toContain('cleaning up');
  });

  it('a second interrupt takes the next step at once instead of after the grace period', async () => {
    const sink = new Collect();
    const running = spawnProcess('sh', ['-c', `trap '' INT; trap 'exit 5' TERM; echo ready; while true; do sleep 0.05; done`], {
      sink,
      killGraceMs: 120_000,
    });
    await ready(sink);
    running.interrupt('was interrupted (Ctrl-C)');
    running.interrupt('was interrupted (Ctrl-C)');
    // Long before the 120 s grace (past the test's timeout): the second Ctrl-C sent SIGTERM now.
    const result = await running.result;
    expect(result.exitCode).toBe(5);
    expect(result.killedWith).toBe('SIGTERM');
    expect(result.ending).toMatch(/^was interrupted \(Ctrl-C\): sent SIGINT, then SIGTERM (\d+ ms|[\d.]+ s) later, when interrupted again, and it exited with code 5$/);
  });
});
