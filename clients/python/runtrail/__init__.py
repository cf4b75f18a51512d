"""runtrail: live progress of long runs, from Python.

    import runtrail
    rt = runtrail.Client()          # RUNTRAIL_URL, else http://127.0.0.1:4310; RUNTRAIL_TOKEN if set
    with rt.run("eval-gpt4", input={"dataset": "docs-v2"}) as run:
        with run.phase("evaluate"):
            for i, doc in enumerate(runtrail.track(docs, run=run)):
                with run.call(f"Evaluating {doc} with gpt-4"):
                    score = judge(doc)
                run.metric("score", score, step=i)

Only the standard library is used. The README's "Python client" section
describes the whole API.
"""

from .client import Client, current_run
from .errors import Cancelled, RuntrailError, Terminated
from ._server_watch import ServerChange
from .run import Call, Phase, Run
from .track import track

__version__ = "0.1.0"

__all__ = ["Client", "Run", "Call", "Phase", "Cancelled", "RuntrailError", "Terminated", "ServerChange", "current_run", "track", "__version__"]
