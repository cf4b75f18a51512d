import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  RuntrailError,
  type CreateTokenBody,
  type CreatedRunToken,
  type CreatedToken,
  type TokenInfo,
  type TokenScope,
} from '@runtrail/protocol';
import type { RunStore, TokenRecord } from '@runtrail/store';

/** Who a request is. `open`: auth is off, everyone may do everything. */
export type Principal =
  | { kind: 'open' }
  | { kind: 'scoped'; id: string; name: string; scope: TokenScope; expiresAt: number | null; hash: string }
  /**
   * `write`: may also add events and artifacts to its run and the runs under it.
   * `mintedBy`: id of the scoped token that minted it, which it never
   * outlives: revoking that token ends it too (absent when the admin token,
   * the executor or an open server minted it).
   */
  | { kind: 'run'; runId: string; expiresAt: number; write: boolean; hash: string; mintedBy?: string };

export type Validity = 'valid' | 'expired' | 'revoked';

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
  private readonly revokedListeners = new Set<(revoked: { id: string; hash: string }) => void>();

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

  async revoke(id: string): Promise<TokenInfo> {
    const record = await this.deps.store.revokeToken(id, this.deps.now());
    if (!record) throw new RuntrailError('token_not_found', `no token with id ${id}; GET /api/v1/tokens lists them`, { id });
    this.cache.delete(record.hash);
    this.cache.delete(byIdKey(record.id));
    for (const listener of this.revokedListeners) listener({ id: record.id, hash: record.hash });
    return info(record);
  }

  /** Called with each token revoked on THIS node (other nodes notice within cacheMs). */
  onRevoked(listener: (revoked: { id: string; hash: string }) => void): () => void {
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
    const wanted = this.deps.now() + ttlSeconds * 1000;
    const expiresAt = by !== undefined && by.kind !== 'open' && by.expiresAt !== null ? Math.min(wanted, by.expiresAt) : wanted;
    const mintedBy = by === undefined || by.kind === 'open' ? undefined : by.kind === 'run' ? by.mintedBy : by.id === 'admin' ? undefined : by.id;
    // A reading token's claims stay as they always were: tokens minted before write tokens existed still verify.
    const claims = { run: runId, exp: expiresAt, ...(write ? { w: true } : {}), ...(mintedBy !== undefined ? { by: mintedBy } : {}) };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const mac = createHmac('sha256', await this.runSecret()).update(payload).digest('base64url');
    return { token: `${RUN_PREFIX}${payload}.${mac}`, expiresAt, write };
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
      if (principal.mintedBy === undefined) return 'valid';
      const minter = await this.lookup(byIdKey(principal.mintedBy), () => this.deps.store.findTokenById(principal.mintedBy!));
      return minter && minter.revokedAt === null ? 'valid' : 'revoked';
    }
    if (principal.id === 'admin') return 'valid';
    const record = await this.lookup(principal.hash, () => this.deps.store.findTokenByHash(principal.hash));
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
    const record = await this.lookup(hash, () => this.deps.store.findTokenByHash(hash));
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
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { run?: unknown; exp?: unknown; w?: unknown; by?: unknown };
    if (typeof claims.run !== 'string' || typeof claims.exp !== 'number') return null;
    if (claims.by !== undefined && typeof claims.by !== 'string') return null;
    return {
      kind: 'run',
      runId: claims.run,
      expiresAt: claims.exp,
      write: claims.w === true,
      hash: sha256(token),
      ...(claims.by !== undefined ? { mintedBy: claims.by } : {}),
    };
  }

  /** A token record under `key` (its hash, or byIdKey(id)), from the cache while it is younger than cacheMs. */
  private async lookup(key: string, find: () => Promise<TokenRecord | null>): Promise<TokenRecord | null> {
    const now = this.deps.now();
    const cached = this.cache.get(key);
    if (cached && now - cached.checkedAt < this.deps.cacheMs) return cached.record;
    const record = await find();
    this.cache.delete(key);
    if (record) {
      this.cache.set(key, { record, checkedAt: now });
      if (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
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
  return principal.kind === 'run' ? 'the token that minted this run token was revoked' : 'the token was revoked';
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
