import type { App } from '@runtrail/server';
import { demoPipeline, type DemoInput } from './pipeline.js';

export const DEMO_HANDLER = 'demo-pipeline';

/** Make the demo pipeline a handler of this node, so the dashboard's "Start run" can start it. */
export function defineDemoHandler(app: Pick<App, 'define'>): void {
  app.define<DemoInput | null>(DEMO_HANDLER, (ctx) =>
    demoPipeline({ run: ctx.handle, signal: ctx.signal, input: ctx.input ?? {} }),
  );
}
