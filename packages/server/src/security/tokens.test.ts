import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteRunStore, type TokenRecord } from '@runtrail/store';
import { tempDir } from '@runtrail/test-support';
import { TokenService } from './tokens.js';

const ADMIN = 'admin-token-for-tests-0123456789';
const closing: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closing.splice(0)) await close();
});

describe('TokenService cache', () => {
  it('a store read that was under way when a revoke was heard is not cached: the next check reads the store, not the answer from before the revoke', async () => {
    const dir = tempDir();
    const store = new SqliteRunStore({ filename: join(dir.path, 'runtrail.db') });
    closing.push(async () => {
      await store.close();
      dir.remove();
    });
    // The store's answer held until the test lets it go: the revoke lands while the read is under way.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let hold = true;
    const findTokenByHash = store.findTokenByHash.bind(store);
    store.findTokenByHash = async (hash: string): Promise<TokenRecord | null> => {
      const record = await findTokenByHash(hash);
      if (hold) await held;
      return record;
    };
    let id = 0;
    const tokens = new TokenService({ store, now: Date.now, newId: () => `id-${++id}`, adminToken: ADMIN, cacheMs: 60_000, maxRunTokensPerRun: 10 });
    const viewer = await tokens.create({ name: 'viewer', scope: 'viewer' });

    const checking = tokens.authenticate(viewer.token);
    // Revoked on another node; its notification heard here while this node's read is under way.
    const record = (await store.revokeToken(viewer.id, Date.now()))!;
    tokens.revoked({ id: record.id, hash: record.hash });
    hold = false;
    release();
    // Before: the answer read before the revoke was cached, so this check and every one for the next minute passed.
    await expect(checking).rejects.toThrow('the token was revoked');
    await expect(tokens.authenticate(viewer.token)).rejects.toThrow('the token was revoked');
  });
});
