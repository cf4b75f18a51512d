import { setTimeout as wait } from 'node:timers/promises';
import type { RunHandle } from '@runtrail/client';

/** Wait `ms`; a stopped run ends the wait with its stop reason, as any handler step would. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return wait(ms, undefined, { signal }).catch((err: unknown) => {
    throw signal.aborted ? signal.reason : err;
  });
}

/** Input of the demo pipeline; every field has a default so `{}` works. */
export interface DemoInput {
  docs?: number;
  models?: string[];
  concurrency?: number;
  /** Chance that one simulated LLM call fails (each is retried up to twice). */
  failureRate?: number;
  /** Mean latency of one simulated call, in ms. */
  latencyMs?: number;
}

/**
 * What a demo run does with no input, or a field left out: its input
 * schema states them as defaults, so the dashboard's Start run form and
 * `runtrail handlers demo-pipeline` show them.
 */
export const DEMO_DEFAULTS = {
  docs: 120,
  models: ['gpt-4o', 'claude-sonnet'],
  concurrency: 6,
  failureRate: 0.1,
  latencyMs: 350,
} as const satisfies Required<DemoInput>;

export interface DemoContext {
  run: RunHandle;
  signal: AbortSignal;
  input: DemoInput;
}

/**
 * A realistic simulated evaluation pipeline: generate a test set, then
 * evaluate every document with every model through many concurrent
 * LLM-style calls that are slow, sometimes fail and get retried.
 */
export async function demoPipeline({ run, signal, input }: DemoContext): Promise<{ accuracy: number; calls: number }> {
  const docs = clamp(input.docs ?? DEMO_DEFAULTS.docs, 1, 100_000);
  const models = input.models?.length ? input.models : [...DEMO_DEFAULTS.models];
  const concurrency = clamp(input.concurrency ?? DEMO_DEFAULTS.concurrency, 1, 256);
  const failureRate = Math.min(0.9, Math.max(0, input.failureRate ?? DEMO_DEFAULTS.failureRate));
  const latencyMs = clamp(input.latencyMs ?? DEMO_DEFAULTS.latencyMs, 1, 60_000);
  run.meta({ docs, models, concurrency, failureRate, latencyMs });
  // What generating should take (a pause of latencyMs / 4 per 20 documents), twice over, and a minute at least:
  // a fixed minute failed every run of 5,000 documents at the default latency.
  const generateTimeoutMs = Math.max(60_000, 2 * Math.ceil(docs / 20) * (latencyMs / 4));

  const documents = await run.withPhase('generate', async () => {
    const out: string[] = [];
    for (let i = 0; i < docs; i++) {
      out.push(`doc_${String(i + 1).padStart(3, '0')}`);
      if (i % 20 === 19 || i === docs - 1) {
        await delay(latencyMs / 4, signal);
        run.progress(i + 1, docs, `generated ${i + 1} of ${docs} documents`);
      }
    }
    run.log(`generated ${docs} documents`);
    return out;
  }, { timeoutMs: generateTimeoutMs });

  const jobs = documents.flatMap((doc) => models.map((model) => ({ doc, model })));
  let done = 0;
  let correct = 0;
  await run.withPhase('evaluate', async () => {
    run.progress(0, jobs.length, 'evaluating');
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        signal.throwIfAborted();
        const job = jobs[next++]!;
        const started = Date.now();
        try {
          const score = await run.call(
            `Evaluating ${job.doc} with ${job.model}`,
            async () => {
              await delay(latencyMs * (0.3 + Math.random() * 1.4), signal);
              if (Math.random() < failureRate) throw new Error(`${job.model}: 429 rate limited`);
              return Math.random();
            },
            { retries: 2, retryDelayMs: () => latencyMs / 2 },
          );
          if (score > 0.25) correct++;
          run.metric('latency_ms', Date.now() - started, done);
          run.count('tokens', 200 + Math.floor(Math.random() * 800));
        } catch (err) {
          if (signal.aborted) throw err;
          run.log(`${job.doc} with ${job.model} failed after retries: ${(err as Error).message}`, 'warn');
        }
        done++;
        run.progress(done, jobs.length);
        if (done % 10 === 0) run.metric('accuracy', correct / done, done);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  });
  const accuracy = done > 0 ? correct / done : 0;
  // The last step's value, unless the loop just reported it (a second value at one step reads as 25 values, 24 points).
  if (done % 10 !== 0) run.metric('accuracy', accuracy, done);
  run.log(`accuracy ${(accuracy * 100).toFixed(1)}% over ${done} calls`);
  return { accuracy, calls: done };
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.floor(value)));
}
