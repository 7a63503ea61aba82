"""``FFmpegProcessor``: runs one ffmpeg job as an asyncio subprocess, with live progress.

- writes to a temporary name and renames on success, so an output file that exists is complete;
- keeps the last lines of stderr for error reports and classifies failures (missing or invalid
  input, unknown encoder, bad option: fatal with ffmpeg's own reason; killed by a signal or out of
  time: transient);
- on cancellation or timeout: ``q`` on stdin, then SIGTERM, then SIGKILL after a grace period;
  the process is always reaped (no zombie) and the partial output removed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path

import pydantic

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.job import JobError, StepStatus
from ecosign_orchestrator.core.types import JSONValue
from ecosign_orchestrator.ffmpeg.binaries import Binaries, find_binaries
from ecosign_orchestrator.ffmpeg.command import InvalidCommand
from ecosign_orchestrator.ffmpeg.confinement import MediaRoots
from ecosign_orchestrator.ffmpeg.containers import INPUT_OPTIONS
from ecosign_orchestrator.ffmpeg.payload import (
    FFmpegJob,
    check_input,
    check_output,
    confine,
    partial_path,
)
from ecosign_orchestrator.ffmpeg.progress import (
    ProgressParser,
    ProgressSnapshot,
    parse_duration_line,
)

logger = logging.getLogger(__name__)

KIND = "ffmpeg.transcode"
STEP = "transcode"

#: stderr fragments that mean retrying cannot help.
FATAL_MARKERS = (
    "No such file or directory",
    "Invalid data found when processing input",
    "Unknown encoder",
    "Encoder not found",
    "Unknown decoder",
    "Unrecognized option",
    "Option not found",
    "Error splitting the argument list",
    "Invalid argument",
    "does not contain any stream",
    "moov atom not found",
    "Permission denied",
    "Error opening input",
    "Error opening output",
)
#: stderr fragments of conditions that may pass.
TRANSIENT_MARKERS = (
    "No space left on device",
    "Resource temporarily unavailable",
    "Cannot allocate memory",
    "Connection refused",
    "Connection timed out",
)


def classify_failure(
    returncode: int, stderr_tail: list[str], *, rename: tuple[str, str] | None = None
) -> errors.ProcessorError:
    """The error for a failed run: ffmpeg's own reason, transient or fatal.

    ``rename`` replaces the temporary output name by the real one in the messages.
    """
    lines = [line.strip() for line in stderr_tail if line.strip()]
    if rename is not None:
        lines = [line.replace(*rename) for line in lines]
    reason = " | ".join(lines[-3:]) or f"ffmpeg exited with status {returncode}"
    details = {"returncode": returncode, "stderr": lines[-10:]}
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return errors.TransientError(f"ffmpeg killed by {name}: {reason}", details=details)
    text = "\n".join(lines)
    if any(marker in text for marker in TRANSIENT_MARKERS):
        return errors.TransientError(reason, details=details)
    fatal = [line for line in lines if any(m in line for m in FATAL_MARKERS)]
    return errors.FatalError(" | ".join(dict.fromkeys(fatal[-3:])) or reason, details=details)


async def probe_duration(ffprobe: Path, source: str) -> float | None:
    """Container duration in seconds via ffprobe (None when unknown, e.g. a raw stream)."""
    proc = await asyncio.create_subprocess_exec(
        str(ffprobe),
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "json",
        *INPUT_OPTIONS,  # the same whitelists as the job's ffmpeg: no file but this one is read
        "--",
        source,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, _ = await proc.communicate()
    try:
        value = json.loads(out or b"{}").get("format", {}).get("duration")
        return float(value) if value not in (None, "N/A") else None
    except (ValueError, AttributeError):
        return None


class FFmpegProcessor:
    """The core ``Processor`` for kind ``ffmpeg.transcode``."""

    def __init__(
        self,
        binaries: Binaries | None = None,
        *,
        roots: MediaRoots | None = None,
        grace_seconds: float = 0.5,
        stderr_lines: int = 40,
    ) -> None:
        self._binaries = binaries
        #: With media roots, every job's paths are confined again when it runs (a symlink
        #: swapped after the enqueue-time check does not escape).
        self.roots = roots
        self.grace_seconds = grace_seconds
        self.stderr_lines = stderr_lines

    @property
    def binaries(self) -> Binaries:
        """ffmpeg/ffprobe, located on first use."""
        if self._binaries is None:
            self._binaries = find_binaries()
        return self._binaries

    async def __call__(self, ctx: JobContext) -> JSONValue:
        try:
            job = FFmpegJob.model_validate(ctx.payload)
            if self.roots is not None:
                job = confine(job, self.roots)
            builder = job.builder(self.binaries.ffmpeg)
            check_input(job, builder)  # again: the file may have changed since submission
            check_output(builder)
        except (pydantic.ValidationError, InvalidCommand) as exc:
            raise errors.FatalError(f"invalid ffmpeg job: {exc}") from None
        final = Path(builder.output_path)
        partial = partial_path(final, ctx.job.id)
        argv = builder.with_output(str(partial)).build()
        duration = None
        if self.binaries.ffprobe is not None and job.input_format is None:
            duration = await probe_duration(self.binaries.ffprobe, builder.input_paths[0])
        started = time.monotonic()
        try:
            last = await self._run(ctx, argv, duration, rename=(str(partial), str(final)))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
            raise
        os.replace(partial, final)
        elapsed = time.monotonic() - started
        await ctx.step_succeeded(STEP, f"wrote {final.name} in {elapsed:.2f}s")
        return {
            "output": str(final),
            "duration": duration if duration is not None else last.out_time,
            "out_time": last.out_time,
            "frames": last.frame,
            "size": final.stat().st_size,
            "elapsed": round(elapsed, 3),
        }

    async def _run(
        self,
        ctx: JobContext,
        argv: list[str],
        duration: float | None,
        *,
        rename: tuple[str, str],
    ) -> ProgressSnapshot:
        ctx.ensure_lease()  # a worker frozen past its lease starts nothing
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # our signals reach ffmpeg, the terminal's do not
        )
        command: list[JSONValue] = list(argv)
        await ctx.record_step(
            STEP,
            StepStatus.RUNNING,
            message=f"ffmpeg pid {proc.pid}",
            data={"pid": proc.pid, "argv": command},
        )
        parser = ProgressParser(duration)
        tail: collections.deque[str] = collections.deque(maxlen=self.stderr_lines)
        last = ProgressSnapshot()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_stderr(proc, parser, tail))
                last = await self._read_progress(ctx, proc, parser)
            returncode = await proc.wait()
        except BaseException:
            await asyncio.shield(self._terminate(proc))
            raise
        if returncode != 0:
            error = classify_failure(returncode, list(tail), rename=rename)
            await ctx.step_failed(
                STEP,
                JobError.from_exception(error),
                retrying=isinstance(error, errors.TransientError),
            )
            raise error
        return last

    async def _read_progress(
        self, ctx: JobContext, proc: asyncio.subprocess.Process, parser: ProgressParser
    ) -> ProgressSnapshot:
        assert proc.stdout is not None
        last = ProgressSnapshot()
        best = 0.0
        while chunk := await proc.stdout.read(4096):
            for snap in parser.feed(chunk):
                last = snap
                fraction = None
                if snap.percent is not None:
                    # out_time can step back a little when audio and video interleave; a
                    # progress bar must not.
                    best = fraction = max(best, snap.percent / 100)
                await ctx.progress(fraction, snap.describe())
        return last

    async def _read_stderr(
        self, proc: asyncio.subprocess.Process, parser: ProgressParser, tail: collections.deque[str]
    ) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip()
            tail.append(line)
            if parser.duration is None and "Duration:" in line:
                parser.duration = parse_duration_line(line)

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        """``q``, then SIGTERM, then SIGKILL, each after the grace period; always reap."""
        if proc.returncode is not None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.write(b"q")  # ignored under -nostdin; harmless otherwise
                proc.stdin.close()
        for send in (proc.terminate, proc.kill):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), self.grace_seconds)
                return
            with contextlib.suppress(ProcessLookupError):
                send()
        await proc.wait()
