import { InvalidArgumentError, Option, type Command } from 'commander';
import { addServeOptions, type ServeFlags } from '../options.js';

export function registerDemo(program: Command): void {
  addServeOptions(
    program
      .command('demo')
      .description('serve runtrail and run a simulated LLM evaluation pipeline you can watch live')
      .addOption(
        // Checked as the command line is read: `--docs abc` was sent on as null and refused by the
        // handler's schema ("input.docs: expected number, received null") after the server started.
        new Option('--docs <n>', 'documents to evaluate (1-100000)').default(120).argParser((value: string) => {
          const n = Number(value);
          if (!/^\d+$/.test(value) || n < 1 || n > 100_000) throw new InvalidArgumentError('give a whole number from 1 to 100000.');
          return n;
        }),
      ),
  ).action(async (flags: ServeFlags & { docs: number }) => (await import('../actions/demo.js')).demo(flags));
}
