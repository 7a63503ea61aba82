"""CommandBuilder: argv shape, and hostile file names rejected or handled safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.ffmpeg import CommandBuilder, InvalidCommand, validate_payload
from ecosign_orchestrator.ffmpeg.command import BASE_OPTIONS
from tests.support.media import mp4_header_only


def test_argv_is_a_list_with_the_base_options_first() -> None:
    argv = (
        CommandBuilder("/usr/bin/ffmpeg")
        .input("in put.mp4")
        .output("out 'q' \"d\" ñ.mp4")
        .video_codec("libx264")
        .audio_codec("aac")
        .scale(640, -1)
        .crf(23)
        .preset("veryfast")
        .build()
    )
    assert argv[: 1 + len(BASE_OPTIONS)] == ["/usr/bin/ffmpeg", *BASE_OPTIONS]
    assert argv[1:6] == ["-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1"]
    assert (
        "in put.mp4" in argv and argv[-1] == "out 'q' \"d\" ñ.mp4"
    )  # one argument each, no quoting
    assert argv[argv.index("-vf") + 1] == "scale=640:-1"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("-y.mp4", "starts with '-'"),
        ("-i", "starts with '-'"),
        ("concat:a.mp4|b.mp4", "protocol 'concat'"),
        ("http://example.com/x.mp4", "protocol 'http'"),
        ("pipe:0", "protocol 'pipe'"),
        ("file:/etc/passwd", "protocol 'file'"),
        ("", "empty"),
    ],
)
def test_hostile_inputs_are_rejected(name: str, reason: str) -> None:
    with pytest.raises(InvalidCommand, match=reason):
        CommandBuilder().input(name)
    with pytest.raises(InvalidCommand, match=reason):
        CommandBuilder().input("ok.mp4").output(name)


def test_protocols_only_when_explicitly_allowed() -> None:
    argv = (
        CommandBuilder()
        .input("concat:a.ts|b.ts", allow_protocols=["concat"])
        .output("o.ts")
        .build()
    )
    assert "concat:a.ts|b.ts" in argv


def test_base_dir_confines_paths_against_dotdot_and_symlinks(tmp_path: Path) -> None:
    base = tmp_path / "media"
    base.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    os.symlink(tmp_path / "secret.mp4", base / "link.mp4")
    builder = CommandBuilder(base_dir=base)
    with pytest.raises(InvalidCommand, match="escapes the base directory"):
        builder.input("../secret.mp4")
    with pytest.raises(InvalidCommand, match="escapes the base directory"):
        builder.input("link.mp4")
    with pytest.raises(InvalidCommand, match="escapes the base directory"):
        builder.input(str(tmp_path / "secret.mp4"))
    (base / "ok dir").mkdir()
    argv = CommandBuilder(base_dir=base).input("ok dir/in.mp4").output("ok dir/out.mp4").build()
    assert argv[-1] == str(base.resolve() / "ok dir" / "out.mp4")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: b.crf(52), "crf"),
        (lambda b: b.preset("ludicrous"), "preset"),
        (lambda b: b.video_codec("-x"), "video_codec"),
        (lambda b: b.video_codec("libx264 -y"), "video_codec"),
        (lambda b: b.scale(0, 10), "scale"),
    ],
)
def test_typed_options_refuse_bad_values(call: object, field: str) -> None:
    builder = CommandBuilder().input("a.mp4").output("b.mp4")
    with pytest.raises(InvalidCommand) as info:
        call(builder)  # type: ignore[operator]
    assert info.value.field == field


def test_payload_validation_names_the_field(tmp_path: Path) -> None:
    source = mp4_header_only(tmp_path / "in.mp4")
    ok = validate_payload({"input": str(source), "output": str(tmp_path / "o.mp4")})
    assert ok["overwrite"] is True
    cases = [
        ({"input": str(tmp_path / "missing.mp4"), "output": str(tmp_path / "o.mp4")}, "input"),
        ({"input": str(source), "output": str(tmp_path / "no-such-dir" / "o.mp4")}, "output"),
        ({"input": str(source), "output": str(source)}, "output"),
        ({"input": str(source), "output": str(tmp_path / "o.mp4"), "bogus": 1}, "bogus"),
        ({"input": str(source), "output": str(tmp_path / "o.mp4"), "crf": 99}, "crf"),
        ({"input": str(source), "output": str(tmp_path / "o.mp4"), "scale": "big"}, "scale"),
        ({"input": "-evil.mp4", "output": str(tmp_path / "o.mp4")}, "input"),
    ]
    for payload, field in cases:
        with pytest.raises(errors.InvalidJob) as info:
            validate_payload(payload)
        assert info.value.field == field, payload
    (tmp_path / "ro").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root can write anywhere
        with pytest.raises(errors.InvalidJob, match="not writable"):
            validate_payload({"input": str(source), "output": str(tmp_path / "ro" / "o.mp4")})
