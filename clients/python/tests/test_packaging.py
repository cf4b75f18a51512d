"""Installing the package as the README says, on a machine with no package index (the build must fetch nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Dict, Set

from tests.support import PYTHON_DIR

sys.path.insert(0, str(PYTHON_DIR))
import _runtrail_build  # noqa: E402 - the backend beside pyproject.toml


# What a script in the environment can import: runtrail (from where), and whether `tests` and the build backend are.
PROBE = """
import importlib.util, runtrail
print(runtrail.__file__, *("found" if importlib.util.find_spec(name) else "absent" for name in ("tests", "_runtrail_build")))
"""


def top_level_names(python: str, cwd: str) -> Set[str]:
    """The top-level modules and packages ``python`` finds on its sys.path, run in ``cwd`` (an empty folder)."""
    listed = subprocess.run(
        [python, "-c", "import pkgutil; print(*sorted(m.name for m in pkgutil.iter_modules()))"],
        cwd=cwd, env=pip_env(), capture_output=True, text=True, check=True, timeout=60,
    )
    return set(listed.stdout.split())


def pip_env() -> Dict[str, str]:
    """This environment without PIP_* settings or PYTHONPATH: pip and the venv see only what the test gives them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def pip_available() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


class OfflineInstall(unittest.TestCase):
    @unittest.skipUnless(pip_available(), "no pip in this Python")
    def test_pip_install_needs_no_index(self) -> None:
        # --isolated and an empty config: no index, mirror or find-links this machine's pip may be set up with.
        env = pip_env()
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

    @unittest.skipUnless(pip_available(), "no pip in this Python")
    def test_an_install_adds_only_the_runtrail_package(self) -> None:
        # An editable install once put this whole folder on sys.path, so `import tests` and
        # `import _runtrail_build` worked in every script of that environment (and a project's own
        # `tests` package could be shadowed by ours). Either install must add `runtrail` and nothing else.
        for editable in (False, True):
            with self.subTest(editable=editable), tempfile.TemporaryDirectory() as root:
                venv, elsewhere = os.path.join(root, "venv"), os.path.join(root, "elsewhere")
                os.mkdir(elsewhere)
                subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
                python = os.path.join(venv, "bin", "python")
                before = top_level_names(python, elsewhere)
                installed = subprocess.run(
                    [sys.executable, "-m", "pip", "--python", python, "install", "--isolated", "--no-index", "--no-cache-dir"]
                    + (["-e"] if editable else []) + [str(PYTHON_DIR)],
                    env=pip_env(), capture_output=True, text=True, timeout=120,
                )
                self.assertEqual(installed.returncode, 0, installed.stdout + installed.stderr)
                self.assertEqual(top_level_names(python, elsewhere) - before, set() if editable else {"runtrail"})
                probe = subprocess.run(
                    [python, "-c", PROBE], cwd=elsewhere, env=pip_env(), capture_output=True, text=True, timeout=60,
                )
                self.assertEqual(probe.returncode, 0, probe.stderr)
                where, tests, backend = probe.stdout.split()
                package = PYTHON_DIR / "runtrail" if editable else Path(venv)
                self.assertTrue(where.startswith(str(package)), f"runtrail imported from {where}, not under {package}")
                self.assertEqual((tests, backend), ("absent", "absent"))

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
