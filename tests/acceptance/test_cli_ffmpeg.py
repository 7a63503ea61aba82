"""``ecosign-orchestrator ffmpeg run --wait`` as a user runs it; Ctrl-C cancels job and ffmpeg."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.repository import SqliteRepository
from tests.support.media import make_input
from tests.support.procs import cli, cli_env, diagnose, eventually, start_cli

pytestmark = pytest.mark.ffmpeg


def test_run_wait_transcodes_and_reports_json(tmp_path: Path, ffmpeg_exe: str) -> None:
    source = make_input(ffmpeg_exe, tmp_path / "in.mp4", seconds=2)
    env = cli_env(f"sqlite:///{tmp_path}/jobs.db")
    result = cli(
        "ffmpeg",
        "run",
        str(source),
        str(tmp_path / "o u t.mp4"),
        "--scale",
        "320x180",
        "--crf",
        "30",
        "--wait",
        "--json",
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "completed" and (tmp_path / "o u t.mp4").exists()


def test_run_refuses_a_hostile_name_with_exit_2(tmp_path: Path) -> None:
    env = cli_env(f"sqlite:///{tmp_path}/jobs.db")
    result = cli("ffmpeg", "run", "concat:a.mp4|b.mp4", str(tmp_path / "o.mp4"), env=env)
    assert result.returncode == 2 and "protocol 'concat'" in result.stderr


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGHUP, 129)],
)
async def test_ctrl_c_or_a_stop_signal_cancels_the_job_and_kills_ffmpeg(
    tmp_path: Path, long_clip: Path, sig: int, code: int
) -> None:
    source = long_clip
    env = cli_env(f"sqlite:///{tmp_path}/jobs.db")
    target = tmp_path / "never.mp4"
    argv = ["ffmpeg", "run", str(source), str(target), "--preset", "veryslow", "--wait"]
    async with SqliteRepository(tmp_path / "jobs.db") as repo:
        await repo.migrate()  # idempotent: the CLI migrates the same file too
        proc = start_cli(env, *argv, log=tmp_path / "cli.log")
        try:

            async def encoding() -> bool:
                jobs = await repo.list_jobs()
                return bool(jobs) and jobs[0].progress.fraction is not None

            await eventually(encoding, timeout=60, what="ffmpeg progress")
            [job] = await repo.list_jobs()
            step = job.step("transcode")
            assert step is not None
            pid = step.data["pid"]
            asked = time.monotonic()
            proc.send_signal(sig)
            try:
                exit_code = proc.wait(15)
            except subprocess.TimeoutExpired:
                # Say why: a signal the command blocks or ignores, or where it is stuck.
                raise AssertionError(diagnose(proc.pid)) from None
            assert exit_code == code
            final = await repo.get(job.id)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert final.status is JobStatus.CANCELLED
    assert time.monotonic() - asked < 5
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()
    assert not target.exists() and not list(tmp_path.glob(".never.partial-*"))
