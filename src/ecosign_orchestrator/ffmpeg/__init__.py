"""The FFmpeg adapter: ``CommandBuilder``, progress parsing and ``FFmpegProcessor``.

It depends on ``core`` only, and is the proof that the core is agnostic.
"""

from __future__ import annotations

from ecosign_orchestrator.ffmpeg.binaries import Binaries, find_binaries
from ecosign_orchestrator.ffmpeg.command import CommandBuilder, InvalidCommand
from ecosign_orchestrator.ffmpeg.confinement import MediaRoots
from ecosign_orchestrator.ffmpeg.payload import FFmpegJob, validate_payload
from ecosign_orchestrator.ffmpeg.processor import KIND, FFmpegProcessor
from ecosign_orchestrator.ffmpeg.progress import ProgressParser, ProgressSnapshot

__all__ = [
    "KIND",
    "Binaries",
    "CommandBuilder",
    "FFmpegJob",
    "FFmpegProcessor",
    "InvalidCommand",
    "MediaRoots",
    "ProgressParser",
    "ProgressSnapshot",
    "find_binaries",
    "validate_payload",
]
