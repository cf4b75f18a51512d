import type { Command } from 'commander';
import { CreateTokenBody } from '@runtrail/protocol';
import { apiText } from '../options.js';

/**
 * `runtrail tokens create|ls|revoke`: scoped tokens, with RUNTRAIL_TOKEN holding an admin token;
 * `revoke` also takes back run tokens, which a producer token may do for those it minted.
 */
export function registerTokens(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('mint, list and revoke tokens (needs an admin token in RUNTRAIL_TOKEN; a producer token may revoke the run tokens it minted)');

  tokens
    .command('create')
    .argument('<name>', "the token's name, shown by tokens ls", apiText('NAME', CreateTokenBody.shape.name))
    .description('mint a token; its secret is printed once, on stdout, and stored only as a hash')
    .requiredOption('--scope <scope>', 'what it may do (required): admin (everything, tokens too), producer (make, report, cancel and retry runs, and read), viewer (read and watch)')
    .option('--expires-in <duration>', 'the token stops working after this long: seconds (3600) or a number with a unit (12h, 30d)')
    .option('--json', 'print {id, name, scope, token, expiresAt} as JSON')
    .action(async (name: string, flags: { scope: string; expiresIn?: string; json?: boolean }, cmd: Command) => (await import('../actions/tokens.js')).createToken(name, flags, cmd));

  tokens
    .command('ls')
    .alias('list')
    .description('list tokens (never their secrets)')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }, cmd: Command) => (await import('../actions/tokens.js')).listTokens(flags, cmd));

  tokens
    .command('revoke <id>')
    .description(
      'revoke a token by its id: a scoped token (admin token), or a run token (the admin token, or the producer token that minted it); ' +
        'it stops working and its open streams close, on every node within seconds',
    )
    .option('--json', 'print {"id": ID, "revoked": true, "revokedAt": MS, "alreadyRevoked": BOOL} as JSON (alreadyRevoked: an earlier call had revoked it, at revokedAt)')
    .action(async (id: string, flags: { json?: boolean }, cmd: Command) => (await import('../actions/tokens.js')).revokeToken(id, flags, cmd));
}
