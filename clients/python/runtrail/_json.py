"""Data a script hands to runtrail, as the JSON text a server takes: numpy-like numbers as numbers, the rest refused where it is."""

from __future__ import annotations

import json
import math
import numbers
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
    return int(value) if isinstance(value, numbers.Integral) else float(value)


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
    if plain is None or not math.isfinite(plain):
        return path or ["the value itself"]
    return None
