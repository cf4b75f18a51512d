"""CI entry point: every Python client test, then one "N passed, N failed, N skipped" line.

Run from anywhere: ``python3 clients/python/tests/ci.py [results.json]``. The
counts are also written as JSON (for .ci/run's closing line); the exit code
is 1 if any test failed or errored, or left a file or socket open.
"""

from __future__ import annotations

import json
import signal
import sys
import unittest
import warnings
from pathlib import Path
from typing import Any, List, Type

HERE = Path(__file__).resolve().parent


def main() -> int:
    sys.path.insert(0, str(HERE.parent))
    # .ci/run starts the suites side by side, as background jobs of a script, which begin with
    # SIGINT ignored; the Ctrl-C tests need it as a terminal gives it, to this process and to the
    # scripts it starts (a handled signal is default again after exec, an ignored one stays ignored).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    leaks = count_resource_warnings()
    suite = unittest.defaultTestLoader.discover(str(HERE), top_level_dir=str(HERE.parent))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    if leaks:
        # An unclosed file or socket is reported by the garbage collector, outside any test,
        # so no test fails for it: the run does (the warnings above say where each was opened).
        print(f"python: {len(leaks)} ResourceWarning(s), each a file or socket left open: {'; '.join(sorted(set(leaks)))}")
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    print(f"python: {passed} passed, {failed} failed, {skipped} skipped")
    if len(sys.argv) > 1:
        Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
        # The failed tests by name, with the last line of each traceback: .ci/run prints them at
        # its very end, where a log cut to its tail still shows what failed.
        failures = [
            {"name": test.id(), "message": last_line(trace)}
            for test, trace in result.failures + result.errors
        ] + [{"name": test.id(), "message": "passed, but was expected to fail"} for test in result.unexpectedSuccesses]
        Path(sys.argv[1]).write_text(
            json.dumps({"passed": passed, "failed": failed, "skipped": skipped, "failures": failures})
        )
    return 0 if failed == 0 and not leaks and result.testsRun > 0 else 1


def last_line(trace: str) -> str:
    lines = [line for line in trace.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def count_resource_warnings() -> List[str]:
    """Shows every ResourceWarning (hidden by default), and returns the list their messages are added to."""
    leaks: List[str] = []
    warnings.simplefilter("always", ResourceWarning)
    show = warnings.showwarning

    def showwarning(message: Any, category: Type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, ResourceWarning):
            leaks.append(str(message))
        show(message, category, *args, **kwargs)

    warnings.showwarning = showwarning
    return leaks


if __name__ == "__main__":
    sys.exit(main())
