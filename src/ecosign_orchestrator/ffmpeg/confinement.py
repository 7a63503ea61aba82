"""Server-side media roots: where FFmpeg jobs may read and write.

A job's paths come from whoever submits it; the worker runs ffmpeg with the service's own rights.
So the service, not the client, says where media lives: every input must resolve (symlinks
included) inside one of the input roots, every output inside the output root. (lavfi inputs are
vetted in ``generators.py``, file contents in ``containers.py``.) The same check runs at enqueue
and again when the job runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.ffmpeg.command import InvalidCommand


@dataclasses.dataclass(frozen=True, slots=True)
class MediaRoots:
    """Resolved folders: inputs may come from any of ``inputs``; outputs go under ``output``."""

    inputs: tuple[Path, ...]
    output: Path

    @classmethod
    def of(
        cls, inputs: Sequence[str | os.PathLike[str]], output: str | os.PathLike[str]
    ) -> MediaRoots:
        """From configuration: each folder must exist (``ConfigurationError`` otherwise)."""
        if not inputs:
            raise errors.ConfigurationError("ffmpeg_input_roots: give at least one folder")
        return cls(
            inputs=tuple(_folder("ffmpeg_input_roots", p) for p in inputs),
            output=_folder("ffmpeg_output_root", output),
        )

    def resolve_input(self, text: str) -> str:
        """The resolved input path, or ``InvalidCommand`` naming ``input``."""
        for root in self.inputs:
            candidate = _resolve("input", text, root)
            if candidate.is_relative_to(root) and _is_file(candidate):
                return str(candidate)
        roots = ", ".join(str(r) for r in self.inputs)
        raise InvalidCommand("input", f"{text!r} is not a file inside the input roots ({roots})")

    def resolve_output(self, text: str) -> str:
        """The resolved output path, or ``InvalidCommand`` naming ``output``."""
        candidate = _resolve("output", text, self.output)
        folder = candidate.parent
        if not candidate.is_relative_to(self.output) or not _is_dir(folder):
            raise InvalidCommand(
                "output", f"{text!r} is not in an existing folder inside {str(self.output)!r}"
            )
        return str(candidate)


def _folder(setting: str, value: str | os.PathLike[str]) -> Path:
    try:
        path = Path(value).resolve(strict=True)
    except (OSError, ValueError) as exc:
        raise errors.ConfigurationError(f"{setting}: {value}: {exc}") from None
    if not path.is_dir():
        raise errors.ConfigurationError(f"{setting}: {value} is not a folder")
    return path


def _resolve(field: str, text: str, root: Path) -> Path:
    """``text`` (relative to ``root`` unless absolute) with every symlink resolved."""
    try:
        path = Path(text)
        return (path if path.is_absolute() else root / path).resolve()
    except (OSError, ValueError) as exc:
        raise InvalidCommand(field, f"cannot be resolved: {exc}") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a permission denied on the way: not a usable file
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False
