import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  RuntrailError,
  type CreateTokenBody,
  type CreatedRunToken,
  type CreatedToken,
  type RevokedToken,
  type TokenInfo,
  type TokenScope,
} from '@runtrail/protocol';
import type { RunStore, RunTokenRecord, TokenRecord } from '@runtrail/store';

/** Who a request is. `open`: auth is off, everyone may do everything. */
export type Principal =
  | { kind: 'open' }
  | { kind: 'scoped'; id: string; name: string; scope: TokenScope; expiresAt: number | null; hash: string }
  /**
   * `write`: may also add events and artifacts to its run and the runs under it.
   * `mintedBy`: id of the scoped token that minted it, which it never
   * outlives: revoking that token ends it too (absent when the admin token,
   * the executor or an open server minted it).
   * `id`: its own id, under which the store records it and DELETE
   * /tokens/:id revokes it (absent from tokens minted before run tokens
   * were recorded: those end only at their expiry or with their minter).
   */
  | { kind: 'run'; runId: string; expiresAt: number; write: boolean; hash: string; mintedBy?: string; id?: string };

/** `minter_revoked`: a run token whose minting token was revoked. */
export type Validity = 'valid' | 'expired' | 'revoked' | 'minter_revoked';

const SCOPED_PREFIX = 'rt_';
const RUN_PREFIX = 'rtr_';
/** Name of the HMAC secret of run tokens in the store: every node signs and checks with the same one. */
const RUN_TOKEN_SECRET = 'run-token-hmac';
/** Longest token accepted; anything longer is not ours and is not hashed or parsed. */
const MAX_TOKEN_CHARS = 1024;
/** Verified tokens remembered at once (forged ones are never remembered). */
const CACHE_ENTRIES = 10_000;

export interface TokenServiceDeps {
  store: RunStore;
  now: () => number;
  newId: () => string;
  /** Set: auth is on, and this is the admin token. */
  adminToken?: string | undefined;
  /** How long a verified token is trusted before the store is asked again. */
  cacheMs: number;
  /** Live (unexpired, unrevoked) run tokens one run may have; a mint past it is refused. */
  maxRunTokensPerRun: number;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * Scoped tokens (random secrets, stored as SHA-256 hashes in the store) and
 * run tokens (an HMAC over run id + expiry, with the secret in the store),
 * so any node on the same database can check any token (issue 15).
 */
export class TokenService {
  private readonly adminHash: Buffer | null;
  private readonly cache = new Map<string, { record: TokenRecord; checkedAt: number }>();
  private secret: Promise<Buffer> | null = null;
  private readonly revokedListeners = new Set<(revoked: { id: string; hash: string | null }) => void>();
  /** Run token records by id, as `cache` holds scoped ones. */
  private readonly runTokenCache = new Map<string, { record: RunTokenRecord; checkedAt: number }>();
  /** Counts what was dropped from the caches: a store read that started before a drop is not cached (it may predate the revoke). */
  private drops = 0;

  constructor(private readonly deps: TokenServiceDeps) {
    this.adminHash = deps.adminToken === undefined ? null : Buffer.from(sha256(deps.adminToken), 'hex');
  }

  /** Whether requests need a token. */
  get enabled(): boolean {
    return this.adminHash !== null;
  }

  async create(body: CreateTokenBody): Promise<CreatedToken> {
    const token = SCOPED_PREFIX + randomBytes(32).toString('base64url');
    const now = this.deps.now();
    const record: TokenRecord = {
      id: this.deps.newId(),
      name: body.name,
      scope: body.scope,
      hash: sha256(token),
      createdAt: now,
      expiresAt: body.expiresInSeconds === undefined ? null : now + body.expiresInSeconds * 1000,
      revokedAt: null,
    };
    await this.deps.store.createToken(record);
    return { id: record.id, name: record.name, scope: record.scope, token, expiresAt: record.expiresAt };
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.deps.store.listTokens()).map(info);
  }

  /**
   * Revoke a scoped token, or a run token by the id it was minted with. `by`:
   * who asks. The admin token (and anyone on an open server) revokes any
   * token; any other token only the run tokens it minted itself. Not "any
   * token that may write the run": every producer token writes every run, so
   * that would let one producer end the links another handed out. The minter
   * is who gave the token away, and the one who knows when it should end.
   */
  async revoke(id: string, by: Principal): Promise<RevokedToken> {
    const now = this.deps.now();
    if (!(by.kind === 'open' || (by.kind === 'scoped' && by.scope === 'admin'))) {
      const own = await this.deps.store.findRunTokenById(id);
      // Someone else's token and no token at all get the same answer: a producer must not learn which ids exist.
      if (!own || by.kind !== 'scoped' || own.mintedBy !== by.id) {
        throw new RuntrailError('token_not_found', `this token minted no run token with id ${id}; a ${by.kind === 'scoped' ? by.scope : 'run'} token revokes only the run tokens it minted (the \`id\` it was answered with), the admin token any token`, { id });
      }
      const runToken = await this.deps.store.revokeRunToken(id, now);
      // Gone between the two reads: it expired and a mint dropped its record, so it works nowhere either way.
      if (!runToken) throw new RuntrailError('token_not_found', `run token ${id} has expired and is no longer recorded; it works nowhere`, { id });
      this.revoked({ id, hash: null });
      return revokedAnswer(id, runToken.revokedAt, now);
    }
    const record = await this.deps.store.revokeToken(id, now);
    if (record) {
      this.revoked({ id: record.id, hash: record.hash });
      return revokedAnswer(id, record.revokedAt, now);
    }
    const runToken = await this.deps.store.revokeRunToken(id, now);
    if (!runToken) {
      throw new RuntrailError('token_not_found', `no token with id ${id}; GET /api/v1/tokens lists scoped tokens, and a run token's id is the \`id\` it was minted with`, { id });
    }
    this.revoked({ id, hash: null });
    return revokedAnswer(id, runToken.revokedAt, now);
  }

  /**
   * A token revoked here, or on another node sharing the store (its
   * notification; this node hears its own revokes again that way, and the
   * second time finds nothing left to drop or end): not trusted from the
   * cache any more, and its streams here end at once.
   */
  revoked(revoked: { id: string; hash: string | null }): void {
    this.drops++;
    if (revoked.hash === null) this.runTokenCache.delete(revoked.id);
    else this.cache.delete(revoked.hash);
    // By id too: the minter of run tokens, looked up when they are checked.
    this.cache.delete(byIdKey(revoked.id));
    for (const listener of this.revokedListeners) listener(revoked);
  }

  /**
   * Forget every token checked: the notifications of revokes on other nodes
   * were not heard for a while (the listener reconnected), and which tokens
   * they named cannot be known. The store is asked again at each token's
   * next use; open streams at their next periodic check.
   */
  forgetAll(): void {
    this.drops++;
    this.cache.clear();
    this.runTokenCache.clear();
  }

  /**
   * Called with each token revoked, on this node or (heard through the
   * store's notifications) on another: a scoped token by id and hash, a run
   * token by its id (`hash` null: the store never saw the token, only its
   * id). A notification missed leaves the other node's revoke to cacheMs.
   */
  onRevoked(listener: (revoked: { id: string; hash: string | null }) => void): () => void {
    this.revokedListeners.add(listener);
    return () => this.revokedListeners.delete(listener);
  }

  /**
   * `by`: who asks. A run token must not outlive the token that minted it:
   * its expiry is at most that token's (a producer token expiring in an
   * hour cannot hand out 30 days), and it names that token, so revoking
   * the producer token ends the run tokens it handed out.
   */
  async mintRunToken(runId: string, ttlSeconds: number, write = false, by?: Principal): Promise<CreatedRunToken> {
    const now = this.deps.now();
    const wanted = now + ttlSeconds * 1000;
    const expiresAt = by !== undefined && by.kind !== 'open' && by.expiresAt !== null ? Math.min(wanted, by.expiresAt) : wanted;
    const mintedBy = by === undefined || by.kind === 'open' ? undefined : by.kind === 'run' ? by.mintedBy : by.id === 'admin' ? undefined : by.id;
    // Recorded before it is handed out, so it can be revoked by its id: a signature alone can only expire.
    const id = this.deps.newId();
    const max = this.deps.maxRunTokensPerRun;
    // Bounded per run: each is a row kept until it expires (up to 30 days), and a minter could otherwise add them without end.
    if (!(await this.deps.store.createRunToken({ id, runId, write, createdAt: now, expiresAt, revokedAt: null, mintedBy: mintedBy ?? null }, max))) {
      throw new RuntrailError(
        'too_many_run_tokens',
        `run ${runId} has ${max} live run tokens, the most allowed (maxRunTokensPerRun on the server); revoke one (DELETE /api/v1/tokens/:id) or wait until one expires`,
        { runId, limit: max },
      );
    }
    // A reading token's claims stay as they always were: tokens minted before write tokens existed still verify.
    const claims = { run: runId, exp: expiresAt, id, ...(write ? { w: true } : {}), ...(mintedBy !== undefined ? { by: mintedBy } : {}) };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const mac = createHmac('sha256', await this.runSecret()).update(payload).digest('base64url');
    return { id, token: `${RUN_PREFIX}${payload}.${mac}`, expiresAt, write };
  }

  /**
   * The principal of a request's token. Auth off: `open` whatever was sent.
   * Auth on: a missing, malformed, unknown, expired or revoked token is 401.
   */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (!this.enabled) return { kind: 'open' };
    if (token === undefined || token === '') {
      throw new RuntrailError('unauthorized', 'this server needs a token: send Authorization: Bearer <token>');
    }
    const principal = token.length <= MAX_TOKEN_CHARS ? await this.verify(token) : null;
    if (!principal) throw new RuntrailError('unauthorized', 'the token is not valid on this server');
    const validity = await this.validity(principal);
    if (validity !== 'valid') throw new RuntrailError('unauthorized', invalidTokenMessage(validity, principal));
    return principal;
  }

  /** Whether a principal authenticated earlier still holds (open streams ask this periodically). */
  async validity(principal: Principal): Promise<Validity> {
    if (principal.kind === 'open') return 'valid';
    const now = this.deps.now();
    if (principal.expiresAt !== null && principal.expiresAt <= now) return 'expired';
    if (principal.kind === 'run') {
      if (principal.id !== undefined) {
        // Not recorded (a store that lost it): refused, as a scoped token the store does not know is.
        const own = await this.lookup(this.runTokenCache, principal.id, () => this.deps.store.findRunTokenById(principal.id!));
        if (!own || own.revokedAt !== null) return 'revoked';
      }
      if (principal.mintedBy === undefined) return 'valid';
      const minter = await this.lookup(this.cache, byIdKey(principal.mintedBy), () => this.deps.store.findTokenById(principal.mintedBy!));
      return minter && minter.revokedAt === null ? 'valid' : 'minter_revoked';
    }
    if (principal.id === 'admin') return 'valid';
    const record = await this.lookup(this.cache, principal.hash, () => this.deps.store.findTokenByHash(principal.hash));
    if (!record || record.revokedAt !== null) return 'revoked';
    return 'valid';
  }

  private async verify(token: string): Promise<Principal | null> {
    if (token.startsWith(RUN_PREFIX)) return this.verifyRunToken(token);
    const hash = sha256(token);
    if (this.adminHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.adminHash)) {
      return { kind: 'scoped', id: 'admin', name: 'admin token', scope: 'admin', expiresAt: null, hash };
    }
    if (!token.startsWith(SCOPED_PREFIX)) return null;
    const record = await this.lookup(this.cache, hash, () => this.deps.store.findTokenByHash(hash));
    if (!record) return null;
    return { kind: 'scoped', id: record.id, name: record.name, scope: record.scope, expiresAt: record.expiresAt, hash };
  }

  private async verifyRunToken(token: string): Promise<Principal | null> {
    const [payload, mac, ...rest] = token.slice(RUN_PREFIX.length).split('.');
    if (!payload || !mac || rest.length > 0) return null;
    const expected = createHmac('sha256', await this.runSecret()).update(payload).digest();
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    // Signed by us, so well-formed; parsed defensively all the same.
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { run?: unknown; exp?: unknown; w?: unknown; by?: unknown; id?: unknown };
    if (typeof claims.run !== 'string' || typeof claims.exp !== 'number') return null;
    if (claims.by !== undefined && typeof claims.by !== 'string') return null;
    if (claims.id !== undefined && typeof claims.id !== 'string') return null;
    return {
      kind: 'run',
      runId: claims.run,
      expiresAt: claims.exp,
      write: claims.w === true,
      hash: sha256(token),
      ...(claims.by !== undefined ? { mintedBy: claims.by } : {}),
      ...(claims.id !== undefined ? { id: claims.id } : {}),
    };
  }

  /**
   * A record under `key` in `cache` (a scoped token by its hash or byIdKey(id), a run token by
   * its id), from the cache while it is younger than cacheMs.
   */
  private async lookup<T>(cache: Map<string, { record: T; checkedAt: number }>, key: string, find: () => Promise<T | null>): Promise<T | null> {
    const now = this.deps.now();
    const cached = cache.get(key);
    if (cached && now - cached.checkedAt < this.deps.cacheMs) return cached.record;
    const drops = this.drops;
    let record: T | null;
    try {
      record = await find();
    } catch (err) {
      // The database is down: the last answer it gave stands, as open streams keep theirs
      // (recheckTokens). Without it /metrics, which needs no store, refused its scraper with
      // 503 for the whole outage. A revoke heard meanwhile dropped the entry, so it is refused.
      if (cached && RuntrailError.isCode(err, 'unavailable')) return cached.record;
      throw err;
    }
    cache.delete(key);
    if (record && drops === this.drops) {
      cache.set(key, { record, checkedAt: now });
      if (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    }
    return record;
  }

  private runSecret(): Promise<Buffer> {
    this.secret ??= this.deps.store
      .ensureSecret(RUN_TOKEN_SECRET, randomBytes(32).toString('base64url'))
      .then((s) => Buffer.from(s, 'base64url'));
    // A failed read is tried again next time rather than remembered.
    this.secret.catch(() => {
      this.secret = null;
    });
    return this.secret;
  }
}

/** Why a token stopped working, as requests and streams are told. */
export function invalidTokenMessage(why: Exclude<Validity, 'valid'>, principal: Principal): string {
  if (why === 'expired') return 'the token has expired';
  if (why === 'minter_revoked') return 'the token that minted this run token was revoked';
  return principal.kind === 'run' ? 'the run token was revoked' : 'the token was revoked';
}

/**
 * The store keeps the first revoke's time (a second revoke leaves it): any other time than this
 * call's `now` is an earlier call's. The same millisecond is taken as this call's, which it is, or
 * one racing it: either way the token ended just now.
 */
function revokedAnswer(id: string, revokedAt: number | null, now: number): RevokedToken {
  const at = revokedAt ?? now;
  return { id, revokedAt: at, alreadyRevoked: at !== now };
}

/** Cache key of a token looked up by id; hashes are hex, so the two never meet. */
const byIdKey = (id: string): string => `id:${id}`;

function info(record: TokenRecord): TokenInfo {
  return {
    id: record.id,
    name: record.name,
    scope: record.scope,
    createdAt: record.createdAt,
    expiresAt: record.expiresAt,
    revokedAt: record.revokedAt,
  };
}
