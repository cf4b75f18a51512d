"""The annotations a type checker reads (the package ships py.typed): what they promise must be what the code does."""

from __future__ import annotations

import typing
import unittest

import runtrail


class TypingTest(unittest.TestCase):
    def test_context_managers_say_they_never_swallow_an_exception(self) -> None:
        # An __exit__ annotated -> bool tells mypy and pyright the block may swallow exceptions, so
        # `with rt.run(...) as run: return x` was "Missing return statement" and names bound in the block
        # "possibly unbound" after it. None of them returns True: Literal[False] says so.
        for cls in (runtrail.Run, runtrail.Phase, runtrail.Call):
            hints = typing.get_type_hints(cls.__exit__)
            self.assertEqual(hints["return"], typing.Literal[False], cls.__name__)

    def test_the_public_api_is_annotated(self) -> None:
        for owner in (runtrail.Client, runtrail.Run):
            for name in dir(owner):
                member = getattr(owner, name)
                if name.startswith("_") or not callable(member):
                    continue
                hints = typing.get_type_hints(member)
                self.assertIn("return", hints, f"{owner.__name__}.{name} has no return annotation")


if __name__ == "__main__":
    unittest.main()
