"""Installing the package as the README says, on a machine with no package index (the build must fetch nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest

from tests.support import PYTHON_DIR

sys.path.insert(0, str(PYTHON_DIR))
import _runtrail_build  # noqa: E402 - the backend beside pyproject.toml


def pip_available() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


class OfflineInstall(unittest.TestCase):
    @unittest.skipUnless(pip_available(), "no pip in this Python")
    def test_pip_install_needs_no_index(self) -> None:
        # --isolated and an empty config: no index, mirror or find-links this machine's pip may be set up with.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        with tempfile.TemporaryDirectory() as target:
            installed = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--no-cache-dir", "--target", target, str(PYTHON_DIR)],
                env=env, capture_output=True, text=True, timeout=120,
            )
            self.assertEqual(installed.returncode, 0, installed.stdout + installed.stderr)
            self.assertTrue(os.path.exists(os.path.join(target, "runtrail", "py.typed")), "the wheel ships py.typed (typed package)")
            check = subprocess.run(
                [sys.executable, "-c", "import runtrail, sys; print(runtrail.__version__, runtrail.__file__)"],
                env={**env, "PYTHONPATH": target}, cwd=target, capture_output=True, text=True, timeout=60,
            )
            self.assertEqual(check.returncode, 0, check.stderr)
            version, where = check.stdout.split()
            self.assertEqual(version, _runtrail_build.read_project()["version"])
            self.assertTrue(where.startswith(target), where)

    def test_backend_reads_pyproject_as_toml_does(self) -> None:
        try:
            import tomllib
        except ImportError:
            self.skipTest("tomllib is Python 3.11+")
        with open(PYTHON_DIR / "pyproject.toml", "rb") as file:
            self.assertEqual(_runtrail_build.read_project(), tomllib.load(file)["project"])

    def test_version_is_the_packages(self) -> None:
        import runtrail

        self.assertEqual(runtrail.__version__, _runtrail_build.read_project()["version"])


if __name__ == "__main__":
    unittest.main()
