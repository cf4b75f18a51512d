import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PgRunStore, SqliteRunStore, type RunStore } from '@runtrail/store';
import { RuntrailError, isTerminalType, type Owner } from '@runtrail/protocol';
import { buildApp, type App } from '../app.js';
import { loadConfig } from '../config.js';
import { Reaper } from './reaper.js';
import { tempDir } from './lease.test-kit.js';
import { TEST_DATABASE_URL, dropSchema, freshSchema } from '@runtrail/test-support/postgres';

/**
 * Reapers and owners racing to end the same runs for real: every node has
 * its own store connection (a SQLite file opened three times; three
 * PostgreSQL pools), so a reaper's "this lease lapsed" and an owner's finish
 * meet in the database, not in one process's queue. Many rounds, many runs
 * per round; every run must end exactly once, and the loser must be told.
 */

const NODES = 3;
const ROUNDS = 20;
/** More rounds are played, up to this, until both sides have won a run. */
const MAX_ROUNDS = 200;
const RUNS_PER_ROUND = 5;
const FINISHES_PER_RUN = 6;
const owner: Owner = { kind: 'producer', node: 'laptop', id: 'proc-1' };

interface Node {
  store: RunStore;
  app: App;
  reaper: Reaper;
}

let dir: ReturnType<typeof tempDir>;
let clock: number;
let nodes: Node[];
const closers: Array<() => Promise<void>> = [];

beforeEach(() => {
  dir = tempDir('runtrail-reaper-race-');
  clock = 1_700_000_000_000;
  nodes = [];
  seed = 12;
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  dir.remove();
});

async function startNodes(open: () => Promise<RunStore>): Promise<void> {
  // One after another: each open migrates the schema, which is not a race under test.
  for (let i = 0; i < NODES; i++) {
    const store = await open();
    const config = loadConfig({ dataDir: dir.path, logLevel: 'silent', node: `node-${i}` }, {});
    const app = await buildApp({ config, store, now: () => clock });
    closers.push(async () => {
      await app.http.close();
      await store.close();
    });
    nodes.push({ store, app, reaper: new Reaper({ runs: app.runs, node: `node-${i}`, incarnation: `i${i}`, intervalMs: 1000, log: app.http.log }) });
  }
}

type Outcome = { ok: true } | { ok: false; error: unknown };

/** A seeded generator: a failing round can be replayed. */
let seed = 12;
function random(below: number): number {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed % below;
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Waits n reads of the run on a node's own connection. A reaper needs
 * several round trips (list what is due, re-read the run, end it) before it
 * can end a run, and an owner's finish needs one; delaying finishes in turns
 * of the event loop alone let owners win nearly every run on a slow
 * PostgreSQL, so the race never tried the reaper's side. Round trips scale
 * with the database's own latency, whatever the machine's load.
 */
async function roundTrips(store: RunStore, id: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await store.getRun(id);
}

/** Runs the rounds; answers how many runs a reaper ended and how many their owner did. */
async function race(): Promise<{ reaped: number; finished: number }> {
  const tally = { reaped: 0, finished: 0 };
  // At least ROUNDS; then on until both sides have won a run, so the race is
  // known to have covered both, however this machine's timing leans.
  for (let round = 0; round < ROUNDS || (round < MAX_ROUNDS && (tally.reaped === 0 || tally.finished === 0)); round++) {
    const ids: string[] = [];
    for (let i = 0; i < RUNS_PER_ROUND; i++) {
      ids.push((await nodes[i % NODES]!.app.runs.create({ name: `race-${round}-${i}`, owner, leaseTtlMs: 1000 })).run.id);
    }
    // Every lease has lapsed: each reaper may end each run, and so may its owner.
    clock += 1_001;
    // Each run's owners start after a random number of database round trips
    // (one per run, plus a little per finish) and turns of the event loop, so
    // the rounds cover reapers first, owners first and everything in between.
    const finishes = ids.flatMap((id, r) => {
      const head = random(16);
      return Array.from({ length: FINISHES_PER_RUN }, (_, i) => {
        const node = nodes[(r + i) % NODES]!;
        return roundTrips(node.store, id, head + random(3))
          .then(() => turns(random(40)))
          .then(() => node.app.runs.finish(id, { status: i % 2 ? 'succeeded' : 'cancelled', owner }))
          .then(
            (): Outcome => ({ ok: true }),
            (error: unknown): Outcome => ({ ok: false, error }),
          );
      });
    });
    const sweeps = nodes.map((n) => turns(random(4)).then(() => n.reaper.sweep()));
    const [outcomes] = await Promise.all([Promise.all(finishes), ...sweeps]);

    for (const [r, id] of ids.entries()) {
      const events = await nodes[r % NODES]!.store.readEvents(id, 0, 100);
      expect(events.filter((e) => isTerminalType(e.type)), `run ${id}: terminal events`).toHaveLength(1);
      // Every connection sees the same end.
      const seen = await Promise.all(nodes.map(async (n) => (await n.store.getRun(id))!));
      expect(new Set(seen.map((run) => run.status)).size, `run ${id}: statuses across connections`).toBe(1);
      const end = seen[0]!;
      tally[end.error?.kind === 'orphaned' ? 'reaped' : 'finished'] += 1;
      const mine = outcomes.slice(r * FINISHES_PER_RUN, (r + 1) * FINISHES_PER_RUN);
      const won = mine.filter((o) => o.ok).length;
      // Either one finish won, or a reaper did; every other finish was told the run had ended.
      expect(won, `run ${id} ended ${end.status} (${end.error?.kind ?? 'no error'})`).toBe(end.error?.kind === 'orphaned' ? 0 : 1);
      for (const lost of mine.filter((o): o is { ok: false; error: unknown } => !o.ok)) {
        expect(lost.error).toBeInstanceOf(RuntrailError);
        expect(['run_already_terminal', 'lease_lost']).toContain((lost.error as RuntrailError).code);
      }
    }
  }
  return tally;
}

describe('reapers and owners racing on separate connections end each run once', () => {
  it(`SQLite: ${NODES} connections to one file, ${ROUNDS} rounds of ${RUNS_PER_ROUND} lapsed runs`, async () => {
    await startNodes(async () => new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') }));
    const { reaped, finished } = await race();
    // Both sides won some runs: the rounds raced, they did not take turns.
    expect(reaped).toBeGreaterThan(0);
    expect(finished).toBeGreaterThan(0);
  });

  it(`PostgreSQL: ${NODES} pools on one schema, ${ROUNDS} rounds of ${RUNS_PER_ROUND} lapsed runs`, async () => {
    const schema = await freshSchema();
    closers.push(() => dropSchema(schema));
    await startNodes(() => PgRunStore.open({ connectionString: TEST_DATABASE_URL, schema, poolSize: 4 }));
    const { reaped, finished } = await race();
    // Both sides won some runs: the rounds raced, they did not take turns.
    expect(reaped).toBeGreaterThan(0);
    expect(finished).toBeGreaterThan(0);
  });
});
