"""JSON on the data path: orjson, measured 5-30x faster than the standard library.

The stores decode every JSON column of every row they read (a claimed job has four) and encode
the batched parameters of enqueues and completions. The standard library's ``loads`` of bytes
spends 2.4 us detecting the encoding even for ``{}``; orjson reads bytes directly (0.07 us).

``dumps`` is for values already checked to be JSON (payloads, results, our own documents):
orjson refuses integers beyond 64 bits, which JSON allows, so those fall back to the standard
library; it writes NaN as ``null``, which the checks upstream never let through.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Non-string keys become strings, as the standard library does.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON text (``ValueError`` if it is not JSON)."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of a value already checked to be JSON."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # an integer beyond 64 bits (anything else fails here too, as it should)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
