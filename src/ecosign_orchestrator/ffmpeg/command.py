"""``CommandBuilder``: a typed, fluent builder of ffmpeg argument lists (never a shell string).

Every command starts with ``-nostdin -hide_banner -nostats -progress pipe:1``. Paths are checked:
a name starting with ``-`` would be read as an option and a name like ``concat:a|b`` or
``http://...`` as a protocol, so both are refused unless explicitly allowed; with a base directory,
every path must resolve inside it (no ``..`` or symlink escape).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Self

_PROTOCOL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
BASE_OPTIONS = ("-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1")


class InvalidCommand(ValueError):
    """A command that would be unsafe or wrong; ``field`` names what."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_path(
    value: str | os.PathLike[str],
    field: str,
    *,
    base_dir: Path | None = None,
    allow_protocols: Iterable[str] = (),
) -> str:
    """Return the argument ffmpeg should see for ``value``, or raise :class:`InvalidCommand`."""
    text = os.fspath(value)
    if not text or "\x00" in text:
        raise InvalidCommand(field, "empty or contains NUL")
    protocol = _PROTOCOL.match(text)
    if protocol is not None:
        name = protocol.group(0)[:-1].lower()
        if name not in {p.lower() for p in allow_protocols}:
            raise InvalidCommand(
                field, f"{text!r} names the protocol {name!r}; only plain files are allowed"
            )
        return text
    if text.startswith("-"):
        raise InvalidCommand(field, f"{text!r} starts with '-' and would be read as an option")
    if base_dir is not None:
        base = base_dir.resolve()
        candidate = (base / text).resolve() if not os.path.isabs(text) else Path(text).resolve()
        if candidate != base and base not in candidate.parents:
            raise InvalidCommand(field, f"{text!r} escapes the base directory {str(base)!r}")
        return str(candidate)
    return text


@dataclasses.dataclass(slots=True)
class _Input:
    path: str
    options: list[str]


@dataclasses.dataclass(slots=True)
class _Output:
    path: str
    options: list[str]


class CommandBuilder:
    """Build ``[ffmpeg, ...args]``.

    >>> (CommandBuilder("ffmpeg").input("in.mp4").output("out.mp4")
    ...     .video_codec("libx264").crf(23).preset("veryfast").scale(640, 360).build())
    ['ffmpeg', '-nostdin', '-hide_banner', '-nostats', '-progress', 'pipe:1', '-y', '-i', ...]
    """

    def __init__(
        self,
        ffmpeg: str | os.PathLike[str] = "ffmpeg",
        *,
        base_dir: str | os.PathLike[str] | None = None,
        overwrite: bool = True,
    ) -> None:
        self._ffmpeg = os.fspath(ffmpeg)
        self._base_dir = None if base_dir is None else Path(base_dir)
        self._overwrite = overwrite
        self._global: list[str] = []
        self._inputs: list[_Input] = []
        self._output: _Output | None = None

    @property
    def base_dir(self) -> Path | None:
        """The directory every path is confined to (None: no confinement)."""
        return self._base_dir

    def global_option(self, *args: str) -> Self:
        """Options before the inputs (e.g. ``-loglevel``)."""
        self._global.extend(args)
        return self

    def stats_period(self, seconds: float) -> Self:
        """How often ffmpeg writes a progress block (default 0.5 s)."""
        if seconds <= 0:
            raise InvalidCommand("stats_period", "must be positive")
        return self.global_option("-stats_period", f"{seconds:g}")

    def input(
        self,
        path: str | os.PathLike[str],
        *,
        format: str | None = None,
        options: Sequence[str] = (),
        allow_protocols: Iterable[str] = (),
    ) -> Self:
        """Add an input (``format="lavfi"`` reads a filter graph such as ``testsrc=duration=5``)."""
        opts = list(options)
        if format is not None:
            opts = ["-f", format, *opts]
        if format == "lavfi":
            text = os.fspath(path)
            if text.startswith("-"):
                raise InvalidCommand("input", "a lavfi graph cannot start with '-'")
            self._inputs.append(_Input(path=text, options=opts))
            return self
        checked = check_path(
            path, "input", base_dir=self._base_dir, allow_protocols=allow_protocols
        )
        self._inputs.append(_Input(path=checked, options=opts))
        return self

    def output(self, path: str | os.PathLike[str], *, allow_protocols: Iterable[str] = ()) -> Self:
        """Set the output file."""
        checked = check_path(
            path, "output", base_dir=self._base_dir, allow_protocols=allow_protocols
        )
        self._output = _Output(path=checked, options=[])
        return self

    def _out(self) -> _Output:
        if self._output is None:
            raise InvalidCommand("output", "set the output before output options")
        return self._output

    def output_option(self, *args: str) -> Self:
        """Raw output options (the typed helpers below are preferred)."""
        self._out().options.extend(args)
        return self

    def video_codec(self, codec: str) -> Self:
        """``-c:v``."""
        return self.output_option("-c:v", _token("video_codec", codec))

    def audio_codec(self, codec: str) -> Self:
        """``-c:a``."""
        return self.output_option("-c:a", _token("audio_codec", codec))

    def crf(self, value: int) -> Self:
        """Constant rate factor, 0-51."""
        if isinstance(value, bool) or not 0 <= value <= 51:
            raise InvalidCommand("crf", "must be an integer from 0 to 51")
        return self.output_option("-crf", str(value))

    def preset(self, name: str) -> Self:
        """x264/x265 speed preset."""
        if name not in PRESETS:
            raise InvalidCommand("preset", f"must be one of {', '.join(PRESETS)}")
        return self.output_option("-preset", name)

    def scale(self, width: int, height: int) -> Self:
        """Scale the video (``-1`` keeps the aspect ratio for one side)."""
        for name, value in (("width", width), ("height", height)):
            if value != -1 and not 1 <= value <= 16384:
                raise InvalidCommand("scale", f"{name} must be -1 or 1..16384")
        return self.output_option("-vf", f"scale={width}:{height}")

    def pixel_format(self, name: str) -> Self:
        """``-pix_fmt``."""
        return self.output_option("-pix_fmt", _token("pixel_format", name))

    @property
    def input_paths(self) -> list[str]:
        """The input arguments, in order."""
        return [item.path for item in self._inputs]

    @property
    def output_path(self) -> str:
        """The output argument."""
        return self._out().path

    def with_output(self, path: str) -> CommandBuilder:
        """A copy writing to ``path`` instead (the processor writes to a temporary name)."""
        clone = CommandBuilder(self._ffmpeg, base_dir=self._base_dir, overwrite=self._overwrite)
        clone._global = list(self._global)
        clone._inputs = [dataclasses.replace(i, options=list(i.options)) for i in self._inputs]
        clone._output = _Output(path=path, options=list(self._out().options))
        return clone

    def build(self) -> list[str]:
        """The argv list."""
        if not self._inputs:
            raise InvalidCommand("input", "at least one input is required")
        argv = [self._ffmpeg, *BASE_OPTIONS]
        if self._overwrite:
            argv.append("-y")
        argv.extend(self._global)
        for item in self._inputs:
            argv.extend([*item.options, "-i", item.path])
        output = self._out()
        argv.extend([*output.options, output.path])
        return argv


_TOKEN = re.compile(r"[A-Za-z0-9_.+\-]{1,64}", re.ASCII)


def _token(field: str, value: str) -> str:
    if not _TOKEN.fullmatch(value) or value.startswith("-"):
        raise InvalidCommand(field, f"{value!r} is not a valid name")
    return value
