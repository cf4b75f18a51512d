import type { HandlersResponse } from './responses.js';

type LiveNode = HandlersResponse['nodes'][number];

/**
 * Why a queued run of `handler` waits when live nodes define it, from their
 * slots (GET /handlers): its handler's concurrency is reached on every node
 * that defines it, or their overall concurrency is. Null when that is not
 * the reason as far as the nodes told (a slot is free: the next claim takes
 * it), or a node told no slots. `ahead`: queued runs of the handler older
 * than it (claimed first); null leaves its place out.
 * The dashboard's QueuedWhy and `runtrail runs show` both say this; `runtrail runs ls`, slotWaitShort.
 */
export function slotWaitText(handler: string, nodes: readonly LiveNode[], ahead: number | null = null): string | null {
  const limits = limitsHolding(handler, nodes);
  if (!limits) return null;
  const { byHandler, byNode } = limits;
  const place = ahead === null ? '' : ` It is ${ordinal(ahead + 1)} in line (${ahead === 0 ? 'no queued run of it is older' : `${ahead} queued ${ahead === 1 ? 'run' : 'runs'} of it ${ahead === 1 ? 'is' : 'are'} older`}).`;
  const parts = [
    ...byHandler.map((l) => `${handler} runs ${l.limit} at a time on ${l.node} (its concurrency), and ${l.running} ${l.running === 1 ? 'runs' : 'run'} there now`),
    ...byNode.map((l) => `${l.node} runs ${l.limit} ${l.limit === 1 ? 'run' : 'runs'} at a time (its executor's concurrency), and ${l.limit === 1 ? 'it is' : `all ${l.running} are`} in use`),
  ];
  const whole = byNode.length === 0 ? 'the limit of its handler is reached on every node that defines it' : byHandler.length === 0 ? 'every node that defines its handler is at its overall concurrency' : 'every node that defines its handler is at a limit';
  return `Queued: ${whole}: ${parts.join('; ')}. It starts when one of them ends.${place}`;
}

/**
 * slotWaitText's limits in a few words, for a list that names many runs
 * ("1 at a time on node-a, node-b's 4 runs at a time"); null when it would
 * be null.
 */
export function slotWaitShort(handler: string, nodes: readonly LiveNode[]): string | null {
  const limits = limitsHolding(handler, nodes);
  if (!limits) return null;
  return [...limits.byHandler.map((l) => `${l.limit} at a time on ${l.node}`), ...limits.byNode.map((l) => `${l.node}'s ${l.limit} ${l.limit === 1 ? 'run' : 'runs'} at a time`)].join(', ');
}

interface Limit {
  node: string;
  limit: number;
  running: number;
}

/**
 * The limits that hold a queued run of `handler` (see slotWaitText): on each
 * node that defines it, its handler's concurrency if reached there, else the
 * node's overall one; null unless every such node is at one.
 */
function limitsHolding(handler: string, nodes: readonly LiveNode[]): { byHandler: Limit[]; byNode: Limit[] } | null {
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
  return {
    byHandler: told.filter(handlerFull).map((n) => ({ node: n.node, limit: own(n)!, running: runningOf(n) })),
    byNode: told.filter((n) => !handlerFull(n)).map((n) => ({ node: n.node, limit: n.slots.concurrency, running: n.slots.running })),
  };
}

/** "1st", "2nd", "11th", "23rd": a place in line, as slotWaitText says it (and `runtrail runs ls`). */
export function ordinal(n: number): string {
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}
