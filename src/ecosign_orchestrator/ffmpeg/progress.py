"""A pure, incremental parser of ffmpeg's ``-progress`` output.

``-progress pipe:1`` writes blocks of ``key=value`` lines, each block ending with
``progress=continue`` or ``progress=end``. Facts from a real capture
(``shared/reference/ffmpeg-progress-capture.txt``): ``out_time_ms`` is in fact microseconds (a
long-standing ffmpeg bug; prefer ``out_time_us``), values may be ``N/A`` or space-padded
(``bitrate=  44.7kbits/s``, ``speed=   0x``), and the first blocks may carry no progress at all.
"""

from __future__ import annotations

import codecs
import dataclasses
import re

_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_CLOCK = re.compile(r"^(-?)(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ProgressSnapshot:
    """One ``-progress`` block. ``percent`` and ``eta`` need a known duration."""

    frame: int | None = None
    fps: float | None = None
    bitrate_kbits: float | None = None
    total_size: int | None = None
    out_time: float | None = None
    speed: float | None = None
    ended: bool = False
    percent: float | None = None
    eta: float | None = None

    def describe(self) -> str:
        """``37% · 2.1x · ETA 3s · frame 120``."""
        parts = []
        if self.percent is not None:
            parts.append(f"{self.percent:.0f}%")
        elif self.out_time is not None:
            parts.append(f"{self.out_time:.1f}s done")
        if self.speed is not None:
            parts.append(f"{self.speed:g}x")
        if self.eta is not None:
            parts.append(f"ETA {self.eta:.0f}s")
        if self.frame is not None:
            parts.append(f"frame {self.frame}")
        return " · ".join(parts)


def _value(raw: str) -> str | None:
    value = raw.strip()
    return None if value in ("", "N/A") else value


def _float(raw: str | None, suffix: str = "") -> float | None:
    if raw is None:
        return None
    try:
        return float(raw.removesuffix(suffix).strip())
    except ValueError:
        return None


def _int(raw: str | None) -> int | None:
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


def parse_clock(value: str | None) -> float | None:
    """``HH:MM:SS.ffffff`` (possibly negative) to seconds."""
    match = _CLOCK.match(value or "")
    if match is None:
        return None
    sign, hours, minutes, seconds = match.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return -total if sign else total


def parse_duration_line(line: str) -> float | None:
    """The input's duration from ffmpeg's own ``Duration: 00:00:05.00,`` stderr line."""
    match = _DURATION.search(line)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def snapshot(fields: dict[str, str], duration: float | None) -> ProgressSnapshot:
    """A block's fields as a snapshot (``duration`` in seconds, or None when unknown)."""
    get = {k: _value(v) for k, v in fields.items()}
    micros = _int(get.get("out_time_us")) if get.get("out_time_us") else None
    if micros is None:
        micros = _int(get.get("out_time_ms"))  # microseconds too, despite its name
    out_time = micros / 1_000_000 if micros is not None else parse_clock(get.get("out_time"))
    if out_time is not None:
        out_time = max(out_time, 0.0)
    speed = _float(get.get("speed"), "x")
    percent = eta = None
    ended = get.get("progress") == "end"
    if duration and duration > 0 and out_time is not None:
        percent = 100.0 if ended else min(out_time / duration * 100, 100.0)
        if speed and speed > 0:
            eta = max(duration - out_time, 0.0) / speed
    return ProgressSnapshot(
        frame=_int(get.get("frame")),
        fps=_float(get.get("fps")),
        bitrate_kbits=_float(get.get("bitrate"), "kbits/s"),
        total_size=_int(get.get("total_size")),
        out_time=out_time,
        speed=speed,
        ended=ended,
        percent=percent,
        eta=0.0 if ended and percent is not None else eta,
    )


class ProgressParser:
    """Feed it arbitrary chunks of ``-progress`` output; get a snapshot per completed block.

    >>> parser = ProgressParser(duration=5.0)
    >>> parser.feed("frame=1\\nout_time_us=0\\nprogress=continue\\n")
    [ProgressSnapshot(frame=1, ...)]
    """

    def __init__(self, duration: float | None = None) -> None:
        self.duration = duration
        self._buffer = ""
        self._fields: dict[str, str] = {}
        # Bytes may be split inside a character: decode incrementally.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: str | bytes) -> list[ProgressSnapshot]:
        """Consume ``chunk``; return the snapshots of every block it completed."""
        if isinstance(chunk, bytes):
            chunk = self._decoder.decode(chunk)
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split("\n")
        out: list[ProgressSnapshot] = []
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if not sep:
                continue
            self._fields[key.strip()] = value
            if key.strip() == "progress":
                out.append(snapshot(self._fields, self.duration))
                self._fields = {}
        return out
