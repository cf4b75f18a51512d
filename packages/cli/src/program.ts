import { readFileSync } from 'node:fs';
import { Command, type CommanderError } from 'commander';
import { RuntrailError } from '@runtrail/protocol';
// Each commands/*.ts registers its command (name, options, help) with what that alone needs: commander,
// the protocol's schemas and the server's settings table. Its action imports actions/*.ts, and with it
// the SDK, ws or the server, when it runs: the CLI is a new process for every command, and loading every
// command's modules cost each one (`--version`, `runs ls`) about 0.2 s of CPU more.
import { registerDemo } from './commands/demo.js';
import { registerRuns } from './commands/runs.js';
import { registerServe } from './commands/serve.js';
import { registerTail } from './commands/tail.js';
import { registerExec } from './commands/exec.js';
import { registerCancel } from './commands/cancel.js';
import { registerRetry } from './commands/retry.js';
import { registerStart } from './commands/start.js';
import { registerHandlers } from './commands/handlers.js';
import { registerDelete } from './commands/delete.js';
import { registerPrune } from './commands/prune.js';
import { registerMigrate } from './commands/migrate.js';
import { registerArtifacts } from './commands/artifacts.js';
import { registerArchive } from './commands/archive.js';
import { registerConfig } from './commands/config.js';
import { addHelpCommands, renamedFlagHint, unknownCommandText } from './help.js';

import { registerTokens } from './commands/tokens.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Commands that are no client of a server: --server means nothing to them. */
const SERVING_COMMANDS = new Set(['serve', 'config', 'demo', 'migrate']);

/**
 * The `runtrail` command line: every command, its options and help, and
 * how a usage error is said. main.ts parses the process's arguments with
 * it; tests read its help in-process (a spawn per command took 40 s).
 */
export function createProgram(): Command {
  const program = new Command('runtrail')
    .description('live progress of long-running runs, from a durable event log')
    .version(version, '-V, --version', 'print the runtrail version')
    .option(
      '--server <url>',
      'runtrail server for client commands (env RUNTRAIL_URL, default http://127.0.0.1:$RUNTRAIL_PORT or 4310); a token, when it needs one, in env RUNTRAIL_TOKEN',
    )
    // A new user's first question is what to type first, which the list of commands does not answer.
    .addHelpText(
      'after',
      `
Examples:
  runtrail serve                              the API and the dashboard on http://127.0.0.1:4310
  runtrail exec -- python3 train.py           run a command as a run, with a live progress line
  runtrail handlers demo-pipeline             what input a handler takes
  runtrail start eval --input @job.json       queue a run for a handler the server defines
  runtrail runs ls --status failed            the runs that failed, newest first
  runtrail tail ID                            follow one run live until it ends
  runtrail prune --older-than 30d --dry-run   the ended runs a prune would delete
  runtrail runs --help                        a command's subcommands and options (every command takes --help)

Client commands send the token in RUNTRAIL_TOKEN to a server with auth on.`,
    );

  // Each client command's help names --server and the token's variable: `runtrail tail --help` said
  // nothing of how to reach another server. Not on the commands that serve or copy files themselves.
  program.configureHelp({
    showGlobalOptions: true,
    visibleGlobalOptions: (cmd: Command) => {
      let top = cmd;
      while (top.parent && top.parent !== program) top = top.parent;
      return top === program || SERVING_COMMANDS.has(top.name()) ? [] : program.options.filter((option) => option.long === '--server');
    },
  });

  registerServe(program);
  registerConfig(program);
  registerDemo(program);
  registerRuns(program);
  registerTail(program);
  registerStart(program);
  registerHandlers(program);
  registerExec(program);
  registerCancel(program);
  registerRetry(program);
  registerDelete(program);
  registerPrune(program);
  registerMigrate(program);
  registerTokens(program);
  registerArtifacts(program);
  registerArchive(program);

  addHelpCommands(program);
  usageErrorsInOneLine(program);
  program.hook('preAction', (_program, command) => refuseEmptyValues(program, command));
  return program;
}

/**
 * An empty value given to a client command (`--server "$URL"` with URL unset,
 * `runs show ""`) is a mistake to say in its own words: `--server ''` quietly
 * meant the default server, and the rest were refused by the server naming
 * its own fields (`invalid query: nameContains` for `--search ''`). The
 * serving commands are left out: a setting may be empty on purpose
 * (`--cors-origins ''`), and exec's command arguments may be empty too.
 */
function refuseEmptyValues(program: Command, command: Command): void {
  let top = command;
  while (top.parent && top.parent !== program) top = top.parent;
  if (SERVING_COMMANDS.has(top.name())) return;
  const values = command.optsWithGlobals<Record<string, unknown>>();
  const empty = [...command.options, ...program.options]
    .filter((option) => {
      const value = values[option.attributeName()];
      return value === '' || (Array.isArray(value) && value.includes(''));
    })
    .map((option) => option.long ?? option.flags);
  command.registeredArguments.forEach((argument, i) => {
    if (!argument.variadic && command.processedArgs[i] === '') empty.push(`<${argument.name()}>`);
  });
  if (empty.length === 0) return;
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  throw new RuntrailError('invalid_request', `${empty.join(', ')} given an empty value; \`${names.join(' ')} --help\` shows the usage`);
}

/**
 * A usage error (unknown command or option, missing argument, bad value)
 * is one line like every other error, with its code and exit 2, naming
 * the nearest command or option when commander knows one, instead of
 * commander's lines and the whole help. --help and --version exit 0; a
 * group given no subcommand (`runtrail tokens`) prints its help.
 */
function usageErrorsInOneLine(command: Command): void {
  const path: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) path.unshift(c.name());
  command.configureOutput({ outputError: () => undefined /* said in one line by the exit override below */ });
  command.exitOverride((err: CommanderError) => {
    if (err.exitCode === 0) process.exit(0);
    if (err.code !== 'commander.help') {
      // An unknown command: also named when it is a subcommand of a group (`runtrail show ID`: runs show).
      const what =
        err.code === 'commander.unknownCommand' && command.args[0] !== undefined
          ? unknownCommandText(command, command.args[0])
          : err.message
              .replace(/^error: /, '')
              .replace(/\n\(Did you mean (.+)\?\)$/, ' (did you mean $1?)')
              .replace(/\.$/, '');
      const renamed =
        err.code === 'commander.unknownOption' && !what.includes('did you mean') ? renamedFlagHint(command, /'([^']+)'/.exec(what)?.[1] ?? '') : '';
      // `runtrail exec python3 -c '…'`: the command's own option, taken for one of exec's. Not
      // for a near miss of exec's (--idle-timout), which commander names instead.
      const commandsOption =
        command.name() === 'exec' && err.code === 'commander.unknownOption' && !what.includes('did you mean') && !renamed
          ? ' (an option of the command goes after --: runtrail exec [options] -- CMD ARGS...)'
          : '';
      process.stderr.write(`runtrail: invalid_request: ${what}${renamed}${commandsOption}; \`${path.join(' ')} --help\` shows the usage\n`);
    }
    process.exit(2);
  });
  for (const sub of command.commands) usageErrorsInOneLine(sub);
}

