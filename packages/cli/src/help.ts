import { Command } from 'commander';
import { RuntrailError } from '@runtrail/protocol';
import { settings } from '@runtrail/server/config';

/**
 * `runtrail help [COMMAND...]` on the program and on every group, in place of
 * commander's, which reads one name only (`runtrail help runs ls` showed the
 * help of `runs`) and answers a name it does not know with the whole help on
 * stderr instead of the one-line usage error every other mistake gets.
 * Call it before the commands are made to report usage errors in one line.
 */
export function addHelpCommands(command: Command): void {
  const groups = command.commands.filter((c) => c.commands.length > 0);
  command.helpCommand(false);
  command
    .command('help [command...]')
    .description(`display help for a command (${pathOf(command)} help ${firstPath(command)})`)
    .action((names: string[]) => {
      let target = command;
      for (const name of names) {
        const sub = findCommand(target, name);
        if (!sub && target.commands.length === 0) {
          throw new RuntrailError('invalid_request', `\`${pathOf(target)}\` has no subcommands; \`${pathOf(target)} --help\` shows the usage`);
        }
        if (!sub) {
          throw new RuntrailError('invalid_request', `${unknownCommandText(target, name)}; \`${pathOf(target)} --help\` shows the usage`);
        }
        target = sub;
      }
      target.outputHelp();
    });
  for (const group of groups) addHelpCommands(group);
}

/**
 * What to say about a command name `parent` does not have: commander's words,
 * with the closest names it has, or, for a name that is a subcommand of one
 * of its groups (`runtrail show ID`, `runtrail ls`), that subcommand's path.
 */
export function unknownCommandText(parent: Command, name: string): string {
  const inGroups = parent.commands.filter((group) => findCommand(group, name) && group.name() !== 'help').map((group) => `${group.name()} ${name}`);
  const similar = inGroups.length > 0 ? inGroups : closest(name, visibleNames(parent));
  const suggestion = similar.length === 0 ? '' : similar.length === 1 ? ` (did you mean ${similar[0]}?)` : ` (did you mean one of ${similar.join(', ')}?)`;
  return `unknown command '${name}'${suggestion}`;
}

/** A subcommand of `parent` that is spelt or aliased `name`; help itself is not one to walk into. */
function findCommand(parent: Command, name: string): Command | undefined {
  return parent.commands.find((c) => c.name() !== 'help' && (c.name() === name || c.aliases().includes(name)));
}

function visibleNames(parent: Command): string[] {
  return parent.createHelp().visibleCommands(parent).flatMap((c) => [c.name(), ...c.aliases()]);
}

/** `runtrail runs`: as the user types it. */
function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** An example for the help command's own line: the first group's first subcommand, or the first command. */
function firstPath(command: Command): string {
  const group = command.commands.find((c) => c.commands.length > 0);
  const first = group ? `${group.name()} ${group.commands[0]!.name()}` : command.commands[0]?.name();
  return first ?? '';
}

/** The names nearest `word` by edit distance, as commander suggests them (at most 3 edits, and more alike than not). */
function closest(word: string, candidates: string[]): string[] {
  let best = 4;
  let similar: string[] = [];
  for (const candidate of new Set(candidates)) {
    if (candidate.length <= 1) continue;
    const distance = editDistance(word, candidate);
    const length = Math.max(word.length, candidate.length);
    if ((length - distance) / length <= 0.4) continue;
    if (distance < best) [best, similar] = [distance, [candidate]];
    else if (distance === best) similar.push(candidate);
  }
  return similar.sort((a, b) => a.localeCompare(b));
}

/** Damerau-Levenshtein (optimal string alignment) distance: a swapped pair of letters is one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * A setting whose flag is not its key's words (`databaseUrl` is `--database`): the key's
 * words as a flag (`--database-url`, as its variable RUNTRAIL_DATABASE_URL suggests) are too
 * far from the flag for commander's suggestion, so they are named here, when the command has
 * that flag.
 */
export function renamedFlagHint(command: Command, option: string): string {
  const name = option.replace(/^--/, '').replace(/=.*$/s, '');
  for (const [key, setting] of Object.entries(settings)) {
    const derived = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    if (derived !== name || setting.flag === derived) continue;
    if (command.options.some((o) => o.long === `--${setting.flag}`)) return ` (did you mean --${setting.flag}? the flag of ${setting.env})`;
  }
  return '';
}
