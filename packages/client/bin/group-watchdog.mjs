// The leader of a subprocess's process group, between its runner
// (runProcess: `runtrail exec`, or a server's ctx.exec) and the command.
//
// Why: a runner that dies with kill -9 cannot stop what it started, and a
// grandchild the command left behind (`sleep 300 &`, a model server, an
// ffmpeg) would run for hours after its run was declared dead (field note
// 6). This process sits in the command's group and holds an IPC channel to
// the runner; when the runner dies the channel closes, and it stops the
// whole group: SIGTERM, then SIGKILL after the grace period (which ends it
// too). Plain JavaScript, no imports but Node's, so the runner can start it
// with `node` from the sources as from the build.
//
// argv: <killGraceMs> <command> [args...]
// To the runner: {spawned: pid} once the command runs, {startError: {code,
// message}} if it could not start (then exit 127), {exit: {code, signal}}
// when it ended. Then it exits the way the command did.
import { spawn } from 'node:child_process';

const [graceArg, command, ...args] = process.argv.slice(2);
const graceMs = Number(graceArg);
// Spawned detached: our pid is the group id.
const group = process.pid;
let runnerGone = false;

// Signals sent to the group (the runner's stop, a Ctrl-C) are meant for the
// command; this process stays to report how the command ended. The
// runner's SIGKILL, if it comes to that, ends it with the rest.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => {});

const send = (message, then) => {
  if (process.connected) process.send(message, then);
  else then?.();
};

// stdin is the runner's choice (runProcess's stdin option): /dev/null unless it gave us its own.
const child = spawn(command, args, { stdio: 'inherit' });

child.on('error', (err) => {
  // Only a failed start gets here without a pid; a running child's errors end in 'exit'.
  if (child.pid !== undefined) return;
  send({ startError: { code: err.code, message: err.message } }, () => process.exit(127));
});

child.on('spawn', () => send({ spawned: child.pid }));

child.on('exit', (code, signal) => {
  // Stopping the group after the runner died: wait for the SIGKILL, which
  // also reaches whatever the command left running.
  if (runnerGone) return;
  send({ exit: { code, signal } }, () => {
    if (signal) {
      // Die by the same signal so our exit status is the command's.
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.removeAllListeners(s);
      process.kill(process.pid, signal);
      setTimeout(() => process.exit(128), 1000).unref();
    } else {
      process.exit(code ?? 1);
    }
  });
});

process.on('disconnect', () => {
  runnerGone = true;
  process.kill(-group, 'SIGTERM');
  setTimeout(() => process.kill(-group, 'SIGKILL'), graceMs);
});
