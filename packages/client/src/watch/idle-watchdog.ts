/**
 * Notices a connection that died without a close (a sleeping laptop, a NAT
 * that forgot the flow): nothing has arrived for `timeoutMs`. Before that,
 * after a third of it in silence, `ping` asks the server to say something.
 * The server sends SSE comments / answers WebSocket pings well within it.
 */
export function idleWatchdog(timeoutMs: number, ping: () => void, dead: () => void): { touch(): void; stop(): void } {
  let last = Date.now();
  let pinged = false;
  const timer = setInterval(() => {
    const silent = Date.now() - last;
    if (silent >= timeoutMs) {
      clearInterval(timer);
      dead();
    } else if (silent >= timeoutMs / 3 && !pinged) {
      pinged = true;
      ping();
    }
  }, Math.max(10, Math.floor(timeoutMs / 6)));
  // A watcher alone must not keep a Node process alive.
  (timer as { unref?: () => void }).unref?.();
  return {
    touch() {
      last = Date.now();
      pinged = false;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
