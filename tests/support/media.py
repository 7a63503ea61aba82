"""Media inputs generated with ffmpeg from lavfi sources (test pattern + sine tone)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_input(ffmpeg: str, path: Path, seconds: int, size: str = "640x360") -> Path:
    """An H.264/AAC MP4 of ``seconds`` at ``size``."""
    subprocess.run(
        [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size={size}:rate=25",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", "--", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


#: The first box of an ISO MP4 file: what the enqueue-time container check reads. Enough for
#: tests that validate a job without running ffmpeg on it.
MP4_HEADER = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


def mp4_header_only(path: Path) -> Path:
    """A file that starts like an MP4 and holds nothing else (validation tests only)."""
    path.write_bytes(MP4_HEADER)
    return path
