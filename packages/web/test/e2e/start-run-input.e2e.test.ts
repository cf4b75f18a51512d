import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { repoRoot, restartingScene, textNow, waitUntil } from './harness.js';

/**
 * The Start run form says what input the chosen handler takes, from the
 * schema the server reports, and starts from an input that schema accepts.
 * A node of concurrency 0 claims nothing, so the runs it starts stay queued
 * and cost the machine nothing.
 */
describe('the Start run form', () => {
  const scene = restartingScene({ prefix: 'runtrail-web-start-input-', node: 'e2e-start-input', env: { RUNTRAIL_CONCURRENCY: '0' } });

  /** The rows of the chosen handler's input table, as the user reads them. */
  const inputRows = (page: Page) =>
    page.getByRole('table', { name: /^input of / }).locator('tbody tr').evaluateAll((rows) => rows.map((row) => [...row.querySelectorAll('td')].map((td) => td.innerText.trim())));

  it("shows the chosen handler's fields with types, bounds, defaults and when they are required, pre-fills an input it accepts, and shows the server's refusal naming the field", async () => {
    const zod = pathToFileURL(join(repoRoot, 'node_modules/zod/index.js')).href;
    const handlers = join(scene.dir.path, 'handlers.mjs');
    writeFileSync(
      handlers,
      `import { z } from ${JSON.stringify(zod)};
export default {
  scored: { handler: async () => {}, input: z.strictObject({ dataset: z.string().min(1), threshold: z.number().min(0).max(1).default(0.5), model: z.object({ name: z.string() }).optional() }) },
  free: async () => {},
  dated: { handler: async () => {}, input: z.object({ at: z.date() }) },
};
`,
    );
    const server = await scene.start({ args: ['--handlers', handlers] });
    const { page, errors } = await scene.newPage();
    await page.goto(`${server.url}/`);
    await page.getByRole('button', { name: 'Start run' }).click();
    const handler = page.getByLabel('handler', { exact: true });
    const editor = page.getByLabel('run input as JSON');
    await page.getByRole('table', { name: 'input of demo-pipeline' }).waitFor();

    // The demo, chosen first: every field, and its defaults as the input to start from.
    expect(await inputRows(page)).toEqual([
      ['docs\ndocuments to generate, then evaluate with every model', 'integer', '1 to 100000', 'optional, default 120'],
      ['models\nmodels each document is evaluated with', 'array of string (1 to 100 characters)', '1 to 20 items', 'optional, default ["gpt-4o","claude-sonnet"]'],
      ['concurrency\nsimulated LLM calls at once', 'integer', '1 to 256', 'optional, default 6'],
      ['failureRate\nchance that one call fails (each is retried up to twice)', 'number', '0 to 0.9', 'optional, default 0.1'],
      ['latencyMs\nmean latency of one call, in ms', 'number', '1 to 60000', 'optional, default 350'],
    ]);
    expect(await textNow(page.getByRole('table', { name: 'input of demo-pipeline' }).locator('caption'))).toBe(
      'demo-pipeline takes object or null; other fields are refused:',
    );
    expect(JSON.parse(await editor.inputValue())).toEqual({ docs: 120, models: ['gpt-4o', 'claude-sonnet'], concurrency: 6, failureRate: 0.1, latencyMs: 350 });

    // Another handler: its own fields, and an input its schema accepts in place of the demo's.
    await handler.selectOption('scored');
    await page.getByRole('table', { name: 'input of scored' }).waitFor();
    expect(await inputRows(page)).toEqual([
      ['dataset', 'string', 'at least 1 character', 'required'],
      ['threshold', 'number', '0 to 1', 'optional, default 0.5'],
      // Required only inside the optional object: not a field every input must have.
      ['model', 'object', '', 'optional'],
      ['model.name', 'string', '', 'required if model is given'],
    ]);
    expect(JSON.parse(await editor.inputValue())).toEqual({ dataset: 'x', threshold: 0.5 });
    // Without a schema, or with one JSON Schema cannot express, it says so and starts from no input.
    await handler.selectOption('free');
    await page.getByText('free takes any input, or none: it was defined with no input schema.').waitFor();
    expect(await editor.inputValue()).toBe('');
    await handler.selectOption('dated');
    await page.getByText('The input schema of dated cannot be shown (Date cannot be represented in JSON Schema); the server still checks the input when the run starts.').waitFor();

    // What the user typed stays when they look at another handler.
    await handler.selectOption('scored');
    await editor.fill('{"dataset": "docs-v2", "threshold": 3}');
    await handler.selectOption('demo-pipeline');
    await handler.selectOption('scored');
    expect(await editor.inputValue()).toBe('{"dataset": "docs-v2", "threshold": 3}');
    // The server refuses it naming the field, and the form shows that.
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    const refusal = page.getByRole('alert');
    await waitUntil(async () => (await textNow(refusal))?.includes('input.threshold'), { what: "the server's refusal to be shown" });
    expect(await textNow(refusal)).toContain('the input of a "scored" run: input.threshold: Too big: expected number to be <=1');

    // The example it pre-fills is accepted: opened afresh, the form starts the run as filled in, and its page opens.
    await page.getByRole('button', { name: 'close start a run' }).click();
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.getByRole('table', { name: 'input of demo-pipeline' }).waitFor();
    await handler.selectOption('scored');
    await page.getByRole('table', { name: 'input of scored' }).waitFor();
    await page.getByRole('button', { name: 'Start', exact: true }).click();
    await waitUntil(() => /^\/runs\/[^/]+$/.test(new URL(page.url()).pathname), { what: 'the run page to open' });
    await page.getByRole('heading', { name: 'scored' }).waitFor();
    expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
    await page.close();
  });
});
