"""The one set of rules a stored JSON value obeys, whatever the backend and the entry point.

PostgreSQL ``jsonb`` cannot store NUL characters, lone surrogates do not encode as UTF-8, NaN and
Infinity are not JSON, and unbounded nesting is a way to exhaust the parser: a job valid on one
backend must be valid on the other, so every payload is checked here, on the way in.
"""

from __future__ import annotations

import math
from typing import Any

#: The deepest nesting a stored value may have.
MAX_DEPTH = 32


def json_value_problem(value: Any, path: str, depth: int = 0) -> str | None:
    """Why ``value`` cannot be stored (``"<path>: <reason>"``), or None when it can."""
    if depth > MAX_DEPTH:
        return f"{path}: nesting deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        return _text_problem(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: NaN and Infinity are not JSON"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: keys must be strings"
            problem = _text_problem(key, f"{path} key") or json_value_problem(
                item, f"{path}.{key}", depth + 1
            )
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = json_value_problem(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
        return None
    if value is not None and not isinstance(value, bool | int | float):
        return f"{path}: {type(value).__name__} is not a JSON value"
    return None


def _text_problem(text: str, path: str) -> str | None:
    if "\x00" in text:
        return f"{path}: NUL characters are not allowed"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return f"{path}: lone surrogate characters are not allowed"
    return None
