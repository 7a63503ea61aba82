"""Strict JSON input: duplicate keys, NaN/Infinity and over-deep nesting are refused.

A duplicate key could silently flip an intent, and PostgreSQL ``jsonb`` cannot store NaN.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32


class JSONInputError(ValueError):
    """Input is not acceptable JSON; ``field`` names where."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Duplicated(dict[str, Any]):
    """An object that had a duplicate key (reported with its full path after parsing)."""

    duplicate: str = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            marked = _Duplicated(result)
            marked.duplicate = key
            return marked
        result[key] = value
    return result


def _find_duplicate(value: Any, path: str) -> str | None:
    """The path of the first duplicated key (objects only know their own keys while parsing)."""
    if isinstance(value, _Duplicated):
        return f"{path}.{value.duplicate}"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _find_duplicate(item, f"{path}.{key}")
        if found is not None:
            return found
    return None


def _constant(name: str) -> Any:
    raise JSONInputError("body", f"{name} is not valid JSON")


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (scalars are 0)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def strict_loads(text: str | bytes, field: str = "body") -> Any:
    """Parse JSON strictly; raises :class:`JSONInputError` naming ``field`` or the offending key."""
    try:
        value = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except JSONInputError as exc:
        raise JSONInputError(
            field if exc.field == "body" else f"{field}.{exc.field}", exc.reason
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONInputError(field, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise JSONInputError(field, f"nesting deeper than {MAX_DEPTH} levels") from None
    if depth(value) > MAX_DEPTH:
        raise JSONInputError(field, f"nesting deeper than {MAX_DEPTH} levels")
    duplicate = _find_duplicate(value, field)
    if duplicate is not None:
        raise JSONInputError(duplicate, "duplicate key")
    return value
