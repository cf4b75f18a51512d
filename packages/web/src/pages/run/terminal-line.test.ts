import { describe, expect, it } from 'vitest';
import { terminalLine, terminalText } from './terminal-line.js';

describe('a line of output as a terminal shows it', () => {
  it('leaves plain text as it is', () => {
    expect(terminalLine('  File "train.py", line 9\tx')).toBe('  File "train.py", line 9\tx');
  });

  it('drops colour and other escape sequences instead of showing ESC as a box', () => {
    expect(terminalLine('\x1b[32mINFO\x1b[0m starting')).toBe('INFO starting');
    expect(terminalLine('\x1b[1;31mERROR\x1b[0m bad \x1b[38;5;208morange\x1b[39m')).toBe('ERROR bad orange');
    // An OSC 8 hyperlink keeps its text; a title sequence leaves nothing.
    expect(terminalLine('see \x1b]8;;https://example.com\x07docs\x1b]8;;\x07 here')).toBe('see docs here');
    expect(terminalLine('\x1b]0;my title\x1b\\done')).toBe('done');
    // Cursor moves and line clears of a progress bar.
    expect(terminalLine('\x1b[2K\x1b[1Gstep 3')).toBe('step 3');
  });

  it('shows a line rewritten with carriage returns in its last state, as a progress bar ends', () => {
    expect(terminalLine('progress 0%|    |\rprogress 25%|#   |\rprogress 100%|####|')).toBe('progress 100%|####|');
    // A shorter rewrite leaves the end of the longer one, as on a terminal.
    expect(terminalLine('downloading 100 files\rdone')).toBe('doneloading 100 files');
    // A Windows line ending is no rewrite.
    expect(terminalLine('line one\r')).toBe('line one');
  });
});

describe('several lines of output as a terminal shows them', () => {
  it('treats each line alone: an error with the last stderr lines of a command', () => {
    const message = 'train.py exited with code 1; last stderr lines:\n\x1b[31mTraceback\x1b[0m (most recent call last):\nepoch 1\repoch 2\n  ValueError: \x1b[1mbad\x1b[0m';
    expect(terminalText(message)).toBe('train.py exited with code 1; last stderr lines:\nTraceback (most recent call last):\nepoch 2\n  ValueError: bad');
    expect(terminalText('plain\ntext')).toBe('plain\ntext');
  });
});
