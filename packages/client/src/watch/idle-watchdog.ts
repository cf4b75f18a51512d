import { unrefTimer, type Clock } from '../clock.js';

/**
 * Notices a connection that died without a close (a sleeping laptop, a NAT
 * that forgot the flow): nothing has arrived for `timeoutMs`. Before that,
 * after a third of it in silence, `ping` asks the server to say something.
 * The server sends SSE comments / answers WebSocket pings well within it.
 */
export function idleWatchdog(timeoutMs: number, clock: Clock, ping: () => void, dead: () => void): { touch(): void; stop(): void } {
  let last = clock.now();
  let pinged = false;
  let stopped = false;
  let timer: unknown;
  const tick = (): void => {
    if (stopped) return;
    const silent = clock.now() - last;
    if (silent >= timeoutMs) {
      stopped = true;
      dead();
      return;
    }
    if (silent >= timeoutMs / 3 && !pinged) {
      pinged = true;
      ping();
    }
    schedule();
  };
  const schedule = (): void => {
    timer = clock.setTimeout(tick, Math.max(10, Math.floor(timeoutMs / 6)));
    // A watcher alone must not keep a Node process alive.
    unrefTimer(timer);
  };
  schedule();
  return {
    touch() {
      last = clock.now();
      pinged = false;
    },
    stop() {
      stopped = true;
      clock.clearTimeout(timer);
    },
  };
}
