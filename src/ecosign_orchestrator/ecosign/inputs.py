"""What a caller may put in a step's request body (``metadata.step_inputs``): each allowed field
has a type, a full ASCII pattern and a size bound.

Allowing a field by name only let ``build_artifact.artifact_version = "../../<other>/evil"``
reach the function, which stored the artifact outside the document's folder; objects of any
depth and strings of 500 kB passed too. A field is what its rule says, or the submission is
refused naming it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

#: Ciphertext is sent base64-encoded in the JSON body (itself at most 1 MiB).
MAX_CIPHERTEXT_CHARS = 1_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class InputRule:
    """What one caller-supplied field may be: ``check`` says whether a value is one, ``what``
    says in words what it must be."""

    what: str
    check: Callable[[Any], bool]


def text(pattern: str, what: str) -> InputRule:
    """A string matching ``pattern`` whole (ASCII classes: ``[0-9]``, never ``\\d``)."""
    compiled = re.compile(pattern, re.ASCII)
    return InputRule(what, lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None)


def integer(low: int, high: int, what: str) -> InputRule:
    """A whole number within ``[low, high]`` (not a boolean)."""
    return InputRule(
        what, lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
    )


def record(fields: Mapping[str, InputRule], what: str) -> InputRule:
    """An object with some of ``fields`` and nothing else, each one valid."""

    def check(value: Any) -> bool:
        return isinstance(value, dict) and all(
            key in fields and fields[key].check(item) for key, item in value.items()
        )

    return InputRule(what, check)


UUID = text(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "a lowercase UUID")
#: EcoSign's ``store-encrypted-custody`` input: the client-side ciphertext and its file facts.
ENCRYPTED_DATA = text(
    rf"[A-Za-z0-9+/]{{4,{MAX_CIPHERTEXT_CHARS}}}={{0,2}}",
    f"base64 ciphertext (at most {MAX_CIPHERTEXT_CHARS:,} characters)",
)
FILE_FACTS = record(
    {
        "original_name": text(r"[^\x00-\x1f\x7f/\\]{1,255}", "a file name (1-255 characters)"),
        "original_mime": text(
            r"[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}",
            "a media type such as application/pdf",
        ),
        "original_size": integer(0, 10**12, "a size in bytes"),
    },
    "an object with original_name, original_mime and original_size",
)
#: An artifact version names a version, never a path.
ARTIFACT_VERSION = text(
    r"v?[0-9]{1,6}(\.[0-9]{1,6}){0,3}", "a version such as v1 or 2.1 (never a path)"
)


def problem(rule: InputRule, value: Any) -> str | None:
    """Why ``value`` breaks ``rule`` (None: it does not)."""
    return None if rule.check(value) else f"must be {rule.what}"
