"""FFmpeg jobs read and write only inside the server's media roots."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ecosign_orchestrator import ffmpeg
from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service.api import create_app
from ecosign_orchestrator.service.settings import Settings
from tests.support.api import serve_in_thread
from tests.support.media import mp4_header_only

TOKEN = "confinement-test-token-7d2c1e9a"


@pytest.fixture
def roots(tmp_path: Path) -> ffmpeg.MediaRoots:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    mp4_header_only(tmp_path / "in" / "clip.mp4")
    mp4_header_only(tmp_path / "secret.mp4")  # outside the roots
    (tmp_path / "in" / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    return ffmpeg.MediaRoots.of([tmp_path / "in"], tmp_path / "out")


def refused(roots: ffmpeg.MediaRoots, **payload: object) -> errors.InvalidJob:
    with pytest.raises(errors.InvalidJob) as info:
        ffmpeg.validate_payload(dict(payload), roots=roots)
    return info.value


def test_paths_inside_the_roots_are_resolved_and_accepted(roots: ffmpeg.MediaRoots) -> None:
    accepted = ffmpeg.validate_payload({"input": "clip.mp4", "output": "small.mp4"}, roots=roots)
    assert accepted["input"] == str(roots.inputs[0] / "clip.mp4")
    assert accepted["output"] == str(roots.output / "small.mp4")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"input": "/etc/hostname", "output": "o.mp4"}, "input"),  # a system file
        ({"input": "clip.mp4", "output": str(Path.home() / "o.mp4")}, "output"),  # anywhere
        ({"input": "../secret.mp4", "output": "o.mp4"}, "input"),  # climbing out
        ({"input": "link.mp4", "output": "o.mp4"}, "input"),  # a symlink pointing outside
        ({"input": "clip.mp4", "output": "o.mp4", "base_dir": "/"}, "base_dir"),  # client's choice
        (
            {"input": "movie=/etc/hostname", "input_format": "lavfi", "output": "o.mp4"},
            "input",
        ),
        (
            {
                "input": "testsrc,metadata=mode=print:file=/tmp/x",
                "input_format": "lavfi",
                "output": "o.mp4",
            },
            "input",
        ),
        ({"input": "clip.mp4\x00", "output": "o.mp4"}, "input"),
        ({"input": "a" * 5000, "output": "o.mp4"}, "input"),
        ({"input": "concat:clip.mp4|clip.mp4", "output": "o.mp4"}, "input"),
    ],
)
def test_escapes_are_refused_naming_the_field(
    roots: ffmpeg.MediaRoots, payload: dict[str, object], field: str
) -> None:
    assert refused(roots, **payload).field == field


def test_a_vetted_generator_is_allowed(roots: ffmpeg.MediaRoots) -> None:
    payload = {"input": "testsrc=duration=1:size=64x64", "input_format": "lavfi", "output": "t.mp4"}
    assert ffmpeg.validate_payload(payload, roots=roots)["input"].startswith("testsrc=")


async def test_the_api_refuses_ffmpeg_jobs_without_media_roots(tmp_path: Path) -> None:
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"), api_tokens=[SecretStr(TOKEN)]
    )
    source = mp4_header_only(tmp_path / "in.mp4")
    with serve_in_thread(create_app(settings, embedded_worker=False)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            answer = await client.post(
                "/v1/ffmpeg-jobs", json={"input": str(source), "output": str(tmp_path / "o.mp4")}
            )
    assert answer.status_code == 403
    assert "ECOSIGN_ORCH_FFMPEG_INPUT_ROOTS" in answer.json()["detail"]
    assert not os.path.exists(tmp_path / "o.mp4")


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"input": "sine=f=440", "input_format": "lavfi"}, "input", "give its duration"),
        ({"input": "anullsrc", "input_format": "lavfi"}, "input", "give its duration"),
        (
            {"input": "testsrc=size=16000x16000:duration=1", "input_format": "lavfi"},
            "input",
            "each side must be 1 to 4096",
        ),
        ({"input": "testsrc=duration=100000", "input_format": "lavfi"}, "input", "at most 600"),
        ({"input": "testsrc=d=1:rate=100000", "input_format": "lavfi"}, "input", "at most 120"),
        ({"input": "testsrc=5", "input_format": "lavfi"}, "input", "as key=value"),
        ({"input": "testsrc=d=1:d=2", "input_format": "lavfi"}, "input", "given twice"),
        ({"input": "testsrc=duration=\uff11", "input_format": "lavfi"}, "input", "a number"),
        ({"input": "testsrc=duration=1\n", "input_format": "lavfi"}, "input", "a number"),
        ({"input": "clip.mp4", "output": "x" * 300 + ".mp4"}, "output", "at most 233"),
        ({"input": "clip.mp4", "output": "x" * 240 + ".mp4"}, "output", "at most 233"),
        ({"input": "clip.mp4", "output": "."}, "output", ""),
        ({"input": "clip.mp4", "output": "sub"}, "output", "is a folder"),
        ({"input": "clip.mp4", "output": "sub/"}, "output", "folder"),
        ({"input": "clip.mp4", "output": "o.mp4", "scale": "6\uff140x360"}, "scale", "WxH"),
        ({"input": "clip.mp4", "output": "o.mp4", "scale": "640x360\n"}, "scale", "WxH"),
        ({"input": "clip.mp4", "output": "o.mp4", "video_codec": "x264\n"}, "video_codec", ""),
    ],
)
def test_hostile_parameters_are_refused_naming_the_field(
    roots: ffmpeg.MediaRoots, payload: dict[str, object], field: str, says: str
) -> None:
    (roots.output / "sub").mkdir(exist_ok=True)
    refusal = refused(roots, **{"output": "t.mp4", **payload})
    assert refusal.field == field
    assert says in refusal.reason


def test_bounded_generators_and_plain_names_are_accepted(roots: ffmpeg.MediaRoots) -> None:
    for graph in ("sine=f=440:d=2", "testsrc2=size=1280x720:rate=30:duration=5", "anullsrc=d=1"):
        payload = {"input": graph, "input_format": "lavfi", "output": "x" * 229 + ".mp4"}
        assert ffmpeg.validate_payload(payload, roots=roots)["input"] == graph


async def test_an_overlong_output_name_is_a_422_not_a_500(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    mp4_header_only(tmp_path / "in" / "clip.mp4")
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path}/jobs.db"),
        api_tokens=[SecretStr(TOKEN)],
        ffmpeg_input_roots=[tmp_path / "in"],
        ffmpeg_output_root=tmp_path / "out",
    )
    with serve_in_thread(create_app(settings, embedded_worker=False)) as url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            answer = await client.post(
                "/v1/ffmpeg-jobs", json={"input": "clip.mp4", "output": "n" * 300 + ".mp4"}
            )
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == "output"
