"""Files served as they are: those a scenario pins (an image, a video), and the sample video."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from .images import CONTENT_TYPES, sniff


@dataclass(frozen=True)
class Blob:
    """A file's bytes, its name as the scenario gave it, and its type; ``digest`` names it in
    the URL that serves it (the same bytes, the same URL, in every worker)."""

    name: str
    data: bytes = field(repr=False)
    content_type: str = "application/octet-stream"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:32]

    @property
    def extension(self) -> str:
        return {v: k for k, v in CONTENT_TYPES.items()}.get(self.content_type, "bin")


def blob(name: str, data: bytes) -> Blob:
    """A file, typed by its first bytes (an image, an MP4), else by its name's extension."""
    kind = sniff(data) or ("mp4" if data[4:8] == b"ftyp" else name.rpartition(".")[2].lower())
    return Blob(name, data, CONTENT_TYPES.get(kind, "application/octet-stream"))


@cache
def sample_video() -> Blob:
    """Two seconds of H.264 test pattern, 320x180 at 12 fps, 13 kB: what a video task that
    pins no file answers with (made once with ffmpeg's ``testsrc2``; package data)."""
    data = resources.files(__package__).joinpath("sample.mp4").read_bytes()
    return Blob("sample.mp4", data, "video/mp4")
