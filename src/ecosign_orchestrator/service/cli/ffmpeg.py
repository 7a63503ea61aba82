"""``ecosign-orchestrator ffmpeg run``: enqueue a transcode and follow it with a progress bar."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.tail import tail
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import app, console, emit_json, example, run, state

ffmpeg_app = typer.Typer(help="FFmpeg transcodes, with live progress.", no_args_is_help=True)
app.add_typer(ffmpeg_app, name="ffmpeg")


@ffmpeg_app.command(
    "run",
    epilog=example(
        "ecosign-orchestrator ffmpeg run in.mp4 out.mp4 --scale 1280x720 --crf 23 --wait"
    ),
)
def ffmpeg_run(
    input: Annotated[str, typer.Argument(metavar="INPUT", help="Input file.")],
    output: Annotated[
        str,
        typer.Argument(metavar="OUTPUT", help="Output file (written complete or not at all)."),
    ],
    video_codec: Annotated[str | None, typer.Option(metavar="CODEC", help="e.g. libx264.")] = None,
    audio_codec: Annotated[str | None, typer.Option(metavar="CODEC", help="e.g. aac.")] = None,
    scale: Annotated[
        str | None, typer.Option(metavar="WxH", help="e.g. 1280x720 or -1x720.")
    ] = None,
    crf: Annotated[
        int | None, typer.Option(min=0, max=51, metavar="N", help="Quality, 0-51.")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(metavar="NAME", help="x264 preset, e.g. veryfast.")
    ] = None,
    base_dir: Annotated[
        Path | None, typer.Option(metavar="DIR", help="Confine paths to this folder.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow with a progress bar.")] = False,
    worker: Annotated[
        bool, typer.Option(help="With --wait, run the job in this process (else any worker).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Enqueue an FFmpeg transcode; with --wait show live progress (Ctrl-C cancels it)."""
    payload: dict[str, Any] = {"input": input, "output": output}
    for key, value in (
        ("video_codec", video_codec),
        ("audio_codec", audio_codec),
        ("scale", scale),
        ("crf", crf),
        ("preset", preset),
        ("base_dir", None if base_dir is None else str(base_dir)),
    ):
        if value is not None:
            payload[key] = value

    from ecosign_orchestrator import ffmpeg

    async def go() -> int:
        settings = state.settings
        async with (
            wiring.runtime(settings, state.apps) as rt,
            wiring.open_repository(settings) as repository,
        ):
            queue = wiring.build_queue(repository, rt.registry)
            job = (await queue.enqueue(ffmpeg.KIND, payload)).job
            if not wait:
                if as_json:
                    emit_json(job.to_json())
                else:
                    console.print(f"enqueued ffmpeg job [bold]{job.id}[/]")
                return 0
            if sys.stdout.isatty():
                logging.getLogger().setLevel(logging.WARNING)  # keep the bar readable
            embedded = None
            if worker:
                embedded = wiring.build_worker(settings, repository, rt, kinds=[ffmpeg.KIND])
                # Short heartbeats: a Ctrl-C cancel reaches the running ffmpeg quickly.
                embedded.settings = dataclasses.replace(
                    embedded.settings, heartbeat_seconds=0.25, poll_seconds=0.05
                )
            # SIGTERM and SIGHUP (a closed terminal, a process manager) stop it as Ctrl-C does:
            # the job is cancelled, ffmpeg killed, the partial file removed.
            main, loop = asyncio.current_task(), asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, _stop, sig, main, received)
            final = await follow_with_bar(repository, job.id, embedded)
            if as_json:
                emit_json(final.to_json())
            else:
                _print_outcome(final)
            return {"completed": 0, "cancelled": 130}.get(final.status.value, 1)

    received: list[int] = []
    try:
        code = run(go)
    except KeyboardInterrupt:
        code = 130
    except asyncio.CancelledError:  # stopped by SIGTERM or SIGHUP, cleaned up as on Ctrl-C
        code = 128 + (received[0] if received else signal.SIGTERM)
    raise typer.Exit(code)


def _stop(sig: int, task: asyncio.Task[Any] | None, received: list[int]) -> None:
    received.append(sig)
    if task is not None:
        task.cancel()


def _print_outcome(job: Job) -> None:
    if job.status.value == "completed" and isinstance(job.result, dict):
        console.print(f"[green]done[/]: {job.result.get('output')} ({job.result.get('elapsed')}s)")
    elif job.last_error is not None:
        console.print(f"[red]{job.status.value}[/]: {job.last_error.message}")
    else:
        console.print(job.status.value)


async def follow_with_bar(repository: JobRepository, job_id: JobId, embedded: Any | None) -> Job:
    """Show the job's progress until it ends; cancel it on Ctrl-C."""
    task = asyncio.create_task(embedded.run()) if embedded is not None else None
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, disable=not sys.stdout.isatty()) as bar:
            handle = bar.add_task("ffmpeg", total=100, detail="queued")
            try:
                job = await _poll(repository, job_id, bar, handle)
            except asyncio.CancelledError:
                bar.update(handle, detail="cancelling")
                job = await asyncio.shield(_cancel(repository, job_id))
                raise
            return job
    finally:
        if embedded is not None and task is not None:
            embedded.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)


async def _poll(repository: JobRepository, job_id: JobId, bar: Progress, handle: Any) -> Job:
    """Redraw on each of the job's events and every 0.2 s (progress is not an event)."""
    async for _ in tail(repository, job_id=job_id, idle_seconds=0.2):
        job = await repository.get(job_id)
        fraction = job.progress.fraction
        bar.update(
            handle,
            completed=None if fraction is None else fraction * 100,
            detail=job.progress.message or job.status.value,
        )
        if job.status.is_terminal:
            return job
    raise AssertionError("unreachable: a tail without until_end never ends")


async def _cancel(repository: JobRepository, job_id: JobId) -> Job:
    """Cancel, then wait (15 s at most) for the worker to stop the job."""
    start = await repository.last_event_id()
    await repository.cancel(job_id)
    async with asyncio.timeout(15):
        async for _ in tail(repository, job_id=job_id, after=start, until_end=True):
            pass
    return await repository.get(job_id)
