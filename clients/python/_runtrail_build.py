"""The build backend of the runtrail package (PEP 517 and PEP 660): standard library only.

``pip install ./clients/python`` builds the wheel in an isolated environment
that gets only what ``[build-system] requires`` lists. With setuptools
there, an offline machine could not install the package at all (pip
fetches setuptools first; the setuptools a venv may ship cannot build a
wheel without ``wheel`` either), though the package itself needs nothing
but Python. This backend needs nothing either: it zips ``runtrail/`` with
the metadata of ``pyproject.toml``'s ``[project]`` table.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import os
import tarfile
import time
import zipfile
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "runtrail"
TAG = "py3-none-any"


def read_project(path: str = os.path.join(HERE, "pyproject.toml")) -> Dict[str, Any]:
    """The ``[project]`` table: each ``key = value`` line, its value a Python literal (a str, a list of str).

    Not a TOML parser (``tomllib`` is Python 3.11+, the package supports
    3.9): the table is kept to one-line strings and lists, which TOML and
    Python write alike. tests/test_packaging.py checks the two agree.
    """
    project: Dict[str, Any] = {}
    section = None
    with open(path, encoding="utf-8") as file:
        for line in file:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]").strip()
                continue
            if section == "project":
                key, _, value = line.partition("=")
                project[key.strip()] = ast.literal_eval(value.strip())
    return project


def _metadata() -> str:
    project = read_project()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
        f"Summary: {project['description']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    readme = project.get("readme")
    body = ""
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        with open(os.path.join(HERE, readme), encoding="utf-8") as file:
            body = file.read()
    return "\n".join(lines) + "\n\n" + body


def _dist_info() -> str:
    project = read_project()
    return f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"


def _package_files() -> List[Tuple[str, str]]:
    """(path in the archive, path on disk) of each file of the package: its modules and py.typed."""
    folder = os.path.join(HERE, PACKAGE)
    return [
        (f"{PACKAGE}/{name}", os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if name.endswith(".py") or name == "py.typed"
    ]


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def _write_wheel(wheel_directory: str, files: List[Tuple[str, bytes]]) -> str:
    project = read_project()
    dist_info = _dist_info()
    name = f"{project['name'].replace('-', '_')}-{project['version']}-{TAG}.whl"
    files = files + [
        (f"{dist_info}/METADATA", _metadata().encode("utf-8")),
        (f"{dist_info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: runtrail-build\nRoot-Is-Purelib: true\nTag: {TAG}\n".encode("utf-8")),
        (f"{dist_info}/top_level.txt", f"{PACKAGE}\n".encode("utf-8")),
    ]
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files) + f"{dist_info}/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files + [(f"{dist_info}/RECORD", record.encode("utf-8"))]:
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
    return name


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


# PEP 517 hooks.


def get_requires_for_build_wheel(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[Dict[str, Any]] = None) -> List[str]:
    return []


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    dist_info = _dist_info()
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w", encoding="utf-8") as file:
        file.write(_metadata())
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None) -> str:
    return _write_wheel(wheel_directory, [(path, _read(source)) for path, source in _package_files()])


def build_editable(wheel_directory: str, config_settings: Optional[Dict[str, Any]] = None, metadata_directory: Optional[str] = None) -> str:
    """``pip install -e``: a wheel holding a .pth file that finds ``runtrail`` in this folder, so edits take effect at once."""
    return _write_wheel(wheel_directory, [(f"__editable__.{PACKAGE}.pth", _editable_pth().encode("utf-8"))])


def _editable_pth() -> str:
    """The one line of the editable install's .pth: an import finder that answers ``runtrail`` alone, from this folder.

    A .pth holding this folder's path would put all of it on sys.path: ``tests``
    and this backend too, importable by every script of the environment (and
    shadowing a project's own ``tests``). A .pth line that starts with
    ``import`` is run by ``site`` at start-up; a finder appended to
    ``sys.meta_path`` is asked only after sys.path had no ``runtrail``, as a
    path in the .pth would be. It stays one line so that the install adds no
    module of its own either.
    """
    finder = (
        "type('RuntrailEditableFinder', (), {'find_spec': staticmethod("
        f"lambda name, path=None, target=None, find=importlib.machinery.PathFinder.find_spec: find(name, [{HERE!r}]) if name == {PACKAGE!r} else None"
        ")})()"
    )
    # `find` is bound as a default: site runs the line with exec in a function, whose names the lambda cannot see later.
    return f"import sys, importlib.machinery; sys.meta_path.append({finder})\n"


def build_sdist(sdist_directory: str, config_settings: Optional[Dict[str, Any]] = None) -> str:
    project = read_project()
    base = f"{project['name'].replace('-', '_')}-{project['version']}"
    members = [("pyproject.toml", os.path.join(HERE, "pyproject.toml")), ("_runtrail_build.py", os.path.join(HERE, "_runtrail_build.py"))]
    if project.get("readme"):
        members.append((project["readme"], os.path.join(HERE, project["readme"])))
    members += _package_files()
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as sdist:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"{base}/{path}")
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            sdist.addfile(info, io.BytesIO(data))

        for path, source in members:
            add(path, _read(source))
        add("PKG-INFO", _metadata().encode("utf-8"))
    return name
