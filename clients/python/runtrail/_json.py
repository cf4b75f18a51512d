"""Data a script hands to runtrail, as the JSON text a server takes: numpy-like numbers as numbers, the rest refused where it is."""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Any, List, Optional, Union

from ._limits import MAX_JSON_DEPTH


def number(value: Any) -> Optional[Union[int, float]]:
    """A real number as a plain int or float, else None.

    numpy's scalars (``np.float32``, ``np.int64``: what ``scores.mean()`` or
    ``np.argmax`` return) are no subclass of float or int, but numpy
    registers them as ``numbers.Real``: refusing them told an eval script
    that 0.5 was not a finite number. ``bool`` is not a number here.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        return float(value)
    except OverflowError:
        # A Real beyond a float's range (a Fraction of huge ints): infinite as a float, so refused as infinity is.
        return math.inf if value > 0 else -math.inf


def beyond_float(value: Union[int, float]) -> bool:
    """Whether ``value`` is an int too large for a float (over about 1.8e308).

    Python writes such an int in JSON digit for digit; a server parses it
    as Infinity, which it refuses where a finite number is required (a
    refusal that stops the run's sender) and stores as null elsewhere.
    """
    if not isinstance(value, int):
        return False
    try:
        float(value)
    except OverflowError:
        return True
    return False


def about_digits(value: int) -> str:
    """``about N digits`` of a huge int, said without writing it (Python 3.11 refuses to write an int of over 4300 digits)."""
    return f"about {int(value.bit_length() * math.log10(2)) + 1} digits"


#: A run of digits as long as an int beyond a float's range needs (1.8e308 has 309): only then is the data walked for one.
_LONG_DIGITS = re.compile(r"[0-9]{309}")


def _plain(value: Any) -> Any:
    plain = number(value)
    if plain is None:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return plain


def dumps(what: str, value: Any, check_depth: bool = True) -> str:
    """``value`` as JSON text (ASCII, so its length is its bytes), or a ValueError that says where in it the trouble is.

    ``check_depth``: refuse what nests deeper than a server takes, here rather than by a refusal that stops the run's sender.
    """
    try:
        text = json.dumps(value, allow_nan=False, default=_plain)
    except (TypeError, ValueError) as err:
        where = _where(value, [])
        at = f" (at {''.join(where)}: convert it to a str, a finite number, a list or a dict first)" if where else ""
        raise ValueError(f"{what} must be JSON (finite numbers, str keys): {err}{at}") from err
    except RecursionError as err:
        raise ValueError(f"{what} must be JSON: it is nested too deeply or contains itself") from err
    if _LONG_DIGITS.search(text):
        # Digits in a string match too: the walk tells (the text of most data has no such run, and is not walked).
        where = _where(value, [])
        if where is not None:
            raise ValueError(
                f"{what} must be JSON (finite numbers, str keys): an int beyond a float's range (about 1.8e308), which a server "
                f"reads as infinity and stores as null (at {''.join(where)}: convert it to a str first)"
            )
    # No deeper than the brackets the text opens (those in strings included): most data is never walked.
    deep = _too_deep(value, 1) if check_depth and text.count("[") + text.count("{") > MAX_JSON_DEPTH else None
    if deep is not None:
        raise ValueError(f"{what} nests deeper than {MAX_JSON_DEPTH} levels of lists and dicts, more than a server takes (at {''.join(deep)}): flatten it")
    return text


def _too_deep(value: Any, depth: int) -> Optional[List[str]]:
    """The path to the first list or dict of ``value`` nested deeper than ``MAX_JSON_DEPTH``, counting ``value`` as 1; None if none is."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else None
    if items is None:
        return None
    if depth > MAX_JSON_DEPTH:
        return []
    for key, item in items:
        found = _too_deep(item, depth + 1) if isinstance(item, (dict, list, tuple)) else None
        if found is not None:
            return [f"[{key!r}]" if isinstance(value, dict) else f"[{key}]", *found]
    return None


def _where(value: Any, path: List[str], depth: int = 0) -> Optional[List[str]]:
    """The path (``['scores'][3]``) of the first part of ``value`` JSON cannot hold; None if none is found."""
    if depth > 100:
        return None
    if isinstance(value, (str, bool)) or value is None:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            step = [*path, f"[{key!r}]"]
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                return step
            found = _where(item, step, depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _where(item, [*path, f"[{index}]"], depth + 1)
            if found is not None:
                return found
        return None
    plain = number(value)
    if plain is None or beyond_float(plain) or not math.isfinite(plain):
        return path or ["the value itself"]
    return None
