import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ProcessStartError } from './run-process.js';

/**
 * A clearer error for a command that could not be started because
 * something was not found (ENOENT, which names neither the folder looked
 * in nor which thing was missing) or may not be run (EACCES: a script
 * without its execute bit, a folder); any other error as it was.
 * `dir` is the command's working directory: a relative program is looked
 * up there, a bare name (`python3`) on PATH. `dirIs` says where that
 * folder came from, in the words of the caller (`runtrail exec` has no
 * cwd option: it is the folder exec was run in).
 */
export function startError(err: unknown, command: string, dir: string, dirIs = "its cwd option, else the server's own working directory"): unknown {
  if (!(err instanceof ProcessStartError) || (err.code !== 'ENOENT' && err.code !== 'EACCES')) return err;
  // The working directory itself missing: runProcess already says so, naming it.
  if (!existsSync(dir)) return err;
  const why = (text: string) => new ProcessStartError(command, Object.assign(new Error(text), { code: err.code }));
  if (err.code === 'EACCES') {
    const path = command.includes('/') ? resolve(dir, command) : command;
    if (command.includes('/') && statSync(path, { throwIfNoEntry: false })?.isDirectory()) return why(`${path} is a folder, not a program`);
    return why(`${path} may not be run: it is not executable (chmod +x it, or name its interpreter first: sh ${command}, python3 ${command})`);
  }
  if (!command.includes('/')) return why(`no program named ${command} in any folder of its PATH (give a path to run one that is not on it: ./${command})`);
  const path = resolve(dir, command);
  if (existsSync(path)) return why(`${path} exists, but the interpreter its first line (#!) names does not`);
  if (isAbsolute(command)) return why(`there is no ${path}`);
  return why(`there is no ${path}: a relative program is looked up in the command's working directory, ${dir} (${dirIs})`);
}
