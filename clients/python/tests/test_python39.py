"""The package says Python 3.9+ (pyproject's requires-python) and CI runs a newer one: the source is checked against 3.9.

Three ways code written on 3.11 breaks on 3.9 without any test on 3.11 noticing:
syntax (``match``, ``except*``), type expressions that run (``X | None``:
evaluated in a module without ``from __future__ import annotations``, by
``typing.get_type_hints`` on any annotation, or in an ``isinstance``), and
standard-library names and arguments added after 3.9. The third is a table
of what was added in 3.10 to 3.13, from the "New in version" notes of the
library reference: what the package might plausibly reach for, not every
addition.
"""

from __future__ import annotations

import ast
import builtins
import unittest
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from tests.support import PYTHON_DIR

OLDEST = (3, 9)

# Dotted name -> the version that added it. A module, or a name in one (`typing.Self`), or a builtin (`aiter`).
NEWER_NAMES: Dict[str, str] = {
    **dict.fromkeys(["aiter", "anext", "EncodingWarning"], "3.10"),
    **dict.fromkeys(["ExceptionGroup", "BaseExceptionGroup"], "3.11"),
    "PythonFinalizationError": "3.13",
    **dict.fromkeys(["tomllib", "wsgiref.types"], "3.11"),
    **dict.fromkeys(
        ["typing.ParamSpec", "typing.ParamSpecArgs", "typing.ParamSpecKwargs", "typing.Concatenate", "typing.TypeAlias",
         "typing.TypeGuard", "typing.is_typeddict"],
        "3.10",
    ),
    **dict.fromkeys(
        ["typing.Self", "typing.LiteralString", "typing.Never", "typing.assert_never", "typing.assert_type", "typing.reveal_type",
         "typing.TypeVarTuple", "typing.Unpack", "typing.Required", "typing.NotRequired", "typing.dataclass_transform",
         "typing.get_overloads", "typing.clear_overloads"],
        "3.11",
    ),
    **dict.fromkeys(["typing.override", "typing.TypeAliasType", "collections.abc.Buffer"], "3.12"),
    **dict.fromkeys(["typing.ReadOnly", "typing.TypeIs", "typing.NoDefault", "typing.get_protocol_members", "typing.is_protocol"], "3.13"),
    **dict.fromkeys(
        ["types.NoneType", "types.EllipsisType", "types.NotImplementedType", "itertools.pairwise", "dataclasses.KW_ONLY",
         "contextlib.aclosing", "contextlib.AsyncContextDecorator", "inspect.get_annotations", "io.text_encoding",
         "sys.orig_argv", "sys.stdlib_module_names", "threading.gettrace", "threading.getprofile", "threading.__excepthook__",
         "os.eventfd", "os.splice", "base64.b32hexencode", "base64.b32hexdecode", "statistics.covariance",
         "statistics.correlation", "statistics.linear_regression", "importlib.metadata.packages_distributions",
         "ssl.OP_IGNORE_UNEXPECTED_EOF"],
        "3.10",
    ),
    **dict.fromkeys(
        ["datetime.UTC", "enum.StrEnum", "enum.ReprEnum", "enum.verify", "enum.member", "enum.nonmember", "enum.global_enum",
         "enum.EnumCheck", "enum.FlagBoundary", "hashlib.file_digest", "operator.call", "contextlib.chdir", "math.exp2",
         "math.cbrt", "logging.getLevelNamesMapping", "asyncio.TaskGroup", "asyncio.timeout", "asyncio.timeout_at",
         "asyncio.Runner", "asyncio.Barrier", "inspect.getmembers_static", "locale.getencoding", "sys.exception",
         "zipfile.ZipFile.mkdir"],
        "3.11",
    ),
    **dict.fromkeys(
        ["itertools.batched", "os.path.splitroot", "os.path.isjunction", "math.sumprod", "sys.monitoring",
         "pathlib.Path.walk", "pathlib.Path.is_junction", "calendar.Month", "calendar.Day", "os.listdrives"],
        "3.12",
    ),
    **dict.fromkeys(
        ["copy.replace", "warnings.deprecated", "base64.z85encode", "base64.z85decode", "os.process_cpu_count", "math.fma",
         "pathlib.Path.from_uri", "pathlib.PurePath.full_match", "queue.ShutDown"],
        "3.13",
    ),
}

# Methods of a built-in type, found by name on any object (the receiver's type is not known statically).
NEWER_METHODS: Dict[str, str] = {
    "bit_count": "3.10 (int.bit_count)",
    "add_note": "3.11 (BaseException.add_note)",
    "hardlink_to": "3.10 (pathlib.Path.hardlink_to)",
}

# (callable, keyword) -> the version that added the keyword.
NEWER_KEYWORDS: Dict[Tuple[str, str], str] = {
    ("zip", "strict"): "3.10",
    **{("dataclasses.dataclass", k): "3.10" for k in ("kw_only", "slots", "match_args")},
    ("dataclasses.dataclass", "weakref_slot"): "3.11",
    ("dataclasses.field", "kw_only"): "3.10",
    **{(f"bisect.{f}", "key"): "3.10" for f in ("bisect", "bisect_left", "bisect_right", "insort", "insort_left", "insort_right")},
    **{("glob.glob", k): "3.10" for k in ("root_dir", "dir_fd")},
    **{("glob.iglob", k): "3.10" for k in ("root_dir", "dir_fd")},
    **{(f"subprocess.{f}", "process_group"): "3.11" for f in ("Popen", "run", "call", "check_call", "check_output")},
    **{(f"subprocess.{f}", "pipesize"): "3.10" for f in ("Popen", "run", "call", "check_call", "check_output")},
    ("socket.create_connection", "all_errors"): "3.11",
    ("shutil.rmtree", "dir_fd"): "3.11",
    ("shutil.rmtree", "onexc"): "3.12",
    ("tempfile.NamedTemporaryFile", "delete_on_close"): "3.12",
    ("tempfile.TemporaryDirectory", "delete"): "3.12",
    ("logging.Formatter", "defaults"): "3.10",
    ("traceback.print_exc", "colorize"): "3.13",
}

# Called with the exception alone (3.10+); on 3.9 they take (type, value, traceback).
EXCEPTION_ALONE = ("traceback.format_exception", "traceback.print_exception", "traceback.format_exception_only")


def modules() -> List[Path]:
    """Every module of the package, and the build backend (pip runs it on the Python it installs into)."""
    return sorted((PYTHON_DIR / "runtrail").glob("*.py")) + [PYTHON_DIR / "_runtrail_build.py"]


def problems(source: str) -> List[str]:
    """What in ``source`` needs a Python newer than 3.9, as "line N: what (version)"."""
    try:
        tree = ast.parse(source, feature_version=OLDEST)
    except SyntaxError as err:
        return [f"line {err.lineno}: {err.msg} (syntax newer than 3.9)"]
    return sorted(set(_Checker(tree).found), key=lambda problem: int(problem.split(":")[0].split()[1]))


class _Checker(ast.NodeVisitor):
    def __init__(self, tree: ast.Module) -> None:
        self.found: List[str] = []
        self.aliases: Dict[str, str] = {}
        self.postponed = any(
            isinstance(node, ast.ImportFrom) and node.module == "__future__" and any(a.name == "annotations" for a in node.names)
            for node in tree.body
        )
        self.visit(tree)

    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(f"line {getattr(node, 'lineno', 0)}: {what}")

    def dotted(self, node: ast.expr) -> Optional[str]:
        """The full name ``node`` stands for (``dt.UTC`` after ``import datetime as dt`` is ``datetime.UTC``), if it is a name."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            # A builtin, or one the running Python may lack (ExceptionGroup on 3.9 itself).
            return node.id if hasattr(builtins, node.id) or node.id in NEWER_NAMES else None
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def check_name(self, node: ast.AST, name: str) -> None:
        for candidate in (name, *(name.rsplit(".", n)[0] for n in range(1, name.count(".") + 1))):
            if candidate in NEWER_NAMES:
                self.report(node, f"{candidate} is new in {NEWER_NAMES[candidate]}")
                return

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_name(node, alias.name)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            for alias in node.names:
                self.check_name(node, f"{node.module}.{alias.name}")
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def visit_Name(self, node: ast.Name) -> None:
        name = self.dotted(node)
        if isinstance(node.ctx, ast.Load) and name is not None and node.id not in self.aliases:
            self.check_name(node, name)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.dotted(node)
        if name:
            self.check_name(node, name)
        elif node.attr in NEWER_METHODS:
            self.report(node, f".{node.attr}() is new in {NEWER_METHODS[node.attr]}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted(node.func)
        for keyword in node.keywords:
            version = NEWER_KEYWORDS.get((name or "", keyword.arg or ""))
            if version:
                self.report(node, f"{name}({keyword.arg}=...) is new in {version}")
        if name in EXCEPTION_ALONE and len(node.args) == 1 and not node.keywords:
            self.report(node, f"{name}(exc) with the exception alone is new in 3.10: give (type, value, traceback)")
        if name == "open" or (name or "").endswith((".open", "TextIOWrapper")):
            for keyword in node.keywords:
                if keyword.arg == "encoding" and isinstance(keyword.value, ast.Constant) and keyword.value.value == "locale":
                    self.report(node, 'encoding="locale" is new in 3.10')
        if name in ("isinstance", "issubclass") and len(node.args) == 2:
            self.check_union(node.args[1], "in isinstance/issubclass")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        arguments = node.args
        for arg in arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [arguments.vararg, arguments.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.check_annotation(arg.annotation)
        if node.returns is not None:
            self.check_annotation(node.returns)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.check_annotation(node.annotation)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        # A type alias (`Json = Dict[str, Any] | None`) runs at import.
        self.check_union(node.value, "in an assignment")
        self.generic_visit(node)

    def check_annotation(self, annotation: ast.expr) -> None:
        """No `X | Y` in any annotation: without the __future__ import it runs at import; with it,
        ``typing.get_type_hints`` runs it (tests/test_typing.py does, as do tools that read a signature)."""
        where = "in an annotation" + ("" if self.postponed else " of a module without `from __future__ import annotations`")
        self.check_union(annotation, where, any_operands=True)

    def check_union(self, node: ast.expr, where: str, any_operands: bool = False) -> None:
        for part in ast.walk(node):
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and any_operands:
                # A quoted annotation ("Optional[Run]") is evaluated by get_type_hints all the same.
                try:
                    quoted = ast.parse(part.value, mode="eval").body
                except SyntaxError:
                    continue
                self.check_union(quoted, where, any_operands)
            if isinstance(part, ast.BinOp) and isinstance(part.op, ast.BitOr):
                if any_operands or self.is_type(part.left) or self.is_type(part.right):
                    self.report(part, f"`X | Y` as a type {where} is new in 3.10: use Optional[...] or Union[...]")

    def is_type(self, node: ast.expr) -> bool:
        """Whether ``node`` looks like a type rather than a number: None, a builtin type, a typing name, a subscripted generic."""
        if isinstance(node, ast.Constant):
            return node.value is None
        if isinstance(node, ast.Subscript):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.is_type(node.left) or self.is_type(node.right)
        name = self.dotted(node)
        if name is None:
            return False
        return name.startswith(("typing.", "collections.abc.")) or isinstance(getattr(builtins, name, None), type)


def iter_problems() -> Iterator[Tuple[Path, str]]:
    for path in modules():
        for problem in problems(path.read_text(encoding="utf-8")):
            yield path, problem


class Python39Test(unittest.TestCase):
    def test_every_module_runs_on_python_3_9(self) -> None:
        found = [f"{path.relative_to(PYTHON_DIR)} {problem}" for path, problem in iter_problems()]
        self.assertEqual(found, [], "needs a Python newer than the 3.9 the package supports:\n" + "\n".join(found))

    def test_the_check_finds_what_3_9_lacks(self) -> None:
        # Each line needs 3.10 or newer; the check must name every one (else the test above proves nothing).
        newer = {
            "match x:\n    case 1:\n        pass": "syntax",
            "try:\n    pass\nexcept* ValueError:\n    pass": "syntax",
            "def f(a: int | None) -> None: ...": "X | Y",
            "from __future__ import annotations\ndef f(a: 'Optional[int] | str') -> None: ...": "X | Y",
            "from __future__ import annotations\nx: Dict[str, int] | None = None": "X | Y",
            "isinstance(x, int | str)": "X | Y",
            "Json = Dict[str, Any] | None": "X | Y",
            "for a, b in zip(xs, ys, strict=True): pass": "zip(strict=...)",
            "import datetime\nnow = datetime.datetime.now(datetime.UTC)": "datetime.UTC",
            "from datetime import UTC": "datetime.UTC",
            "import tomllib": "tomllib",
            "from typing import Self": "typing.Self",
            "import typing\nT: typing.TypeAlias = int": "typing.TypeAlias",
            "import dataclasses\n@dataclasses.dataclass(slots=True)\nclass A: pass": "dataclasses.dataclass(slots=...)",
            "from dataclasses import dataclass\n@dataclass(kw_only=True)\nclass A: pass": "dataclasses.dataclass(kw_only=...)",
            "import itertools as it\nit.pairwise(xs)": "itertools.pairwise",
            "import subprocess\nsubprocess.Popen(['x'], process_group=0)": "process_group=",
            "import traceback\ntraceback.format_exception(err)": "exception alone",
            "(5).bit_count()": "bit_count",
            "err.add_note('x')": "add_note",
            "open('f', encoding='locale')": "locale",
            "raise ExceptionGroup('x', [])": "ExceptionGroup",
        }
        for source, expected in newer.items():
            with self.subTest(source=source):
                found = problems(source)
                self.assertTrue(any(expected in problem for problem in found), f"not found: {expected!r} in {found}")

    def test_the_check_passes_what_3_9_has(self) -> None:
        fine = "\n".join([
            "import os, traceback",
            "from typing import Dict, Optional, Union",
            "flags = os.O_RDWR | os.O_CREAT",
            "def f(a: Optional[int], b: 'Union[int, str]', c: list[int]) -> Dict[str, int]: ...",
            "'abc'.removeprefix('a')",
            "traceback.format_exception(type(err), err, err.__traceback__)",
            "zip(xs, ys)",
            "with (open('a') as a, open('b') as b): pass",
        ])
        self.assertEqual(problems(fine), [])


if __name__ == "__main__":
    unittest.main()
