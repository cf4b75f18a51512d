"""runtrail's own lines on stderr: what it waits for, what it could not do.

Said, never raised: the stderr of a script whose terminal closed (SIGHUP, a
dropped ssh session) or whose reader went away raises OSError on every
write. A notice that raised replaced the exception ending the run, or
stopped the exit from ending it: the run stayed running until its lease
lapsed.
"""

from __future__ import annotations

import sys
import traceback


def say(text: str) -> None:
    """Print ``text`` on stderr, or nothing where nobody can read it."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr is gone (EIO, EPIPE) or closed by the script (ValueError): there is no one to tell


def say_exception(text: str) -> None:
    """``text``, then the traceback of the exception being handled, on stderr; or nothing where nobody can read it."""
    say(f"{text}\n{traceback.format_exc().rstrip()}")
