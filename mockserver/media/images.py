"""Images drawn and encoded without an image library: a mosaic of flat tiles, deterministic in
a seed, encoded as PNG (zlib), baseline JPEG or lossless WebP (VP8L).

The picture is cheap by design: at most eight colours (two levels a channel) in tiles whose
edges fall on multiples of 16 pixels. That makes every JPEG block flat (its DCT is its DC term
alone), every WebP pixel three or four bits of two-symbol prefix codes, and every PNG row one
of a few repeated rows, so a 1024x1024 image costs milliseconds, not seconds, in Python.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

FORMATS = ("png", "jpeg", "webp")
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp",
                 "gif": "image/gif", "mp4": "video/mp4"}  # fmt: skip
_TILE = 16


@dataclass(frozen=True)
class Picture:
    """What to draw: a size, a seed, how fine the mosaic is, and whether the border tiles
    are transparent (``background: transparent``). ``reveal`` below 1 draws a partial image
    (streamed previews): the tiles not yet revealed are the base colour."""

    width: int
    height: int
    seed: int
    detail: int = 24
    transparent: bool = False
    reveal: float = 1.0


def seed_of(*parts: object) -> int:
    """A 64-bit seed from the parts (a prompt, a model...): the same parts, the same picture."""
    text = "\x1f".join(map(str, parts)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


class _Layout:
    """The picture's tiles: their edges along each axis and each tile's colour index (0-7;
    8 is transparent), plus the palette, two levels for each of R, G and B."""

    def __init__(self, pic: Picture) -> None:
        rng = random.Random(pic.seed)
        lo = [rng.randrange(0, 110) for _ in range(3)]
        hi = [rng.randrange(150, 256) for _ in range(3)]
        self.levels = list(zip(lo, hi, strict=True))
        self.palette = [
            (self.levels[0][i >> 1 & 1], self.levels[1][i & 1], self.levels[2][i >> 2 & 1])
            for i in range(8)
        ]
        tile = max(_TILE, -(-max(pic.width, pic.height) // pic.detail) // _TILE * _TILE)
        self.xs = _edges(pic.width, tile)
        self.ys = _edges(pic.height, tile)
        nx, ny = len(self.xs) - 1, len(self.ys) - 1
        grid = []
        for ty in range(ny):
            row = []
            for tx in range(nx):
                idx = rng.randrange(8)
                shown = rng.random() < pic.reveal
                border = tx in (0, nx - 1) or ty in (0, ny - 1)
                row.append(8 if pic.transparent and border else idx if shown else 0)
            grid.append(row)
        self.grid = grid


def _edges(size: int, tile: int) -> list[int]:
    return [*range(0, size, tile), size]


def _runs(layout: _Layout, row: list[int]) -> list[tuple[int, int]]:
    """A row of tiles as (colour index, width in pixels)."""
    xs = layout.xs
    return [(idx, xs[i + 1] - xs[i]) for i, idx in enumerate(row)]


def encode(pic: Picture, fmt: str, quality: int = 100) -> bytes:
    """The picture as a file of ``fmt`` (png, jpeg or webp); ``quality`` (1-100) sets the
    JPEG quantizer (WebP here is lossless, PNG always is)."""
    return _encode(pic, fmt, max(1, min(100, quality)))


@lru_cache(maxsize=64)
def _encode(pic: Picture, fmt: str, quality: int) -> bytes:
    layout = _Layout(pic)
    if fmt == "png":
        return _png(pic, layout)
    if fmt == "jpeg":
        return _jpeg(pic, layout, quality)
    if fmt == "webp":
        return _webp(pic, layout)
    raise ValueError(f"unknown image format {fmt!r}")


# --- PNG ---------------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_rgba(width: int, height: int, rows: list[bytes], alpha: bool) -> bytes:
    """A truecolour PNG (RGB, or RGBA with ``alpha``) of raw rows (without filter bytes).
    A row like the one above it is filtered "Up" (all zeros), which zlib's fastest level
    packs well: a quarter of the time of level 6 on unfiltered rows, and half the size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    zero = b"\x02" + bytes(len(rows[0])) if rows else b""
    raw = b"".join(
        zero if i and row == rows[i - 1] else b"\x00" + row for i, row in enumerate(rows)
    )
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(raw, 1)) + _chunk(b"IEND", b""))  # fmt: skip


def _png(pic: Picture, layout: _Layout) -> bytes:
    alpha = pic.transparent
    colours = [bytes(c) + (b"\xff" if alpha else b"") for c in layout.palette]
    colours.append(b"\x00\x00\x00\x00" if alpha else b"\x00\x00\x00")
    rows = []
    for ty, tile_row in enumerate(layout.grid):
        row = b"".join(colours[idx] * n for idx, n in _runs(layout, tile_row))
        rows.extend([row] * (layout.ys[ty + 1] - layout.ys[ty]))
    return png_rgba(pic.width, pic.height, rows, alpha)


# --- baseline JPEG -----------------------------------------------------------------------

_LUMA_Q = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40,
           57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35,
           55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112,
           100, 103, 99)  # fmt: skip
_CHROMA_Q = (17, 18, 24, 47, *(99,) * 4, 18, 21, 26, 66, *(99,) * 4, 24, 26, 56, *(99,) * 5,
             47, 66, *(99,) * 46)  # fmt: skip
_ZIGZAG = (0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41,
           34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30,
           37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63)  # fmt: skip
_DC_BITS = (0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0)  # the standard luminance DC table
_DC_CODES: list[str] = []
_code = 0
for _length, _count in enumerate(_DC_BITS, 1):
    for _ in range(_count):
        _DC_CODES.append(format(_code, f"0{_length}b"))
        _code += 1
    _code <<= 1
_EOB = "0"  # the AC table has one symbol, end of block: every block here is flat


def _scaled(table: tuple[int, ...], quality: int) -> bytes:
    """libjpeg's scaling of a quantization table by quality, in zigzag order."""
    scale = 5000 // quality if quality < 50 else 200 - quality * 2
    values = [max(1, min(255, (q * scale + 50) // 100)) for q in table]
    return bytes(values[i] for i in _ZIGZAG)


def _dc_bits(diff: int) -> str:
    """A DC difference: its category's code, then its magnitude bits (ones' complement if < 0)."""
    if diff == 0:
        return _DC_CODES[0]
    size = abs(diff).bit_length()
    value = diff if diff > 0 else diff + (1 << size) - 1
    return _DC_CODES[size] + format(value, f"0{size}b")


def _ycc(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b,
            128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
            128 + 0.5 * r - 0.418688 * g - 0.081312 * b)  # fmt: skip


def _jpeg(pic: Picture, layout: _Layout, quality: int) -> bytes:
    luma, chroma = _scaled(_LUMA_Q, quality), _scaled(_CHROMA_Q, quality)
    quant = (luma[0], chroma[0], chroma[0])
    dcs = [
        tuple(round(8 * (v - 128) / q) for v, q in zip(_ycc(rgb), quant, strict=True))
        for rgb in [*layout.palette, (255, 255, 255)]
    ]
    bits: list[str] = []
    prev: tuple[int, ...] = (0, 0, 0)
    flat = (_DC_CODES[0] + _EOB) * 3  # an MCU like the one before it
    for ty, tile_row in enumerate(layout.grid):
        block_rows = -(-(layout.ys[ty + 1] - layout.ys[ty]) // 8)
        runs = [(idx, -(-n // 8)) for idx, n in _runs(layout, tile_row)]
        for _ in range(block_rows):
            for idx, blocks in runs:
                dc = dcs[idx]
                bits.extend(_dc_bits(dc[c] - prev[c]) + _EOB for c in range(3))
                prev = dc
                bits.append(flat * (blocks - 1))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = int(stream, 2).to_bytes(len(stream) // 8, "big").replace(b"\xff", b"\xff\x00")
    w, h = pic.width, pic.height

    def seg(marker: int, body: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body

    return b"".join((
        b"\xff\xd8",
        seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"),
        seg(0xDB, b"\x00" + luma + b"\x01" + chroma),
        seg(0xC0, struct.pack(">BHHB", 8, h, w, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"),
        seg(0xC4, b"\x00" + bytes(_DC_BITS) + bytes(range(12))
            + b"\x10" + bytes((1, *(0,) * 15)) + b"\x00"),
        seg(0xDA, b"\x03\x01\x00\x02\x00\x03\x00\x00\x3f\x00"),
        data,
        b"\xff\xd9",
    ))  # fmt: skip


# --- lossless WebP (VP8L) ----------------------------------------------------------------


class _Bits:
    """Bits written least significant first, as VP8L reads them."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def put(self, value: int, count: int) -> None:
        self.value |= value << self.length
        self.length += count


def _simple_code(out: _Bits, symbols: list[int]) -> None:
    """A VP8L "simple" prefix code of one symbol (costs no bits a pixel) or two (one bit:
    0 for the smaller)."""
    out.put(1, 1)
    out.put(len(symbols) - 1, 1)
    out.put(1, 1)  # the first symbol takes 8 bits
    for s in symbols:
        out.put(s, 8)


def _webp(pic: Picture, layout: _Layout) -> bytes:
    out = _Bits()
    out.put(0x2F, 8)
    out.put(pic.width - 1, 14)
    out.put(pic.height - 1, 14)
    out.put(int(pic.transparent), 1)
    out.put(0, 3)  # version
    out.put(0, 1)  # no transform
    out.put(0, 1)  # no colour cache
    out.put(0, 1)  # one prefix-code group
    # Channel order of the codes: green, red, blue, alpha; then distance (never used).
    levels = [layout.levels[1], layout.levels[0], layout.levels[2]]
    alpha = (0, 255) if pic.transparent else (255, 255)
    channels = [*levels, alpha]
    width = 0
    shifts: list[int | None] = []
    for lo, hi in channels:
        if lo == hi:
            _simple_code(out, [lo])
            shifts.append(None)
        else:
            _simple_code(out, [lo, hi])
            shifts.append(width)
            width += 1
    out.put(1, 1)  # distance: simple, one symbol, one bit wide
    out.put(0, 1)
    out.put(0, 1)
    out.put(0, 1)

    def code(idx: int) -> int:
        # Colour index bits: 1 = green high, 2 = red high, 4 = blue high; 8 = transparent.
        on = (idx & 1, idx >> 1 & 1, idx >> 2 & 1, 0 if idx == 8 else 1)
        if idx == 8:
            on = (0, 0, 0, 0)
        return sum(bit << s for bit, s in zip(on, shifts, strict=True) if s is not None)

    pixels = 0
    at = 0
    row_bits = pic.width * width
    for ty, tile_row in enumerate(layout.grid):
        row = 0
        x = 0
        for idx, n in _runs(layout, tile_row):
            row |= code(idx) * _repunit(width, n) << x
            x += n * width
        rows = layout.ys[ty + 1] - layout.ys[ty]
        pixels |= row * _repunit(row_bits, rows) << at
        at += row_bits * rows
    out.put(pixels, at)
    data = out.value.to_bytes((out.length + 7) // 8, "little")
    if len(data) % 2:
        data += b"\x00"
    chunk = b"VP8L" + struct.pack("<I", (out.length + 7) // 8) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _repunit(width: int, count: int) -> int:
    """``count`` ones, ``width`` bits apart: multiplying a value by it repeats the value."""
    if width == 0:
        return 0
    return ((1 << (width * count)) - 1) // ((1 << width) - 1)


# --- reading what is uploaded ------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """The format of an image file by its first bytes (png, jpeg, webp, gif), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def dimensions(data: bytes) -> tuple[int, int] | None:
    """An image's width and height from its header (PNG, JPEG, WebP, GIF), or None."""
    kind = sniff(data)
    try:
        if kind == "png":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if kind == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if kind == "webp":
            return _webp_size(data)
        if kind == "jpeg":
            return _jpeg_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    fourcc = data[12:16]
    if fourcc == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, (b >> 14 & 0x3FFF) + 1
    if fourcc == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if fourcc == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[at + 5 : at + 9])
            return w, h
        at += 2 + length
    return None
