"""The -progress parser on the real reference capture, split anywhere, and on odd values."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ecosign_orchestrator.ffmpeg.progress import ProgressParser, parse_clock, parse_duration_line

#: A verbatim copy of shared/reference/ffmpeg-progress-capture.txt (a real ffmpeg 5.1 run).
CAPTURE = Path(__file__).resolve().parent / "data" / "ffmpeg-progress-capture.txt"


def capture_blocks() -> tuple[str, str]:
    """The two captures' stdout (annotations and the ffprobe part removed)."""
    text = CAPTURE.read_text()
    body = text.split("# === ffprobe")[0]
    parts = body.split("# === Capture 2")
    first, second = (
        "\n".join(line for line in part.splitlines() if line and not line.startswith("#")) + "\n"
        for part in parts
    )
    return first, second


def test_fast_capture_two_blocks_with_na_values() -> None:
    first, _ = capture_blocks()
    snaps = ProgressParser(duration=5.0).feed(first)
    assert len(snaps) == 2
    assert snaps[0].bitrate_kbits is None and snaps[0].speed is None and snaps[0].out_time == 0
    assert snaps[1].ended and snaps[1].frame == 125 and snaps[1].speed == 25.9
    assert snaps[1].out_time == 4.880078  # out_time_us, not out_time_ms/1000
    assert snaps[1].bitrate_kbits == 44.7 and snaps[1].total_size == 27238
    assert snaps[1].percent == 100.0 and snaps[1].eta == 0.0


def test_realtime_capture_is_monotonic_with_percent_and_eta() -> None:
    _, second = capture_blocks()
    snaps = ProgressParser(duration=5.0).feed(second)
    assert len(snaps) == 11 and snaps[-1].ended and not any(s.ended for s in snaps[:-1])
    times = [s.out_time for s in snaps]
    assert times == sorted(times)  # type: ignore[type-var]
    assert snaps[0].speed == 0.0 and snaps[2].speed == 0.252  # "speed=   0x" and padded values
    middle = snaps[5]
    assert middle.percent is not None and abs(middle.percent - 1.764717 / 5 * 100) < 1e-6
    assert middle.eta is not None and abs(middle.eta - (5 - 1.764717) / 0.7) < 1e-6
    assert "%" in middle.describe() and "ETA" in middle.describe()


def test_unknown_duration_reports_time_and_speed_without_percent() -> None:
    _, second = capture_blocks()
    snaps = ProgressParser(duration=None).feed(second)
    assert all(s.percent is None and s.eta is None for s in snaps)
    assert snaps[5].out_time == 1.764717 and snaps[5].speed == 0.7
    assert "1.8s done" in snaps[5].describe()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_split_at_random_byte_boundaries_gives_the_same_blocks(data: st.DataObject) -> None:
    first, second = capture_blocks()
    raw = (first + second + "frame=1\nnote=ünïcödé ✓\nprogress=continue\n").encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=40)))
    whole = ProgressParser(duration=5.0).feed(raw)
    parser = ProgressParser(duration=5.0)
    pieces = []
    previous = 0
    for cut in [*cuts, len(raw)]:
        pieces.extend(parser.feed(raw[previous:cut]))
        previous = cut
    assert pieces == whole and len(whole) == 14


def test_duration_and_clock_parsing() -> None:
    line = "  Duration: 00:01:02.50, start: 0.000000, bitrate: 1205 kb/s"
    assert parse_duration_line(line) == 62.5
    assert parse_duration_line("  Duration: N/A, start: 0.000000") is None
    assert parse_clock("01:00:00.250000") == 3600.25 and parse_clock("-00:00:01.000000") == -1.0
    assert parse_clock("N/A") is None
