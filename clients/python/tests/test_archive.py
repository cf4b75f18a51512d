"""Export and import: a run (or a family) written as one tar archive by one server and loaded whole by another."""

from __future__ import annotations

import hashlib
import io
import errno
import os
import resource
import shutil
import stat
import sys
import tempfile
import threading
import unittest
import warnings

import runtrail
from tests.support import CuttingProxy, Server

source = Server()
target = Server()


def setUpModule() -> None:
    source.start()
    target.start()


def tearDownModule() -> None:
    source.close()
    target.close()


class ArchiveTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(source.url)
        self.there = runtrail.Client(target.url)
        self.folder = tempfile.mkdtemp(prefix="runtrail-py-archive-")
        self.addCleanup(shutil.rmtree, self.folder)
        self.big = os.urandom(3 * 1024 * 1024 + 5)
        with self.rt.run("archive-me", input={"dataset": "docs"}) as run:
            run.progress(1, 2)
            run.artifact("01_input.txt", b"What is runtrail?")
            run.artifact("02_weights.bin", self.big)
        self.run_id = run.id

    def assert_same_run_there(self, run_id: str) -> None:
        here, there = self.rt.get_run(run_id), self.there.get_run(run_id)
        for field in ("id", "name", "status", "seq", "input", "parentId", "snapshot"):
            self.assertEqual(there[field], here[field], field)
        self.assertEqual(self.there.events(run_id)["events"], self.rt.events(run_id)["events"])
        self.assertEqual([(a["name"], a["sha256"]) for a in self.there.artifacts(run_id)], [(a["name"], a["sha256"]) for a in self.rt.artifacts(run_id)])

    def test_a_run_exported_into_a_folder_imports_into_another_server_whole_and_a_second_import_returns_it(self) -> None:
        path = self.rt.export_run(self.run_id, self.folder)
        self.assertEqual(path, os.path.join(self.folder, f"runtrail-{self.run_id}.tar"))
        self.assertEqual(os.listdir(self.folder), [f"runtrail-{self.run_id}.tar"])
        imported = self.there.import_runs(path)
        self.assertEqual(imported["runs"], 1)
        self.assertEqual((imported["run"]["id"], imported["run"]["status"]), (self.run_id, "succeeded"))
        self.assert_same_run_there(self.run_id)
        self.assertEqual(self.there.download_artifact(self.run_id, "02_weights.bin"), self.big)
        # The same archive again (as a retry after a lost answer sends it): the run as it is there; before, run_already_exists.
        again = self.there.import_runs(path)
        self.assertEqual((again["run"]["id"], again["runs"]), (self.run_id, 1))
        self.assert_same_run_there(self.run_id)

    def test_a_family_exported_into_a_file_object_imports_from_one_all_its_runs(self) -> None:
        with self.rt.run("family-top") as parent:
            with parent.child("family-child") as child:
                child.artifact("child.txt", b"from the child")
        archive = io.BytesIO()
        self.assertIsNone(self.rt.export_run(parent.id, archive, family=True))
        archive.seek(0)
        imported = self.there.import_runs(archive)
        self.assertEqual(imported["runs"], 2)
        self.assertEqual(imported["run"]["id"], parent.id)
        self.assert_same_run_there(parent.id)
        self.assert_same_run_there(child.id)
        self.assertEqual(self.there.get_run(child.id)["parentId"], parent.id)

    def test_an_archive_from_a_pipe_is_sent_chunked_and_imported_whole(self) -> None:
        path = self.rt.export_run(self.run_id, os.path.join(self.folder, "run.tar"))
        assert path is not None
        read_end, write_end = os.pipe()

        def feed() -> None:
            with open(path, "rb") as archive, os.fdopen(write_end, "wb") as pipe:
                shutil.copyfileobj(archive, pipe)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        with os.fdopen(read_end, "rb") as pipe:
            imported = self.there.import_runs(pipe)
        feeder.join(30)
        self.assertEqual(imported["run"]["id"], self.run_id)
        self.assert_same_run_there(self.run_id)

    def test_an_exported_file_gets_the_modes_of_any_file_the_script_writes(self) -> None:
        old_umask = os.umask(0o022)
        self.addCleanup(os.umask, old_umask)
        path = self.rt.export_run(self.run_id, os.path.join(self.folder, "run.tar"))
        assert path is not None
        with open(os.path.join(self.folder, "written.txt"), "wb") as f:
            f.write(b"x")
        written = stat.S_IMODE(os.stat(os.path.join(self.folder, "written.txt")).st_mode)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), written)
        self.assertEqual(written, 0o644)

    def test_a_path_in_a_folder_that_does_not_exist_is_refused_before_exporting_naming_that_folder(self) -> None:
        missing = os.path.join(self.folder, "no-such-folder")
        for dest in (os.path.join(missing, "run.tar"), missing + os.sep):
            with self.assertRaises(FileNotFoundError) as caught:
                self.rt.export_run(self.run_id, dest)
            self.assertIn("does not exist", str(caught.exception))
            self.assertIn(missing, str(caught.exception))
            self.assertNotIn(".part", str(caught.exception))
        self.assertEqual(os.listdir(self.folder), [])

    def test_an_unknown_run_raises_its_code_and_leaves_no_file(self) -> None:
        unknown = "01890a5d-ac96-774b-bcce-b302099a8057"
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.rt.export_run(unknown, self.folder)
        self.assertEqual(caught.exception.code, "run_not_found")
        self.assertEqual(os.listdir(self.folder), [])

    def test_an_export_cut_midway_is_started_again_and_whole_or_with_no_time_left_raises_leaving_no_file(self) -> None:
        port = int(source.url.rsplit(":", 1)[1])
        proxy = CuttingProxy(port, after=1024 * 1024, cuts=1)
        self.addCleanup(proxy.close)
        path = runtrail.Client(f"http://127.0.0.1:{proxy.port}", retry_for=30).export_run(self.run_id, self.folder)
        assert path is not None
        self.assertEqual(len(proxy.requests), 2)
        self.assertEqual(self.there.import_runs(path)["run"]["id"], self.run_id)
        with open(path, "rb") as f:
            archived = f.read()
        self.assertIn(hashlib.sha256(self.big).hexdigest().encode(), archived)
        os.unlink(path)

        cutting = CuttingProxy(port, after=1024 * 1024, cuts=1)
        self.addCleanup(cutting.close)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            runtrail.Client(f"http://127.0.0.1:{cutting.port}", retry_for=0).export_run(self.run_id, self.folder)
        self.assertEqual(caught.exception.code, "unavailable")
        self.assertEqual(os.listdir(self.folder), [])

    def test_a_local_write_error_while_exporting_raises_at_once_without_asking_again(self) -> None:
        # A file size limit makes the partial file's write fail as a full disk would (EFBIG; Python ignores SIGXFSZ).
        port = int(source.url.rsplit(":", 1)[1])
        proxy = CuttingProxy(port, after=0, cuts=0)
        self.addCleanup(proxy.close)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
        try:
            with self.assertRaises(OSError) as caught:
                runtrail.Client(f"http://127.0.0.1:{proxy.port}", retry_for=20).export_run(self.run_id, self.folder)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        self.assertEqual(caught.exception.errno, errno.EFBIG)
        self.assertEqual(len(proxy.requests), 1)
        self.assertEqual(os.listdir(self.folder), [])

    def test_a_run_still_going_exports_with_a_warning_and_its_import_is_refused_importing_nothing(self) -> None:
        run = self.rt.run("still-going")
        self.addCleanup(run.__exit__, None, None, None)
        run.progress(1, 10)
        run.flush()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = self.rt.export_run(run.id, self.folder)
        said = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        self.assertEqual(len(said), 1, said)
        self.assertIn(f"run {run.id} is running", said[0])
        assert path is not None
        with self.assertRaises(runtrail.RuntrailError) as refused:
            self.there.import_runs(path)
        self.assertEqual(refused.exception.code, "invalid_request")
        self.assertIn("running", refused.exception.message)
        with self.assertRaises(runtrail.RuntrailError) as missing:
            self.there.get_run(run.id)
        self.assertEqual(missing.exception.code, "run_not_found")

    def test_a_text_file_is_refused_before_any_request_saying_to_open_it_binary(self) -> None:
        # It failed at the first write or read with "write() argument must be str, not bytes", naming neither call nor fix.
        path = os.path.join(self.folder, "run.tar")
        with open(path, "w") as text:
            with self.assertRaisesRegex(TypeError, r"export_run\('[^']+'\): .* is a text file and an archive is bytes: open it with mode 'wb', or give a path"):
                self.rt.export_run(self.run_id, text)
            self.assertEqual(text.tell(), 0)
        with self.assertRaisesRegex(TypeError, r"pass sys\.stdout\.buffer"):
            self.rt.export_run(self.run_id, sys.__stdout__)  # sys.stdout may be unittest -b's StringIO
        self.rt.export_run(self.run_id, path)
        with open(path) as text:
            with self.assertRaisesRegex(TypeError, r"import_runs\(\): .* is a text file and an archive is bytes: open it with mode 'rb'"):
                self.there.import_runs(text)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.there.get_run(self.run_id)
        self.assertEqual(caught.exception.code, "run_not_found", "nothing was imported")

    def test_a_path_to_import_that_does_not_exist_is_file_not_found_before_any_request(self) -> None:
        with self.assertRaises(FileNotFoundError):
            self.there.import_runs(os.path.join(self.folder, "no-such.tar"))


if __name__ == "__main__":
    unittest.main()
