"""Which input files FFmpeg jobs may read: plain media containers, never files that point at
other files.

Several of ffmpeg's demuxers follow references: an HLS playlist (``.m3u8``) lists segments, a
concat list or ``ffconcat`` file lists files, a DASH manifest lists URLs. A file inside the input
roots could thus make ffmpeg read one outside them. Two checks close that, each enough alone:

- **when ffmpeg runs**, its own options allow only the ``file`` protocol and only the demuxers of
  :data:`DEMUXERS` (``-protocol_whitelist file -format_whitelist ...``): ffmpeg refuses any other
  format before it opens a single reference ("Format not on whitelist");
- **when the job is submitted** (and again when it runs), the file's first bytes must carry the
  signature of one of those containers, so a playlist or a list of files is refused at once
  (422 naming ``input``) instead of failing later. These formats all start with a fixed magic
  number; text formats (every reference-following one is text) never match.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ecosign_orchestrator.ffmpeg.command import InvalidCommand

#: ffmpeg's names of the demuxers a job may use (one entry can hold several names).
DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "wav",
    "mp3",
    "aac",
    "flac",
    "ogg",
    "flv",
    "mpegts",
    "mpeg",
)
#: The ``-format_whitelist`` value.
FORMAT_WHITELIST = ",".join(DEMUXERS)
#: Only plain files, never ``http``, ``concat:``, ``subfile`` or ``data`` (each would read
#: something the roots do not contain).
PROTOCOL_WHITELIST = "file"
#: Options placed before every ``-i`` of a file input.
INPUT_OPTIONS = ("-protocol_whitelist", PROTOCOL_WHITELIST, "-format_whitelist", FORMAT_WHITELIST)

_HEAD = 512
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def _mpeg_audio(head: bytes) -> bool:
    """An MP3 with an ID3 tag, or an MPEG audio / ADTS AAC frame sync."""
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _transport_stream(head: bytes) -> bool:
    """MPEG-TS: a sync byte every 188 bytes."""
    return len(head) > 376 and head[0] == head[188] == head[376] == 0x47


#: (container, test of the first bytes); the first match names the container.
SIGNATURES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("mp4/mov", lambda h: h[4:8] in _ISO_BOXES),
    ("matroska/webm", lambda h: h.startswith(b"\x1a\x45\xdf\xa3")),
    ("avi", lambda h: h.startswith(b"RIFF") and h[8:12] == b"AVI "),
    ("wav", lambda h: h.startswith(b"RIFF") and h[8:12] == b"WAVE"),
    ("flac", lambda h: h.startswith(b"fLaC")),
    ("ogg", lambda h: h.startswith(b"OggS")),
    ("flv", lambda h: h.startswith(b"FLV")),
    ("mpeg-ps", lambda h: h.startswith(b"\x00\x00\x01\xba")),
    ("mpeg-ts", _transport_stream),
    ("mp3/aac", _mpeg_audio),
)
ACCEPTED = ", ".join(name for name, _ in SIGNATURES)


def check_container(path: str) -> str:
    """The container ``path`` holds, or ``InvalidCommand`` naming ``input``: anything else (a
    playlist, a list of files, a manifest, an unknown format) is refused."""
    try:
        with Path(path).open("rb") as source:
            head = source.read(_HEAD)
    except OSError as exc:
        raise InvalidCommand("input", f"cannot be read: {exc.strerror or exc}") from None
    for name, matches in SIGNATURES:
        if matches(head):
            return name
    raise InvalidCommand(
        "input",
        f"not a media container this service reads ({ACCEPTED}); playlists, lists of files "
        "and manifests are refused because they make ffmpeg read other files",
    )
