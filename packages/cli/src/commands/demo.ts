import type { Command } from 'commander';
import { RuntrailClient } from '@runtrail/client';
import { startServer, type ServerConfigInput } from '@runtrail/server';
import { demoPipeline, type DemoInput } from '../demo/pipeline.js';
import { addServeOptions, serveOptions, type ServeFlags } from '../options.js';
import { stopOnSignals } from './serve.js';

export function registerDemo(program: Command): void {
  addServeOptions(
    program
      .command('demo')
      .description('serve runtrail and run a simulated LLM evaluation pipeline you can watch live')
      .option('--docs <n>', 'documents to evaluate', '120'),
  ).action(async (flags: ServeFlags & { docs: string }) => {
    const server = await startServer(serveOptions(flags) as ServerConfigInput);
    stopOnSignals(server);
    const client = new RuntrailClient({ url: server.url });
    const input: DemoInput = { docs: Number(flags.docs) };
    const run = await client.createRun({ name: 'demo-pipeline', input, labels: { kind: 'demo' } });
    const say = (line: string) => process.stdout.write(`${line}\n`);
    say(`runtrail demo serving on ${server.url}`);
    say(`  dashboard:  ${server.url}/runs/${run.id}`);
    say(`  snapshot:   curl ${server.url}/api/v1/runs/${run.id}`);
    say(`  events:     curl '${server.url}/api/v1/runs/${run.id}/events?after=0&limit=20'`);
    say(`  live (SSE): curl -N ${server.url}/api/v1/runs/${run.id}/stream`);
    try {
      const output = await demoPipeline({ run, signal: run.signal, input });
      await run.succeed(output);
      say(`demo run ${run.id} succeeded: accuracy ${(output.accuracy * 100).toFixed(1)}% over ${output.calls} calls`);
    } catch (err) {
      await run.fail(err);
      say(`demo run ${run.id} failed: ${(err as Error).message}`);
    }
    say('still serving; Ctrl-C to stop');
  });
}
