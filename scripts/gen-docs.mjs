// Writes docs/api.md from the protocol package (build first: npm run build).
import { writeFileSync } from 'node:fs';
import { renderApiReference } from '../packages/protocol/dist/index.js';

const target = new URL('../docs/api.md', import.meta.url);
writeFileSync(target, renderApiReference());
process.stdout.write(`wrote ${target.pathname}\n`);
