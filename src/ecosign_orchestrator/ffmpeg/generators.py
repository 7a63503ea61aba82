"""lavfi inputs a job may use: one vetted generator, with bounded options.

A generator reads no file, but it can make as much media as it is told: ``sine=f=440`` with no
duration writes until the disk is full (868 MB in 12 s), ``testsrc=size=16000x16000`` asks for a
quarter-gigapixel frame. So a generator must say how long it runs, within
:data:`MAX_SECONDS`, and its frame size, rate and sample rate are bounded. Only ``key=value``
options the generator documents are accepted (no positional values, no filter chain, no quoting:
``movie=`` reads any file and ``metadata=...:file=`` writes one).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ecosign_orchestrator.ffmpeg.command import InvalidCommand

#: The longest a generated input may run, in seconds.
MAX_SECONDS = 600.0
#: The largest generated frame side, in pixels.
MAX_SIDE = 4096
MAX_RATE = 120.0
MAX_SAMPLE_RATE = 192_000

_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?", re.ASCII)
_SIZE = re.compile(r"([0-9]{1,5})x([0-9]{1,5})", re.ASCII)
_COLOR = re.compile(r"[A-Za-z]{1,32}|#?[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?", re.ASCII)
_LAYOUT = re.compile(r"mono|stereo|[1-8]\.[0-2]|[1-8]c", re.ASCII)
_GRAPH = re.compile(r"([a-z0-9]{1,32})(=(.{0,512}))?", re.ASCII | re.DOTALL)

Check = Callable[[str], str | None]


def _number(limit: float, unit: str) -> Check:
    def check(value: str) -> str | None:
        if not _NUMBER.fullmatch(value):
            return f"must be a number of {unit}"
        if not 0 < float(value) <= limit:
            return f"must be more than 0 and at most {limit:g} {unit}"
        return None

    return check


def _size(value: str) -> str | None:
    match = _SIZE.fullmatch(value)
    if match is None:
        return "must be WIDTHxHEIGHT in pixels, e.g. 640x360"
    if not all(0 < int(side) <= MAX_SIDE for side in match.groups()):
        return f"each side must be 1 to {MAX_SIDE} pixels"
    return None


def _pattern(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else f"must be {what}"

    return check


_SECONDS = _number(MAX_SECONDS, "seconds")
_VIDEO: dict[str, Check] = {
    "duration": _SECONDS,
    "d": _SECONDS,
    "size": _size,
    "s": _size,
    "rate": _number(MAX_RATE, "frames a second"),
    "r": _number(MAX_RATE, "frames a second"),
}
_SAMPLE_RATE = _number(MAX_SAMPLE_RATE, "samples a second")
#: Each vetted generator and the options it may be given.
GENERATORS: dict[str, dict[str, Check]] = {
    **{name: _VIDEO for name in ("testsrc", "testsrc2", "rgbtestsrc", "smptebars", "smptehdbars")},
    "color": {**_VIDEO, **dict.fromkeys(("color", "c"), _pattern(_COLOR, "a color name or hex"))},
    "sine": {
        "duration": _SECONDS,
        "d": _SECONDS,
        "frequency": _number(MAX_SAMPLE_RATE / 2, "hertz"),
        "f": _number(MAX_SAMPLE_RATE / 2, "hertz"),
        "sample_rate": _SAMPLE_RATE,
        "r": _SAMPLE_RATE,
    },
    "anullsrc": {
        "duration": _SECONDS,
        "d": _SECONDS,
        "sample_rate": _SAMPLE_RATE,
        "r": _SAMPLE_RATE,
        "channel_layout": _pattern(_LAYOUT, "a channel layout such as mono or stereo"),
        "cl": _pattern(_LAYOUT, "a channel layout such as mono or stereo"),
    },
}
_DURATION_KEYS = ("duration", "d")


def check_generator(graph: str) -> None:
    """A lavfi input must be one vetted generator with bounded ``key=value`` options, its
    duration among them (``InvalidCommand`` naming ``input`` and the reason)."""
    match = _GRAPH.fullmatch(graph)
    allowed = ", ".join(sorted(GENERATORS))
    if match is None or match.group(1) not in GENERATORS:
        raise InvalidCommand("input", f"lavfi input must be one generator of: {allowed}")
    name, options = match.group(1), GENERATORS[match.group(1)]
    given: dict[str, str] = {}
    for item in filter(None, (match.group(3) or "").split(":")):
        key, sep, value = item.partition("=")
        if not sep or key not in options:
            known = ", ".join(sorted(options))
            raise InvalidCommand(
                "input", f"{name}: {item!r} is not one of its options ({known}), as key=value"
            )
        if key in given:
            raise InvalidCommand("input", f"{name}: {key} is given twice")
        problem = options[key](value)
        if problem is not None:
            raise InvalidCommand("input", f"{name}: {key} {problem}")
        given[key] = value
    if not any(key in given for key in _DURATION_KEYS):
        raise InvalidCommand(
            "input",
            f"{name}: give its duration (duration=SECONDS, at most {MAX_SECONDS:g}): a generator "
            "without one runs until the disk is full",
        )
