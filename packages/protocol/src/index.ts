export * from './events.js';
export * from './errors.js';
export * from './snapshot.js';
export * from './reducer.js';
export * from './run.js';
export * from './routes.js';
export * from './stream.js';
export * from './validate.js';
export { renderApiReference } from './api-reference.js';
