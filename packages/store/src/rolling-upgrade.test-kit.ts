import { afterEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { compatibleFrom, migrations, type Migration, type NewerSchema } from './migrations.js';
import type { RunStore } from './store.js';

/**
 * An adapter's data at one location (a file, a PostgreSQL schema), opened
 * by this code, or migrated as a newer runtrail would migrate it.
 */
export interface UpgradeKit {
  /** A new, empty location; removed by `remove`. */
  fresh(): Promise<string>;
  /** Open `location` with this code's store, as a server does. */
  open(location: string, onNewerSchema: (newer: NewerSchema) => void): Promise<RunStore>;
  /** Migrate `location` through the adapter's own migration path with `list`, as a runtrail that knows it would. */
  migrateWith(location: string, list: readonly Migration[]): Promise<void>;
  /** The schema version recorded at `location`, read from the database. */
  versionOf(location: string): Promise<number>;
  remove(location: string): Promise<void>;
}

const T0 = 1_700_000_000_000;
const known = migrations.length;

/** What a newer runtrail's migrations might be: a table and a nullable column this code never reads. */
const laterAdditive: Migration = {
  additive: true,
  sql: () => `
  CREATE TABLE later_notes (run_id TEXT PRIMARY KEY, note TEXT NOT NULL);
  ALTER TABLE runs ADD COLUMN later_note TEXT;
  `,
};
/** One whose meaning this code would not honour (it writes nothing in the new column that newer code needs). */
const laterBreaking: Migration = {
  additive: false,
  sql: () => `ALTER TABLE runs ADD COLUMN later_priority INTEGER;`,
};

/**
 * A rolling upgrade: a newer node migrates the schema while nodes of this
 * version still use it. Both adapters run these through their own test file.
 */
export function rollingUpgradeSuite(adapter: string, kit: UpgradeKit): void {
  describe(`rolling upgrades: ${adapter}`, () => {
    const locations: string[] = [];
    const stores: RunStore[] = [];
    afterEach(async () => {
      for (const store of stores.splice(0)) await store.close();
      for (const location of locations.splice(0)) await kit.remove(location);
    });
    /** A location this code made, holding one running run with two events. */
    const withRun = async (): Promise<{ location: string; runId: string }> => {
      const location = await kit.fresh();
      locations.push(location);
      const store = await kit.open(location, () => expect.unreachable('a new schema is not a newer one'));
      try {
        const runId = uuidv7();
        await store.createRun({ id: runId, name: 'before', now: T0, leaseTtlMs: 3_600_000 });
        await store.append(runId, [{ type: 'x.before', data: { n: 1 } }], { now: T0 + 1 });
        return { location, runId };
      } finally {
        await store.close();
      }
    };
    const open = async (location: string) => {
      const told: NewerSchema[] = [];
      const store = await kit.open(location, (newer) => told.push(newer));
      stores.push(store);
      return { store, told };
    };

    it('an older node opens a schema a newer one migrated additively, without migrating it, says so once, and reads and appends', async () => {
      const { location, runId } = await withRun();
      await kit.migrateWith(location, [...migrations, laterAdditive]);
      expect(await kit.versionOf(location)).toBe(known + 1);

      const { store, told } = await open(location);
      expect(told).toHaveLength(1);
      expect(told[0]).toMatchObject({ version: known + 1, known, compatibleFrom: compatibleFrom(known) });
      expect(told[0]!.message).toMatch(
        new RegExp(`schema is at version ${known + 1}, newer than this runtrail's ${known}; .*migration ${known + 1} keeps older code working.*upgrade this node`),
      );
      expect(await kit.versionOf(location)).toBe(known + 1);

      expect((await store.readEvents(runId, 0, 100)).map((e) => e.type)).toEqual(['x.before']);
      expect((await store.append(runId, [{ type: 'x.after', data: { n: 2 } }], { now: T0 + 2 })).seqs).toEqual([2]);
      const { run: created } = await store.createRun({ id: uuidv7(), name: 'after', now: T0 + 3, leaseTtlMs: 3_600_000 });
      expect((await store.getRun(runId))?.seq).toBe(2);
      expect((await store.listRuns({ limit: 10 })).runs.map((r) => r.id).sort()).toEqual([runId, created.id].sort());

      // The newer node finds nothing to migrate, and sees what the older one wrote.
      await kit.migrateWith(location, [...migrations, laterAdditive]);
      expect((await store.readEvents(runId, 0, 100)).map((e) => e.type)).toEqual(['x.before', 'x.after']);
    });

    it('an older node refuses a schema a newer one migrated with a migration that is not additive, naming the version to upgrade to, and leaves it as it is', async () => {
      const { location } = await withRun();
      await kit.migrateWith(location, [...migrations, laterBreaking]);
      await expect(kit.open(location, () => expect.unreachable('refused, not run'))).rejects.toThrow(
        new RegExp(
          `schema version ${known + 1}, known ${known}\\), and migration ${known + 1} changed the schema in a way code before it cannot use: ` +
            `upgrade runtrail on this node to a version that knows schema version ${known + 1} or later`,
        ),
      );
      expect(await kit.versionOf(location)).toBe(known + 1);
    });

    it('the version an older node needs is the last migration that is not additive, however many additive ones follow it', async () => {
      const { location } = await withRun();
      await kit.migrateWith(location, [...migrations, laterAdditive, laterBreaking, { additive: true, sql: () => 'CREATE INDEX runs_later ON runs (later_priority)' }]);
      await expect(kit.open(location, () => expect.unreachable('refused, not run'))).rejects.toThrow(
        new RegExp(`schema version ${known + 3}, known ${known}\\), and migration ${known + 2} changed .*knows schema version ${known + 2} or later`),
      );
    });
  });
}
