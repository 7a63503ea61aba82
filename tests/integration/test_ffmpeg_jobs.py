"""FFmpeg jobs with a real ffmpeg on inputs generated from lavfi sources."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ecosign_orchestrator.core import (
    JobQueue,
    JobStatus,
    Registry,
    RetryPolicy,
    Worker,
    WorkerSettings,
)
from ecosign_orchestrator.core.repository import SqliteRepository
from ecosign_orchestrator.ffmpeg import KIND, FFmpegProcessor, validate_payload
from ecosign_orchestrator.ffmpeg.progress import parse_duration_line
from tests.support.media import MP4_HEADER, make_input
from tests.support.waiting import wait_status

pytestmark = pytest.mark.ffmpeg


def media_duration(ffmpeg: str, path: Path) -> float | None:
    probe = subprocess.run(
        [ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True, timeout=30
    )
    return next((d for line in probe.stderr.splitlines() if (d := parse_duration_line(line))), None)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    registry = Registry()
    registry.register(
        KIND,
        FFmpegProcessor(),
        retry=RetryPolicy(max_attempts=2, base_seconds=0.01),
        validate=validate_payload,
    )
    repo = SqliteRepository(tmp_path / "jobs.db")
    async with repo:
        await repo.migrate()
        progress: list[float | None] = []
        original = repo.save_progress

        async def spy(job_id, token, p):  # type: ignore[no-untyped-def]
            progress.append(p.fraction)
            await original(job_id, token, p)

        repo.save_progress = spy  # type: ignore[method-assign]
        worker = Worker(
            repo,
            registry,
            settings=WorkerSettings(
                poll_seconds=0.01, heartbeat_seconds=0.1, progress_seconds=0.05
            ),
            rng=random.Random(0),
        )
        task = asyncio.create_task(worker.run())
        try:
            yield {
                "repo": repo,
                "queue": JobQueue(repo, registry),
                "progress": progress,
                "dir": tmp_path,
            }
        finally:
            worker.stop()
            await task


async def test_transcode_reports_progress_and_produces_a_playable_output(
    env: dict[str, Any], ffmpeg_exe: str
) -> None:
    source = make_input(ffmpeg_exe, env["dir"] / "in put ñ.mp4", seconds=10, size="1280x720")
    target = env["dir"] / "out 'quoted' ✓.mp4"
    job = (
        await env["queue"].enqueue(
            KIND,
            {
                "input": str(source),
                "output": str(target),
                "video_codec": "libx264",
                "preset": "medium",
                "crf": 28,
                "scale": "960x540",
                "stats_period": 0.1,
            },
        )
    ).job
    done = await wait_status(
        env["repo"], job.id, JobStatus.COMPLETED, JobStatus.FAILED, timeout=120
    )
    assert done.status is JobStatus.COMPLETED, done.last_error
    fractions = [f for f in env["progress"] if f is not None]
    assert len(fractions) >= 4 and fractions == sorted(fractions) and len(set(fractions)) >= 4
    assert target.exists() and not list(env["dir"].glob(".*partial*"))
    duration = media_duration(ffmpeg_exe, target)
    assert duration is not None and abs(duration - 10) / 10 < 0.05
    assert done.result["output"] == str(target)
    assert "%" in done.progress.message or done.progress.fraction == 1.0


async def test_cancel_kills_ffmpeg_quickly_and_removes_the_partial_output(
    env: dict[str, Any], long_clip: Path
) -> None:
    source = long_clip
    target = env["dir"] / "never.mp4"
    job = (
        await env["queue"].enqueue(
            KIND,
            {
                "input": str(source),
                "output": str(target),
                "video_codec": "libx264",
                "preset": "veryslow",
                "stats_period": 0.1,
            },
        )
    ).job

    async def has_pid() -> Any:
        current = await env["repo"].get(job.id)
        step = current.step("transcode")
        return step.data.get("pid") if step and current.progress.fraction else None

    deadline = time.monotonic() + 60
    while (pid := await has_pid()) is None:
        assert time.monotonic() < deadline, "ffmpeg never reported progress"
        await asyncio.sleep(0.05)
    assert list(env["dir"].glob(".never.partial-*.mp4")), "ffmpeg is writing a partial file"
    asked = time.monotonic()
    await env["repo"].cancel(job.id)
    cancelled = await wait_status(env["repo"], job.id, JobStatus.CANCELLED, timeout=10)
    assert time.monotonic() - asked < 2.0
    assert not _alive(pid), "the ffmpeg process is gone (reaped, not a zombie)"
    assert not target.exists() and not list(env["dir"].glob(".never.partial-*"))
    assert cancelled.attempts == 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


async def test_corrupt_input_fails_at_once_with_ffmpegs_reason(env: dict[str, Any]) -> None:
    corrupt = env["dir"] / "corrupt.mp4"  # an MP4 header, then noise: accepted, unreadable
    corrupt.write_bytes(MP4_HEADER + os.urandom(64 * 1024))
    job = (
        await env["queue"].enqueue(
            KIND, {"input": str(corrupt), "output": str(env["dir"] / "o.mp4")}
        )
    ).job
    failed = await wait_status(env["repo"], job.id, JobStatus.FAILED, timeout=60)
    assert failed.attempts == 1 and failed.last_error is not None
    assert not failed.last_error.transient
    assert "Invalid data found when processing input" in failed.last_error.message
    assert not (env["dir"] / "o.mp4").exists()


async def test_unknown_encoder_is_fatal_with_the_reason(
    env: dict[str, Any], ffmpeg_exe: str
) -> None:
    source = make_input(ffmpeg_exe, env["dir"] / "in.mp4", seconds=1)
    job = (
        await env["queue"].enqueue(
            KIND,
            {
                "input": str(source),
                "output": str(env["dir"] / "o.mp4"),
                "video_codec": "nosuchcodec",
            },
        )
    ).job
    failed = await wait_status(env["repo"], job.id, JobStatus.FAILED, timeout=60)
    assert failed.attempts == 1 and failed.last_error is not None
    assert "nosuchcodec" in failed.last_error.message


async def test_hostile_names_are_refused_at_enqueue(env: dict[str, Any], ffmpeg_exe: str) -> None:
    base = env["dir"] / "media"
    base.mkdir()
    source = make_input(ffmpeg_exe, base / "in.mp4", seconds=1)
    for payload in (
        {"input": "-i", "output": str(base / "o.mp4")},
        {"input": "concat:a|b", "output": str(base / "o.mp4")},
        {"input": str(source), "output": "../escape.mp4", "base_dir": str(base)},
    ):
        with pytest.raises(Exception, match=r"starts with|protocol|escapes"):
            await env["queue"].enqueue(KIND, payload)
    assert await env["repo"].list_jobs() == []


async def test_a_run_out_of_time_is_killed_cleaned_up_and_retried(
    env: dict[str, Any], long_clip: Path
) -> None:
    source = long_clip
    target = env["dir"] / "late.mp4"
    payload = {"input": str(source), "output": str(target), "preset": "veryslow"}
    job = (await env["queue"].enqueue(KIND, payload, timeout=1.0, max_attempts=2)).job
    failed = await wait_status(env["repo"], job.id, JobStatus.FAILED, timeout=60)
    assert failed.attempts == 2 and failed.last_error is not None
    assert failed.last_error.type == "JobTimeout" and failed.last_error.transient
    events = [e.type.value for e in await env["repo"].events(job_id=job.id)]
    assert events.count("job_retrying") == 1
    step = failed.step("transcode")
    assert step is not None
    assert not _alive(int(step.data["pid"]))  # type: ignore[call-overload]
    assert not target.exists() and not list(env["dir"].glob(".late.partial-*"))
