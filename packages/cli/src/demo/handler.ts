import { z } from 'zod';
import type { App } from '@runtrail/server';
import { DEMO_DEFAULTS, demoPipeline, type DemoInput } from './pipeline.js';

export const DEMO_HANDLER = 'demo-pipeline';

/**
 * What a demo run may be started with (the dashboard's "Start run" form
 * sends it): anything else is refused when the run is created, naming the
 * field, rather than run with defaults as if it had been understood. Its
 * defaults are the pipeline's own (a field left out takes them), written
 * here so GET /handlers reports them and the form pre-fills them; the
 * handler is given the input as it was sent, not as this schema parses it.
 */
export const DemoInputSchema = z
  .strictObject({
    docs: z.number().int().min(1).max(100_000).default(DEMO_DEFAULTS.docs).describe('documents to generate, then evaluate with every model'),
    models: z.array(z.string().min(1).max(100)).min(1).max(20).default([...DEMO_DEFAULTS.models]).describe('models each document is evaluated with'),
    concurrency: z.number().int().min(1).max(256).default(DEMO_DEFAULTS.concurrency).describe('simulated LLM calls at once'),
    failureRate: z.number().min(0).max(0.9).default(DEMO_DEFAULTS.failureRate).describe('chance that one call fails (each is retried up to twice)'),
    latencyMs: z.number().min(1).max(60_000).default(DEMO_DEFAULTS.latencyMs).describe('mean latency of one call, in ms'),
  })
  .nullable()
  .optional();

/** Make the demo pipeline a handler of this node, so the dashboard's "Start run" can start it. */
export function defineDemoHandler(app: Pick<App, 'define'>): void {
  app.define<DemoInput | null>(DEMO_HANDLER, (ctx) => demoPipeline({ run: ctx.handle, signal: ctx.signal, input: ctx.input ?? {} }), {
    input: DemoInputSchema,
  });
}
