import { z } from 'zod';
import { nameText } from './text.js';
import { boundedInt } from './run.js';

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

export const CreateTokenBody = z.strictObject({
  name: nameText().min(1).max(200),
  scope: TokenScope,
  expiresInSeconds: boundedInt(1, MAX_TOKEN_LIFETIME_S).optional(),
});
export type CreateTokenBody = z.infer<typeof CreateTokenBody>;

/** A token as listed: never its secret. */
export const TokenInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  scope: TokenScope,
  createdAt: z.number(),
  expiresAt: z.number().nullable().describe('null: does not expire'),
  revokedAt: z.number().nullable().describe('null: not revoked'),
});
export type TokenInfo = z.infer<typeof TokenInfoSchema>;

/** What `createToken` answers: the secret, shown this once and stored only as a hash. */
export const CreatedTokenSchema = z.object({ id: z.string(), name: z.string(), scope: TokenScope, token: z.string(), expiresAt: z.number().nullable() });
export type CreatedToken = z.infer<typeof CreatedTokenSchema>;

/**
 * What `revokeToken` answers. Revoking is idempotent (a retry after a lost answer must not fail),
 * so the answer says whether this call did it or an earlier one had: "revoked" alone misled
 * whoever revoked a token twice into thinking the second call ended something.
 */
export const RevokedTokenSchema = z.object({
  id: z.string(),
  revokedAt: z.number().describe('when it was revoked: by this call, or (alreadyRevoked) by an earlier one'),
  alreadyRevoked: z.boolean().describe('true: an earlier call had revoked it, at revokedAt, and this one changed nothing'),
});
export type RevokedToken = z.infer<typeof RevokedTokenSchema>;

export const ListTokensResponseSchema = z.object({ tokens: z.array(TokenInfoSchema) });
export type ListTokensResponse = z.infer<typeof ListTokensResponseSchema>;

export const CreateRunTokenBody = z.strictObject({
  ttlSeconds: boundedInt(1, MAX_RUN_TOKEN_TTL_S).default(3600),
  /**
   * Also add events and artifacts to the run and the runs under it (for a
   * subprocess that reports into its run), but no `run.*` event: the run's
   * start, cancel, stall and end are its owner's; without it the token only
   * reads.
   */
  write: z.boolean().default(false),
});
export type CreateRunTokenBody = z.infer<typeof CreateRunTokenBody>;

export const CreatedRunTokenSchema = z.object({
  id: z.string().describe('revokes it: DELETE /api/v1/tokens/{id}'),
  token: z.string(),
  expiresAt: z.number(),
  write: z.boolean(),
});
export type CreatedRunToken = z.infer<typeof CreatedRunTokenSchema>;

/** What a token is, as `whoami` says (never its secret). */
export const PrincipalInfoSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('open') }),
  z.object({ kind: z.literal('scoped'), id: z.string(), name: z.string(), scope: TokenScope, expiresAt: z.number().nullable() }),
  z.object({
    kind: z.literal('run'),
    // So whoever holds a leaked run token (the executor's, whose id is shown nowhere else) can have it revoked.
    id: z.string().optional().describe('revokes it: DELETE /api/v1/tokens/{id} (absent for a run token minted before run tokens had ids)'),
    runId: z.string(),
    expiresAt: z.number(),
    write: z.boolean(),
  }),
]);
export type PrincipalInfo = z.infer<typeof PrincipalInfoSchema>;

/**
 * `whoami`: `auth` says whether this server needs tokens; `principal` is
 * the request's token (`{kind:'open'}` when auth is off; null when auth is on
 * and the token is missing or not valid).
 */
export const WhoamiResponseSchema = z.object({ auth: z.boolean(), principal: PrincipalInfoSchema.nullable() });
export type WhoamiResponse = z.infer<typeof WhoamiResponseSchema>;

/**
 * A header every state-changing request of the SDKs carries. Browsers cannot
 * send it cross-site without a CORS preflight, so with it (or a JSON body, or
 * an Authorization header) the server knows a request is no forged form post.
 */
export const CLIENT_HEADER = 'x-runtrail-client';
