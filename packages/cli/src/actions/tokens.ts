import type { Command } from 'commander';
import { CreateTokenBody, RuntrailError, TokenScope, type RevokedToken, type TokenInfo } from '@runtrail/protocol';
import { formatDuration, parseDuration } from '../duration.js';
import { clientFor } from '../client.js';
import { note, print, printJson, table, utcTime } from '../output.js';

/** `runtrail tokens create NAME`. */
export async function createToken(name: string, flags: { scope: string; expiresIn?: string; json?: boolean }, cmd: Command): Promise<void> {
  const scope = TokenScope.safeParse(flags.scope);
  if (!scope.success) throw new RuntrailError('invalid_request', `--scope must be one of ${TokenScope.options.join(', ')}`);
  const expiresInMs = flags.expiresIn === undefined ? undefined : parseDuration(flags.expiresIn, 's');
  // Said in the flag's words: the server's refusal names its field, expiresInSeconds, and a number of seconds.
  const longestMs = (CreateTokenBody.shape.expiresInSeconds.unwrap().maxValue ?? Infinity) * 1000;
  const tooLong = expiresInMs === null ? /^\d+(\.\d+)?(ms|s|m|h|d)?$/.test(flags.expiresIn!.trim()) && parseFloat(flags.expiresIn!) > 0 : (expiresInMs ?? 0) > longestMs;
  if (tooLong) {
    throw new RuntrailError('invalid_request', `--expires-in ${flags.expiresIn} is longer than a token may live, ${formatDuration(longestMs)}; leave --expires-in out for a token that never expires`);
  }
  if (expiresInMs === null || (expiresInMs !== undefined && expiresInMs % 1000 !== 0)) {
    throw new RuntrailError('invalid_request', `--expires-in must be whole seconds (3600) or a number with a unit (90m, 12h, 30d), not "${flags.expiresIn}"`);
  }
  const expiresInSeconds = expiresInMs === undefined ? undefined : expiresInMs / 1000;
  const client = clientFor(cmd);
  // Asked first: a token made on a server with auth off works (it is kept for when auth is
  // turned on), but the operator should know that server does not check it yet. Tokens live in
  // the store, so nodes sharing its database with auth on (PostgreSQL) do check it: the note
  // does not say that nothing checks it.
  const { auth } = await client.whoami();
  const created = await client.createToken({ name, scope: scope.data, expiresInSeconds });
  if (flags.json) printJson(created);
  else {
    print(created.token);
    process.stderr.write(
      `token ${created.id} (${created.scope}) created${created.expiresAt ? `, expires ${utcTime(created.expiresAt)} UTC` : ''}; the line above is its secret, shown this once\n`,
    );
  }
  if (!auth) {
    process.stderr.write(
      `runtrail: auth is off on ${client.api.baseUrl}, so that server does not check this token yet (it will once it runs with an admin token: --admin-token-file, RUNTRAIL_ADMIN_TOKEN); any node sharing its database with auth on checks it already\n`,
    );
  }
}

/** `runtrail tokens ls`. */
export async function listTokens(flags: { json?: boolean }, cmd: Command): Promise<void> {
  const list = await clientFor(cmd).listTokens();
  if (flags.json) return printJson({ tokens: list });
  if (list.length === 0) return note('no tokens');
  print(formatTokens(list));
}

/** `runtrail tokens revoke ID`. */
export async function revokeToken(id: string, flags: { json?: boolean }, cmd: Command): Promise<void> {
  // Straight to the server, which alone knows what this caller may revoke: looking the id up in
  // the token list first (admin only, scoped tokens only) refused every run token, even the
  // admin's, and a producer's own. Its 404 token_not_found says what the caller may revoke.
  // The DELETE is idempotent: a token revoked before is not an error (it is what was wanted),
  // but the answer says so, and when. A server from before that answered 204 with no body.
  const answer = (await clientFor(cmd).revokeToken(id)) as RevokedToken | undefined;
  if (flags.json) return printJson({ id, revoked: true, ...(answer ? { revokedAt: answer.revokedAt, alreadyRevoked: answer.alreadyRevoked } : {}) });
  // The id on stdout, as delete prints the run's; the sentence is for the person.
  print(id);
  if (answer?.alreadyRevoked) {
    process.stderr.write(`token ${id} already revoked at ${utcTime(answer.revokedAt)} UTC; nothing changed\n`);
    return;
  }
  process.stderr.write(`revoked token ${id}; it stops working on every node within seconds\n`);
}

function formatTokens(list: TokenInfo[]): string {
  const rows = list.map((t) => [
    t.id,
    t.name,
    t.scope,
    t.revokedAt !== null ? `revoked ${utcTime(t.revokedAt)} UTC` : t.expiresAt !== null && t.expiresAt <= Date.now() ? 'expired' : 'active',
    t.expiresAt === null ? '-' : utcTime(t.expiresAt),
    utcTime(t.createdAt),
  ]);
  return table(['ID', 'NAME', 'SCOPE', 'STATE', 'EXPIRES (UTC)', 'CREATED (UTC)'], rows);
}
