"""Runs looked after from Python: retry a handler run, delete runs, count them, and read a run's output log."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid
from typing import Tuple

import runtrail
from tests.support import CLI, ROOT, CuttingProxy, Server

# A handler whose subprocess prints: its output log is a file in the server's log folder.
HANDLERS = """
export default {
  'py-printer': async (ctx) => {
    await ctx.exec(ctx.input.python, ['-c', ctx.input.script]);
  },
};
"""
folder = tempfile.mkdtemp(prefix="runtrail-py-handlers-")
with open(os.path.join(folder, "handlers.mjs"), "w") as f:
    f.write(HANDLERS)
server = Server(args=["--handlers", os.path.join(folder, "handlers.mjs")])


def setUpModule() -> None:
    server.start()


def tearDownModule() -> None:
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def printed(lines: int) -> bytes:
    return b"".join(b"line %d of the output\n" % i for i in range(lines))


def printer(rt: runtrail.Client, lines: int) -> str:
    """A handler run that printed ``lines`` lines, ended."""
    script = f"for i in range({lines}): print(f'line {{i}} of the output')"
    run = rt.start("py-printer", {"python": sys.executable, "script": script})
    ended = rt.wait(run["id"], timeout=60)
    assert ended["status"] == "succeeded", ended
    return str(run["id"])


def through_proxy(test: unittest.TestCase, after: int, cuts: int = 1) -> Tuple[runtrail.Client, CuttingProxy]:
    proxy = CuttingProxy(int(server.url.rsplit(":", 1)[1]), after=after, cuts=cuts)
    test.addCleanup(proxy.close)
    return runtrail.Client(f"http://127.0.0.1:{proxy.port}", start_timeout=30, retry_for=30), proxy


class RetryTest(unittest.TestCase):
    def test_a_retry_starts_the_next_attempt_of_a_handler_run_and_the_same_key_answers_that_attempt(self) -> None:
        rt = runtrail.Client(server.url)
        first = printer(rt, 1)
        again = rt.retry(first, idempotency_key=f"retry-{first}")
        self.assertEqual((again["name"], again["retryOf"], again["attempt"]), ("py-printer", first, 2))
        self.assertEqual(rt.retry(first, idempotency_key=f"retry-{first}")["id"], again["id"])
        self.assertEqual(rt.wait(again["id"], timeout=60)["status"], "succeeded")

    def test_a_retry_whose_answer_is_lost_is_sent_again_and_starts_one_attempt(self) -> None:
        rt = runtrail.Client(server.url)
        first = printer(rt, 1)
        cut, proxy = through_proxy(self, after=0)
        again = cut.retry(first)
        self.assertEqual(len(proxy.requests), 2)
        attempts = [r for r in rt.list_runs(name="py-printer", limit=100)["runs"] if r.get("retryOf") == first]
        self.assertEqual([r["id"] for r in attempts], [again["id"]])
        rt.wait(again["id"], timeout=60)

    def test_a_run_no_handler_executes_is_not_retryable(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("produced here") as run:
            pass
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.retry(run.id)
        self.assertEqual(refused.exception.code, "run_not_retryable")


class DeleteTest(unittest.TestCase):
    def test_deletes_an_ended_run_with_the_runs_under_it_and_refuses_one_still_going(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("parent") as parent:
            with parent.child("child") as child:
                pass
        going = rt.run("still going")
        self.addCleanup(going.succeed)
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.delete_run(going.id)
        self.assertEqual(refused.exception.code, "run_not_terminal")
        self.assertIsNone(rt.delete_run(parent.id))
        for run_id in (parent.id, child.id):
            with self.assertRaises(runtrail.RuntrailError) as gone:
                rt.get_run(run_id)
            self.assertEqual(gone.exception.code, "run_not_found")
        with self.assertRaises(runtrail.RuntrailError) as again:
            rt.delete_run(parent.id)
        self.assertEqual(again.exception.code, "run_not_found")

    def test_a_delete_whose_answer_is_lost_is_sent_again_and_counts_the_run_gone(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("deleted through a cut") as run:
            pass
        cut, proxy = through_proxy(self, after=0)
        self.assertIsNone(cut.delete_run(run.id))
        self.assertEqual(len(proxy.requests), 2)
        with self.assertRaises(runtrail.RuntrailError) as gone:
            rt.get_run(run.id)
        self.assertEqual(gone.exception.code, "run_not_found")


class CountTest(unittest.TestCase):
    def test_counts_the_runs_list_runs_filters_match_by_status_over_every_page(self) -> None:
        rt = runtrail.Client(server.url)
        tag = uuid.uuid4().hex[:8]
        for _ in range(3):
            with rt.run(f"counted-{tag}"):
                pass
        failed = rt.run(f"counted-{tag}")
        failed.fail("no answer")
        counts = rt.count_runs(nameContains=tag)
        self.assertEqual(counts["total"], 4)
        self.assertEqual((counts["byStatus"]["succeeded"], counts["byStatus"]["failed"]), (3, 1))
        self.assertEqual(rt.count_runs(nameContains=tag, status="failed")["total"], 1)
        self.assertEqual(len(rt.list_runs(nameContains=tag, limit=2)["runs"]), 2)

    def test_a_filter_it_does_not_take_is_refused_by_name(self) -> None:
        rt = runtrail.Client(server.url)
        with self.assertRaisesRegex(TypeError, r"count_runs\(parentIds=\.\.\.\): a filter is one str or number, got list"):
            rt.count_runs(parentIds=["a", "b"])
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.count_runs(limit=5)
        self.assertEqual(refused.exception.code, "invalid_request")
        self.assertIn("limit", refused.exception.message)


class LogTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)
        self.folder = tempfile.mkdtemp(prefix="runtrail-py-log-")
        self.addCleanup(shutil.rmtree, self.folder)

    def test_reads_the_whole_log_or_its_end_as_bytes(self) -> None:
        run_id = printer(self.rt, 50)
        self.assertEqual(self.rt.log(run_id), printed(50))
        self.assertEqual(self.rt.log(run_id, tail_bytes=22), b"line 49 of the output\n")
        self.assertEqual(self.rt.log(run_id, tail_bytes=10**6), printed(50))

    def test_streams_it_to_a_path_a_folder_or_a_binary_file(self) -> None:
        run_id = printer(self.rt, 20)
        path = self.rt.log(run_id, os.path.join(self.folder, "out.txt"))
        into = self.rt.log(run_id, self.folder, tail_bytes=22)
        self.assertEqual((path, into), (os.path.join(self.folder, "out.txt"), os.path.join(self.folder, f"runtrail-{run_id}.log")))
        with open(os.path.join(self.folder, "out.txt"), "rb") as f:
            self.assertEqual(f.read(), printed(20))
        with open(os.path.join(self.folder, f"runtrail-{run_id}.log"), "rb") as f:
            self.assertEqual(f.read(), b"line 19 of the output\n")
        sink = io.BytesIO(b"before:")
        sink.seek(0, io.SEEK_END)
        self.assertIsNone(self.rt.log(run_id, sink))
        self.assertEqual(sink.getvalue(), b"before:" + printed(20))
        self.assertEqual(sorted(os.listdir(self.folder)), ["out.txt", f"runtrail-{run_id}.log"])

    def test_a_log_cut_midway_resumes_where_it_stopped_whole_or_its_end(self) -> None:
        run_id = printer(self.rt, 2000)
        whole = printed(2000)
        for tail, expected in ((None, whole), (30_000, whole[-30_000:])):
            cut, proxy = through_proxy(self, after=20_000)
            self.assertEqual(cut.log(run_id, tail_bytes=tail), expected)
            # Two requests: the log (or its end), then the rest from where the cut left it.
            self.assertEqual(len(proxy.requests), 2)
            ranges = [line.split(":", 1)[1].strip().lower() for line in proxy.requests[1].split("\r\n") if line.lower().startswith("range:")]
            self.assertEqual(len(ranges), 1)
            resumed_at = int(ranges[0].removeprefix("bytes=").rstrip("-"))
            self.assertGreater(resumed_at, len(whole) - len(expected))
            self.assertLess(resumed_at, len(whole))

    def test_the_log_runtrail_exec_stored_on_a_server_elsewhere_is_read_through_its_redirect(self) -> None:
        script = "for i in range(5): print(f'line {i} of the output')"
        done = subprocess.run(
            ["node", str(CLI), "exec", "--server", server.url, "--quiet", "--name", "py-exec-log", "--", sys.executable, "-c", script],
            cwd=str(ROOT), capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        (run,) = self.rt.list_runs(name="py-exec-log")["runs"]
        self.assertEqual(self.rt.log(run["id"]), printed(5))
        self.assertEqual(self.rt.log(run["id"], tail_bytes=21), b"line 4 of the output\n")

    def test_a_run_without_a_log_and_wrong_arguments_say_what_is_wrong(self) -> None:
        with self.rt.run("no log") as run:
            pass
        with self.assertRaises(runtrail.RuntrailError) as missing:
            self.rt.log(run.id, self.folder)
        self.assertEqual(missing.exception.code, "log_not_found")
        self.assertEqual(os.listdir(self.folder), [])
        with self.assertRaisesRegex(ValueError, r"log\(tail_bytes=0\): .* 1 or more"):
            self.rt.log(run.id, tail_bytes=0)
        with self.assertRaisesRegex(TypeError, r"log\(tail_bytes=\.\.\.\) is an int, got str"):
            self.rt.log(run.id, tail_bytes="100")  # type: ignore[arg-type]
        with self.assertRaisesRegex(TypeError, r"is a text file and a log is bytes: pass sys.stdout.buffer"):
            self.rt.log(run.id, sys.stdout)  # type: ignore[arg-type]
        with self.assertRaisesRegex(TypeError, r"a run id is a str, got dict .*: pass run\[\"id\"\]"):
            self.rt.log({"id": run.id})  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
