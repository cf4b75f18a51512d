// The package in Node: everything of the main entry, and the exit guard
// (node/exit-guard.ts), so a producer's runs end with its process.
import './node/exit-guard.js';

// eslint-disable-next-line no-restricted-syntax -- every name of the main entry, by definition: a list here could miss a new one.
export * from './index.js';
