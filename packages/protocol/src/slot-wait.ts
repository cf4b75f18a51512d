import type { HandlersResponse } from './responses.js';

type LiveNode = HandlersResponse['nodes'][number];

/**
 * Why a queued run of `handler` waits when live nodes define it, from their
 * slots (GET /handlers): its handler's concurrency is reached on every node
 * that defines it, or their overall concurrency is. Null when that is not
 * the reason as far as the nodes told (a slot is free: the next claim takes
 * it), or a node told no slots. `ahead`: queued runs of the handler older
 * than it (claimed first); null leaves its place out.
 * The dashboard's QueuedWhy and `runtrail runs show` both say this.
 */
export function slotWaitText(handler: string, nodes: readonly LiveNode[], ahead: number | null = null): string | null {
  const defining = nodes.filter((n) => n.handlers.includes(handler));
  if (defining.length === 0) return null;
  const slots = defining.map((n) => n.slots);
  if (slots.some((s) => s === undefined)) return null;
  const told = defining as Array<LiveNode & { slots: NonNullable<LiveNode['slots']> }>;
  const own = (n: (typeof told)[number]) => n.slots.handlerConcurrency[handler];
  const runningOf = (n: (typeof told)[number]) => n.slots.runningByHandler[handler] ?? 0;
  const handlerFull = (n: (typeof told)[number]) => own(n) !== undefined && runningOf(n) >= own(n)!;
  // A node of concurrency 0 claims nothing by design: no run ending frees a slot there, so it is not a limit to wait out.
  const nodeFull = (n: (typeof told)[number]) => n.slots.concurrency > 0 && n.slots.running >= n.slots.concurrency;
  if (!told.every((n) => handlerFull(n) || nodeFull(n))) return null;
  const place = ahead === null ? '' : ` It is ${ordinal(ahead + 1)} in line (${ahead === 0 ? 'no queued run of it is older' : `${ahead} queued ${ahead === 1 ? 'run' : 'runs'} of it ${ahead === 1 ? 'is' : 'are'} older`}).`;
  const byHandler = told.filter(handlerFull);
  const byNode = told.filter((n) => !handlerFull(n));
  const parts = [
    ...byHandler.map((n) => `${handler} runs ${own(n)} at a time on ${n.node} (its concurrency), and ${runningOf(n)} ${runningOf(n) === 1 ? 'runs' : 'run'} there now`),
    ...byNode.map((n) => `${n.node} runs ${n.slots.concurrency} ${n.slots.concurrency === 1 ? 'run' : 'runs'} at a time (its executor's concurrency), and ${n.slots.concurrency === 1 ? 'it is' : `all ${n.slots.running} are`} in use`),
  ];
  const whole = byNode.length === 0 ? 'the limit of its handler is reached on every node that defines it' : byHandler.length === 0 ? 'every node that defines its handler is at its overall concurrency' : 'every node that defines its handler is at a limit';
  return `Queued: ${whole}: ${parts.join('; ')}. It starts when one of them ends.${place}`;
}

function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
