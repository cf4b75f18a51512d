import { z } from 'zod';
import type { App } from '@runtrail/server';
import { demoPipeline, type DemoInput } from './pipeline.js';

export const DEMO_HANDLER = 'demo-pipeline';

/**
 * What a demo run may be started with (the dashboard's "Start run" form
 * sends it): anything else is refused when the run is created, naming the
 * field, rather than run with defaults as if it had been understood.
 */
export const DemoInputSchema = z
  .strictObject({
    docs: z.number().int().min(1).max(100_000).optional(),
    models: z.array(z.string().min(1).max(100)).min(1).max(20).optional(),
    concurrency: z.number().int().min(1).max(256).optional(),
    failureRate: z.number().min(0).max(0.9).optional(),
    latencyMs: z.number().min(1).max(60_000).optional(),
  })
  .nullable()
  .optional();

/** Make the demo pipeline a handler of this node, so the dashboard's "Start run" can start it. */
export function defineDemoHandler(app: Pick<App, 'define'>): void {
  app.define<DemoInput | null>(DEMO_HANDLER, (ctx) => demoPipeline({ run: ctx.handle, signal: ctx.signal, input: ctx.input ?? {} }), {
    input: DemoInputSchema,
  });
}
