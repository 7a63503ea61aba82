"""FFmpeg reads only inside its roots, even through a file that names other files (issue 19 §6):
an HLS playlist, a concat list or an ``ffconcat`` file inside the roots that points outside them
is refused when submitted (422 naming ``input``), when the job runs, and by ffmpeg itself."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator import ffmpeg
from ecosign_orchestrator.core import JobStatus, errors
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository import SqliteRepository
from ecosign_orchestrator.core.worker import Worker, WorkerSettings
from ecosign_orchestrator.ffmpeg.payload import FFmpegJob
from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.settings import Settings
from tests.support.api import serve_in_thread
from tests.support.media import make_input
from tests.support.waiting import wait_job

TOKEN = "references-test-token-5c0d"


def _canary(path: Path) -> None:
    """An access time far in the past: a read moves it (relatime updates atime <= mtime)."""
    os.utime(path, (1, time.time()))


def _read_since_canary(path: Path) -> bool:
    return path.stat().st_atime > 1


@pytest.fixture
def media(tmp_path: Path, ffmpeg_exe: str) -> dict[str, Any]:
    inside, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "outside"
    for folder in (inside, out, outside):
        folder.mkdir()
    secret = make_input(ffmpeg_exe, outside / "secret.mp4", seconds=1, size="64x64")
    segment = outside / "segment.ts"
    subprocess.run(
        [ffmpeg_exe, "-nostdin", "-loglevel", "error", "-y", "-i", str(secret), "-c", "copy",
         str(segment)],
        check=True,
        timeout=60,
    )  # fmt: skip
    files = {
        "play.m3u8": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n"
        f"{segment}\n#EXTINF:1.0,\n../outside/segment.ts\n#EXT-X-ENDLIST\n",
        "list.txt": f"file '{secret}'\n",
        "list.ffconcat": f"ffconcat version 1.0\nfile {secret}\n",
    }
    for name, text in files.items():
        (inside / name).write_text(text)
    control = outside / "control.bin"
    control.write_bytes(b"x")
    for path in (secret, segment, control):
        _canary(path)
    control.read_bytes()  # does this file system record reads at all?
    return {
        "roots": ffmpeg.MediaRoots.of([inside], out),
        "inside": inside,
        "out": out,
        "outside": [secret, segment],
        "names": sorted(files),
        "atime": _read_since_canary(control),
    }


def _untouched(media: dict[str, Any]) -> None:
    if media["atime"]:  # (a file system mounted noatime cannot show it)
        read = [p.name for p in media["outside"] if _read_since_canary(p)]
        assert read == [], f"read outside the roots: {read}"
    assert list(media["out"].iterdir()) == []


@pytest.mark.parametrize("name", ["play.m3u8", "list.txt", "list.ffconcat"])
def test_reference_files_are_refused_at_submission(media: dict[str, Any], name: str) -> None:
    with pytest.raises(errors.InvalidJob) as refused:
        ffmpeg.validate_payload({"input": name, "output": "o.mp4"}, roots=media["roots"])
    assert refused.value.field == "input"
    assert "not a media container" in refused.value.reason
    # the same without media roots (local use, paths confined by base_dir)
    with pytest.raises(errors.InvalidJob) as local:
        ffmpeg.validate_payload(
            {"input": name, "output": "o.mp4", "base_dir": str(media["inside"])}
        )
    assert local.value.field == "input"
    _untouched(media)


@pytest.mark.parametrize(
    "graph", ["movie=/etc/hostname", "amovie=/etc/hostname", "testsrc,metadata=file=/tmp/x"]
)
def test_lavfi_escapes_are_refused_without_media_roots_too(
    media: dict[str, Any], graph: str
) -> None:
    with pytest.raises(errors.InvalidJob) as refused:
        ffmpeg.validate_payload(
            {"input": graph, "input_format": "lavfi", "output": str(media["out"] / "o.mp4")}
        )
    assert refused.value.field == "input"


def test_ffmpeg_itself_refuses_them_with_the_jobs_own_options(
    media: dict[str, Any], ffmpeg_exe: str
) -> None:
    """The third line: ffmpeg's whitelists, as the processor passes them, refuse every one."""
    for name in media["names"]:
        job = FFmpegJob(input=str(media["inside"] / name), output=str(media["out"] / "o.ts"))
        argv = job.builder(ffmpeg_exe).build()
        assert argv[argv.index("-i") - 4 : argv.index("-i")] == list(
            ffmpeg.containers.INPUT_OPTIONS
        )
        run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        # a playlist or ffconcat file is probed and refused by the whitelist; a plain concat
        # list is not even recognised without ``-f concat``, which a job can never ask for
        refusal = "Invalid data found" if name == "list.txt" else "not on whitelist"
        assert run.returncode != 0 and refusal in run.stderr, (name, run.stderr[-300:])
    _untouched(media)


async def test_the_api_refuses_them_with_422_naming_input(
    media: dict[str, Any], tmp_path: Path
) -> None:
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(TOKEN)],
        ffmpeg_input_roots=[media["inside"]],
        ffmpeg_output_root=media["out"],
    )
    with serve_in_thread(create_app(settings, embedded_worker=False)) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            answers = [
                await client.post("/v1/ffmpeg-jobs", json={"input": name, "output": "o.mp4"})
                for name in media["names"]
            ]
    assert [a.status_code for a in answers] == [422] * 3
    assert {a.json()["errors"][0]["field"] for a in answers} == {"input"}
    _untouched(media)


@pytest.fixture
async def worker_env(tmp_path: Path, media: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    registry = Registry()
    processor = ffmpeg.FFmpegProcessor(roots=media["roots"])
    registry.register(ffmpeg.KIND, processor)
    repo = SqliteRepository(tmp_path / "jobs.db")
    async with repo:
        await repo.migrate()
        yield {"repo": repo, "queue": JobQueue(repo, registry), "registry": registry}


async def test_a_file_swapped_for_a_playlist_after_submission_is_refused_when_it_runs(
    media: dict[str, Any], worker_env: dict[str, Any], ffmpeg_exe: str
) -> None:
    clip = make_input(ffmpeg_exe, media["inside"] / "clip.mp4", seconds=1, size="64x64")
    payload = ffmpeg.validate_payload({"input": "clip.mp4", "output": "o.mp4"}, media["roots"])
    job = (await worker_env["queue"].submit(worker_env["queue"].build(ffmpeg.KIND, payload))).job
    clip.write_text((media["inside"] / "play.m3u8").read_text())  # swapped before it runs
    worker = Worker(
        worker_env["repo"],
        worker_env["registry"],
        settings=WorkerSettings(concurrency=1, poll_seconds=0.01, burst=True),
    )
    await worker.run()
    failed = await wait_job(worker_env["repo"], job.id, lambda j: j.status.is_terminal)
    assert failed.status is JobStatus.FAILED and failed.last_error is not None
    assert "not a media container" in failed.last_error.message
    _untouched(media)
