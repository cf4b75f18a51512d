import { z } from 'zod';

/**
 * Tokens (issue 15). A scoped token is `Authorization: Bearer <token>`; its
 * scope says what it may do:
 * - `admin`: everything, including minting and revoking tokens;
 * - `producer`: create runs, append, heartbeat, finish, cancel, retry,
 *   upload artifacts, mint run tokens; and read;
 * - `viewer`: read and watch.
 * A run token (minted by `createRunToken`) reads and watches one run and
 * its children, and nothing else.
 */
export const TokenScope = z.enum(['admin', 'producer', 'viewer']);
export type TokenScope = z.infer<typeof TokenScope>;

/** Ten years: a longer lifetime is a token that never expires, which is what leaving it out means. */
const MAX_TOKEN_LIFETIME_S = 10 * 365 * 24 * 3600;
/** Run tokens are for browsers and shared links: at most 30 days. */
export const MAX_RUN_TOKEN_TTL_S = 30 * 24 * 3600;

export const CreateTokenBody = z.object({
  name: z.string().min(1).max(200),
  scope: TokenScope,
  expiresInSeconds: z.number().int().min(1).max(MAX_TOKEN_LIFETIME_S).optional(),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

/** A token as listed: never its secret. */
export interface TokenInfo {
  id: string;
  name: string;
  scope: TokenScope;
  createdAt: number;
  /** null: does not expire. */
  expiresAt: number | null;
  /** null: not revoked. */
  revokedAt: number | null;
}

/** What `createToken` answers: the secret, shown this once and stored only as a hash. */
export interface CreatedToken {
  id: string;
  name: string;
  scope: TokenScope;
  token: string;
  expiresAt: number | null;
}

export interface ListTokensResponse {
  tokens: TokenInfo[];
}

export const CreateRunTokenBody = z.object({
  ttlSeconds: z.number().int().min(1).max(MAX_RUN_TOKEN_TTL_S).default(3600),
});
export type CreateRunTokenBody = z.infer<typeof CreateRunTokenBody>;

export interface CreatedRunToken {
  token: string;
  expiresAt: number;
}

/** What a token is, as `whoami` says (never its secret). */
export type PrincipalInfo =
  | { kind: 'open' }
  | { kind: 'scoped'; id: string; name: string; scope: TokenScope; expiresAt: number | null }
  | { kind: 'run'; runId: string; expiresAt: number };

/**
 * `whoami`: `auth` says whether this server needs tokens; `principal` is
 * the request's token (`{kind:'open'}` when auth is off; null when auth is on
 * and the token is missing or not valid).
 */
export interface WhoamiResponse {
  auth: boolean;
  principal: PrincipalInfo | null;
}

/**
 * Close codes of the WebSocket stream when its token stops being valid
 * (4000-4999 are the application's range; the last three digits echo HTTP):
 * - 4401: no token, an unknown or malformed one, or it expired or was revoked;
 * - 4403: the token is valid but may not hold this connection any more;
 * - 4429: the connection sent more messages than the server accepts per second.
 * SSE says the same with `event: error` and `data: {"code","message"}`, then ends.
 */
export const WS_CLOSE = { unauthorized: 4401, forbidden: 4403, rateLimited: 4429 } as const;

/**
 * A header every state-changing request of the SDKs carries. Browsers cannot
 * send it cross-site without a CORS preflight, so with it (or a JSON body, or
 * an Authorization header) the server knows a request is no forged form post.
 */
export const CLIENT_HEADER = 'x-runtrail-client';
