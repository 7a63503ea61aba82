"""The orchestrator's overhead on an FFmpeg job: FFmpegProcessor wall time / raw ffmpeg wall time.

Run: ``make bench``. The same transcode (a generated 10 s 720p clip to 540p H.264) runs as a plain
``subprocess.run`` of the same argv and as a job (enqueue -> worker claims -> FFmpegProcessor with
live progress -> completed in SQLite), alternately, so drift on a shared machine hits both alike.
The medians are compared; the goal is a ratio below 1.02. Wall time on a shared 2-core machine is
noisy (about ±10 % between identical raw runs), so the CPU the orchestrator process itself spends
during the jobs is printed too, as a share of the CPU ffmpeg spends: the steadier measure.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.media import make_input  # noqa: E402

from ecosign_orchestrator.core import JobQueue, JobStatus, Registry, Worker, WorkerSettings  # noqa: E402
from ecosign_orchestrator.core.repository import SqliteRepository  # noqa: E402
from ecosign_orchestrator.ffmpeg import KIND, FFmpegJob, FFmpegProcessor, find_binaries  # noqa: E402

RUNS = 7


def job_payload(source: Path, target: Path) -> dict[str, object]:
    return {
        "input": str(source),
        "output": str(target),
        "video_codec": "libx264",
        "preset": "veryfast",
        "crf": 26,
        "scale": "960x540",
    }


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def raw(tmp: Path, source: Path, i: int) -> float:
    exe = find_binaries().ffmpeg
    argv = FFmpegJob.model_validate(job_payload(source, tmp / f"raw-{i}.mp4")).builder(exe).build()
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


async def measure(tmp: Path, source: Path) -> tuple[list[float], list[float], float]:
    registry = Registry()
    registry.register(KIND, FFmpegProcessor())
    raw_times: list[float] = []
    job_times: list[float] = []
    own_cpu = child_cpu = 0.0
    async with SqliteRepository(tmp / "jobs.db") as repo:
        await repo.migrate()
        worker = Worker(repo, registry, settings=WorkerSettings(poll_seconds=0.01))
        task = asyncio.create_task(worker.run())
        queue = JobQueue(repo, registry)
        for i in range(RUNS):
            raw_times.append(await asyncio.to_thread(raw, tmp, source, i))
            own_before, child_before = _cpu()
            started = time.perf_counter()
            job = (await queue.enqueue(KIND, job_payload(source, tmp / f"job-{i}.mp4"))).job
            async with repo.bus.subscribe() as events:
                async for event in events:
                    if event.job_id == job.id and event.type.value == "job_completed":
                        break
            job_times.append(time.perf_counter() - started)
            own_after, child_after = _cpu()
            own_cpu += own_after - own_before
            child_cpu += child_after - child_before
            assert (await repo.get(job.id)).status is JobStatus.COMPLETED
        worker.stop()
        await task
    return raw_times, job_times, own_cpu / child_cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        exe = str(find_binaries().ffmpeg)
        source = make_input(exe, tmp / "in.mp4", seconds=10, size="1280x720")
        raw_times, job_times, cpu_share = asyncio.run(measure(tmp, source))
    raw_median, job_median = statistics.median(raw_times), statistics.median(job_times)
    print(f"ffmpeg transcode, 10 s 720p -> 540p H.264 veryfast, median of {RUNS}, alternating")
    print(f"  raw ffmpeg           {raw_median:.3f} s")
    print(f"  FFmpegProcessor job  {job_median:.3f} s (enqueue to completed, progress on)")
    print(f"  ratio                {job_median / raw_median:.3f} (goal < 1.02)")
    print(f"  orchestrator CPU     {cpu_share * 100:.1f} % of ffmpeg's CPU during the jobs")


if __name__ == "__main__":
    main()
