import { runAction } from './run-action.js';

/** `runtrail retry ID`. */
export const retryRun = runAction(
  (client, id) => client.retryRun(id),
  (run, id) => {
    process.stdout.write(`${run.id}\n`);
    process.stderr.write(`run ${run.id} is attempt ${run.attempt} of ${run.name} (retry of ${id}), ${run.status}\n`);
  },
);
