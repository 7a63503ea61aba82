"""Finding ffmpeg and ffprobe: ``FFMPEG_BINARY``/``FFPROBE_BINARY``, else PATH, else the ffmpeg
shipped inside the ``imageio-ffmpeg`` wheel (so a machine without a system ffmpeg still works)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from ecosign_orchestrator.core import errors


@dataclasses.dataclass(frozen=True, slots=True)
class Binaries:
    """Where ffmpeg (and, if available, ffprobe) are, and how they were found."""

    ffmpeg: Path
    ffprobe: Path | None
    source: str


def _from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    if not value:
        return None
    path = Path(value)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise errors.ConfigurationError(f"{name}={value!r} is not an executable file")
    return path


def _bundled_ffmpeg() -> Path | None:
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return Path(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:
        return None


def find_binaries() -> Binaries:
    """Locate the binaries; ``ConfigurationError`` with an install hint when there is no ffmpeg."""
    ffmpeg = _from_env("FFMPEG_BINARY")
    source = "FFMPEG_BINARY"
    if ffmpeg is None and (found := shutil.which("ffmpeg")):
        ffmpeg, source = Path(found), "PATH"
    if ffmpeg is None and (bundled := _bundled_ffmpeg()) is not None:
        ffmpeg, source = bundled, "imageio-ffmpeg"
    if ffmpeg is None:
        raise errors.ConfigurationError(
            "ffmpeg not found: set FFMPEG_BINARY, install ffmpeg on PATH, or "
            "pip install 'ecosign-orchestrator[ffmpeg]' (bundles one)"
        )
    ffprobe = _from_env("FFPROBE_BINARY")
    if ffprobe is None and (found := shutil.which("ffprobe")):
        ffprobe = Path(found)
    if ffprobe is None and (sibling := ffmpeg.with_name("ffprobe")).is_file():
        ffprobe = sibling
    return Binaries(ffmpeg=ffmpeg, ffprobe=ffprobe, source=source)
