"""Reading artifacts back: listing a run's records, downloading to bytes, a path or a folder, and resuming a cut download."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import unittest

import runtrail
from tests.support import CuttingProxy, Server

server = Server()
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


class ArtifactsReadTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)
        self.folder = tempfile.mkdtemp(prefix="runtrail-py-dl-")
        self.addCleanup(shutil.rmtree, self.folder)
        self.big = os.urandom(3 * 1024 * 1024 + 17)
        with self.rt.run("artifacts-read") as run:
            run.artifact("01_input.txt", b"What is runtrail?", metadata={"stage": 1})
            run.artifact("02_empty.bin", b"")
            run.artifact("03_weights.bin", self.big)
        self.run_id = run.id

    def test_lists_the_records_in_order_and_downloads_each_to_bytes(self) -> None:
        records = self.rt.artifacts(self.run_id)
        self.assertEqual([(r["ordinal"], r["name"], r["size"]) for r in records], [(1, "01_input.txt", 17), (2, "02_empty.bin", 0), (3, "03_weights.bin", len(self.big))])
        self.assertEqual(records[0]["metadata"], {"stage": 1})
        self.assertEqual(records[2]["sha256"], hashlib.sha256(self.big).hexdigest())
        self.assertEqual(self.rt.download_artifact(self.run_id, "01_input.txt"), b"What is runtrail?")
        self.assertEqual(self.rt.download_artifact(self.run_id, "02_empty.bin"), b"")
        self.assertEqual(self.rt.download_artifact(self.run_id, "03_weights.bin"), self.big)

    def test_downloads_to_a_path_or_into_a_folder_under_its_name_leaving_nothing_else(self) -> None:
        path = self.rt.download_artifact(self.run_id, "03_weights.bin", os.path.join(self.folder, "model.bin"))
        self.assertEqual(path, os.path.join(self.folder, "model.bin"))
        into = self.rt.download_artifact(self.run_id, "01_input.txt", self.folder)
        self.assertEqual(into, os.path.join(self.folder, "01_input.txt"))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), self.big)
        with open(into, "rb") as f:
            self.assertEqual(f.read(), b"What is runtrail?")
        self.assertEqual(sorted(os.listdir(self.folder)), ["01_input.txt", "model.bin"])

    def test_a_downloaded_file_gets_the_modes_of_any_file_the_script_writes_not_a_private_temp_files_0600(self) -> None:
        old_umask = os.umask(0o022)
        self.addCleanup(os.umask, old_umask)
        path = self.rt.download_artifact(self.run_id, "01_input.txt", self.folder)
        with open(os.path.join(self.folder, "written.txt"), "wb") as f:
            f.write(b"x")
        written = stat.S_IMODE(os.stat(os.path.join(self.folder, "written.txt")).st_mode)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), written)
        self.assertEqual(written, 0o644)

    def test_a_dest_in_a_folder_that_does_not_exist_is_refused_before_downloading_naming_that_folder(self) -> None:
        missing = os.path.join(self.folder, "no-such-folder")
        for dest in (os.path.join(missing, "model.bin"), missing + os.sep):
            with self.assertRaises(FileNotFoundError) as caught:
                self.rt.download_artifact(self.run_id, "03_weights.bin", dest)
            self.assertIn("does not exist", str(caught.exception))
            self.assertIn(missing, str(caught.exception))
            self.assertNotIn(".part", str(caught.exception))
        self.assertEqual(os.listdir(self.folder), [])

    def test_a_missing_artifact_raises_its_code_and_leaves_no_file(self) -> None:
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.rt.download_artifact(self.run_id, "04_missing.txt", self.folder)
        self.assertEqual(caught.exception.code, "artifact_not_found")
        self.assertIn("04_missing.txt", caught.exception.message)
        self.assertEqual(os.listdir(self.folder), [])

    def test_a_download_cut_midway_resumes_where_it_stopped_and_is_whole(self) -> None:
        proxy = CuttingProxy(int(server.url.rsplit(":", 1)[1]), after=1024 * 1024, cuts=2)
        try:
            through = runtrail.Client(f"http://127.0.0.1:{proxy.port}", retry_for=30)
            path = through.download_artifact(self.run_id, "03_weights.bin", self.folder)
            with open(path, "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(self.big).hexdigest())
            # Three requests: the whole file, then twice the rest from where each cut left it.
            self.assertEqual(len(proxy.requests), 3)
            self.assertNotIn("range:", proxy.requests[0].lower())
            ranges = [line.split(":", 1)[1].strip() for request in proxy.requests[1:] for line in request.split("\r\n") if line.lower().startswith("range:")]
            self.assertEqual(len(ranges), 2)
            starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges]
            self.assertGreater(starts[0], 0)
            self.assertGreater(starts[1], starts[0])
            self.assertEqual(os.listdir(self.folder), ["03_weights.bin"])
        finally:
            proxy.close()


if __name__ == "__main__":
    unittest.main()
