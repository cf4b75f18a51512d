import { expect, test } from 'vitest';
import { oneLine } from './failure-line.js';

const TRACEBACK = ['Traceback (most recent call last):', '  File "train.py", line 9, in <module>', '    fit(lr=3.0)', 'ValueError: lr too high'];

test("a failed script's row says its exception, not how the command ended nor a traceback's first line", () => {
  // How `runtrail exec` words it: the exception on the first line, then stderr's tail.
  expect(oneLine(['python3 train.py exited with code 1: ValueError: lr too high', '', 'last 4 lines of stderr:', ...TRACEBACK].join('\n'))).toBe('ValueError: lr too high');
  // The stderr tail cut before the traceback's end: the first line still has it.
  expect(oneLine('python3 train.py exited with code 1: KeyError: \'label\'\n\nlast line of stderr:\n  File "x.py"')).toBe("KeyError: 'label'");
  // A traceback reported by the producer itself; a chained one ends with the exception that ended the run.
  expect(oneLine(['scoring failed', ...TRACEBACK].join('\n'))).toBe('ValueError: lr too high');
  expect(oneLine([...TRACEBACK, '', 'During handling of the above exception, another exception occurred:', '', ...TRACEBACK.slice(0, 3), 'RuntimeError: gave up'].join('\n'))).toBe(
    'RuntimeError: gave up',
  );
});

test('any other failure says its first line', () => {
  expect(oneLine('sh exited with code 2\n\nlast line of stderr:\nfoo: not found')).toBe('sh exited with code 2');
  expect(oneLine('ran longer than its timeout of 600000 ms')).toBe('ran longer than its timeout of 600000 ms');
  expect(oneLine('\n\n  diverged at step 40  \n')).toBe('  diverged at step 40');
  expect(oneLine('')).toBe('');
});
