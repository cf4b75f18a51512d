import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderApiReference } from './api-reference.js';
import { openApiPath } from './openapi.js';
import { routes } from './routes.js';

describe('the API reference', () => {
  it('in docs/api.md is the one generated from the route table (run `npm run docs` after changing routes)', () => {
    const committed = readFileSync(new URL('../../../docs/api.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderApiReference());
  });

  it('lists every route and names the fields of request bodies', () => {
    const doc = renderApiReference();
    for (const route of Object.values(routes)) expect(doc).toContain(`\`${openApiPath(route.path)}\``);
    expect(doc).toMatch(/\| `events` \| object\[\] \| yes \|/);
  });
});
