"""The FFmpeg job payload, validated when the job is enqueued (pydantic at the edge)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, get_args

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.types import JSONDict
from ecosign_orchestrator.ffmpeg.command import PRESETS, CommandBuilder, InvalidCommand, check_path
from ecosign_orchestrator.ffmpeg.confinement import MediaRoots
from ecosign_orchestrator.ffmpeg.containers import INPUT_OPTIONS, check_container
from ecosign_orchestrator.ffmpeg.generators import check_generator

_SCALE = re.compile(r"(-1|[0-9]{1,5})x(-1|[0-9]{1,5})", re.ASCII)
Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
assert set(PRESETS) == set(get_args(Preset))


class FFmpegJob(BaseModel):
    """A transcode: one input to one output, with the common knobs typed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(
        max_length=4096, description="Input file (or a lavfi graph with input_format='lavfi')"
    )
    output: str = Field(
        max_length=4096, description="Output file; written under a temporary name, then renamed"
    )
    input_format: Literal["lavfi"] | None = Field(
        default=None, description="'lavfi' to read a generated source such as testsrc=duration=5"
    )
    video_codec: str | None = Field(default=None, examples=["libx264"])
    audio_codec: str | None = Field(default=None, examples=["aac"])
    scale: str | None = Field(default=None, description="WxH, -1 keeps the aspect ratio")
    crf: int | None = Field(default=None, ge=0, le=51)
    preset: Preset | None = None
    pixel_format: str | None = Field(default=None, examples=["yuv420p"])
    base_dir: str | None = Field(
        default=None,
        max_length=4096,
        description="Confine every path to this folder (local use; a server with media roots "
        "confines paths itself and refuses this)",
    )
    overwrite: bool = True
    stats_period: float | None = Field(default=None, gt=0, le=10)

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: str | None) -> str | None:
        if value is not None and not _SCALE.fullmatch(value):
            raise ValueError("must be WxH, e.g. 640x360 or -1x720")
        return value

    def builder(self, ffmpeg: str | os.PathLike[str] = "ffmpeg") -> CommandBuilder:
        """The command for this job (path checks included)."""
        builder = CommandBuilder(ffmpeg, base_dir=self.base_dir, overwrite=self.overwrite)
        if self.stats_period is not None:
            builder.stats_period(self.stats_period)
        # A file input is read only as a plain media container, from a plain file (ffmpeg's
        # own whitelists: ffmpeg/containers.py).
        options = () if self.input_format == "lavfi" else INPUT_OPTIONS
        builder.input(self.input, format=self.input_format, options=options)
        builder.output(self.output)
        if self.video_codec:
            builder.video_codec(self.video_codec)
        if self.audio_codec:
            builder.audio_codec(self.audio_codec)
        if self.scale:
            width, height = (int(v) for v in self.scale.split("x"))
            builder.scale(width, height)
        if self.crf is not None:
            builder.crf(self.crf)
        if self.preset:
            builder.preset(self.preset)
        if self.pixel_format:
            builder.pixel_format(self.pixel_format)
        return builder


def check_input(job: FFmpegJob, builder: CommandBuilder) -> None:
    """What the job reads, checked when it is submitted and again when it runs: a lavfi input
    is one vetted generator, a file input an existing plain media container (never a playlist
    or a list of files that would make ffmpeg read others), with or without media roots."""
    if job.input_format == "lavfi":
        check_generator(job.input)
        return
    source = Path(builder.input_paths[0])
    if not source.is_file():
        raise InvalidCommand("input", f"{job.input!r} does not exist or is not a file")
    check_container(str(source))


#: A file name's longest length on the file systems we write to, in bytes.
NAME_MAX = 255
#: What the temporary name adds to the output's: ``.<stem>.partial-<12 chars><suffix>``.
PARTIAL_EXTRA = len(".") + len(".partial-") + 12


def partial_path(final: Path, job_id: str) -> Path:
    """Where a job writes before it renames the finished file to ``final`` (so an output that
    exists is complete)."""
    return final.with_name(f".{final.stem}.partial-{job_id[-12:]}{final.suffix}")


def check_output(builder: CommandBuilder) -> None:
    """The output names a file that can be written: a file name (not ``.``, ``..`` or a
    folder) short enough for its temporary name to fit too."""
    text = builder.output_path
    name = Path(text).name
    if text.endswith(("/", os.sep)) or name in ("", ".", ".."):
        raise InvalidCommand("output", f"{text!r} must name a file, not a folder")
    size = len(name.encode("utf-8", errors="surrogateescape"))
    if size + PARTIAL_EXTRA > NAME_MAX:
        raise InvalidCommand(
            "output",
            f"the file name is {size} bytes; at most {NAME_MAX - PARTIAL_EXTRA} (the job first "
            f"writes under a temporary name {PARTIAL_EXTRA} bytes longer)",
        )
    try:
        folder_named = Path(text).is_dir()
    except OSError as exc:  # a component too long, a loop of links: never a 500
        raise InvalidCommand("output", f"cannot be used: {exc.strerror or exc}") from None
    if folder_named:
        raise InvalidCommand("output", f"{text!r} is a folder; name a file inside it")


def check_files(job: FFmpegJob, builder: CommandBuilder) -> None:
    """Refuse, before anything is queued, an input that is missing or an output we cannot write."""
    check_output(builder)
    output = Path(builder.output_path)
    check_input(job, builder)
    if job.input_format is None and Path(builder.input_paths[0]).resolve() == output.resolve():
        raise InvalidCommand("output", "must differ from the input")
    folder = output.parent
    if not folder.is_dir():
        raise InvalidCommand("output", f"folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidCommand("output", f"folder {str(folder)!r} is not writable")
    if output.exists() and not job.overwrite:
        raise InvalidCommand("output", f"{job.output!r} exists and overwrite is false")


def confine(job: FFmpegJob, roots: MediaRoots) -> FFmpegJob:
    """The job with its paths resolved inside the server's media roots (``InvalidCommand``
    naming the field otherwise); the client may not choose ``base_dir``."""
    if job.base_dir is not None:
        raise InvalidCommand("base_dir", "the server's media roots confine every path")
    if job.input_format == "lavfi":
        source = job.input  # a generator reads no file (check_input vets it)
    else:
        source = roots.resolve_input(check_path(job.input, "input"))
    output = roots.resolve_output(check_path(job.output, "output"))
    return job.model_copy(update={"input": source, "output": output})


def validate_payload(payload: JSONDict, roots: MediaRoots | None = None) -> JSONDict:
    """Enqueue-time validation: ``InvalidJob`` naming the field, or the normalised payload (with
    ``roots``, its paths resolved inside them)."""
    try:
        job = FFmpegJob.model_validate(payload)
        if roots is not None:
            job = confine(job, roots)
        check_files(job, job.builder())
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        raise errors.InvalidJob(field, first["msg"].removeprefix("Value error, ")) from None
    except InvalidCommand as exc:
        raise errors.InvalidJob(exc.field, exc.reason) from None
    data: JSONDict = job.model_dump(mode="json", exclude_none=True)
    return data
