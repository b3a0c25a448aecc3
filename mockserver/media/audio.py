"""Audio files, written and read in pure Python: what ``/v1/audio/speech`` answers with, and
how long an uploaded file plays (transcription timestamps spread over it).

Written, at OpenAI's 24 kHz mono: WAV, raw PCM (16-bit little-endian) and FLAC (verbatim
subframes) carry a soft tone; MP3 (MPEG-2 Layer III), AAC (ADTS, AAC-LC) and Opus (in Ogg)
are valid silent frames, since encoding a tone in them would need a real psychoacoustic
encoder. Every one decodes in ffmpeg to the stated duration (the tests decode each with PyAV).

Read: the duration of WAV (the standard library's ``wave``, or its header for formats
``wave`` refuses), FLAC (its STREAMINFO), Ogg (its last granule position), MP3 and ADTS
(walking the frame headers) and MP4/M4A (the ``mvhd`` box). Anything else has no duration.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import sys
import wave
from array import array
from collections.abc import Callable, Iterator
from functools import lru_cache

SAMPLE_RATE = 24_000
"""OpenAI's text-to-speech rate."""

FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}

_AMPLITUDE = 6000  # about -15 dBFS: audible, not loud
_FADE = 240  # 10 ms in and out: no click
_PITCHES = (120, 100, 96, 80, 60, 50, 48, 40)
"""Periods in samples (200 to 600 Hz at 24 kHz): each divides ``_FLAC_BLOCK``, so every full
FLAC block holds the same samples and its checksum is computed once."""

# --- writing -----------------------------------------------------------------------------------


def frame_samples(fmt: str) -> int:
    """The samples one frame of ``fmt`` holds: durations are whole frames."""
    return {"mp3": 576, "aac": 1024, "opus": 480}.get(fmt, 1)


def samples_for(fmt: str, seconds: float) -> int:
    """A duration in samples, rounded up to whole frames of ``fmt`` (at least one frame)."""
    size = frame_samples(fmt)
    return max(1, math.ceil(seconds * SAMPLE_RATE / size)) * size


def encode(fmt: str, seconds: float, voice: int = 0) -> bytes:
    """A file of ``fmt`` that plays ``seconds`` (rounded up to whole frames); ``voice`` picks
    the tone's pitch where the format carries one."""
    samples = samples_for(fmt, seconds)
    if fmt in ("wav", "pcm", "flac"):
        pcm = tone(samples, _PITCHES[voice % len(_PITCHES)])
        if fmt == "pcm":
            return pcm
        return wav(pcm) if fmt == "wav" else flac(pcm, samples)
    writers: dict[str, Callable[[int], bytes]] = {"mp3": mp3, "aac": aac, "opus": opus}
    return writers[fmt](samples)


@lru_cache(maxsize=16)
def _period(period: int) -> array[int]:
    return array(
        "h", (round(_AMPLITUDE * math.sin(2 * math.pi * i / period)) for i in range(period))
    )


def tone(samples: int, period: int = 60) -> bytes:
    """16-bit little-endian mono samples of a sine of ``period`` samples, faded in and out."""
    one = _period(period)
    reps, rest = divmod(samples, period)
    out = one * reps + one[:rest]
    fade = min(_FADE, samples // 2)
    for i in range(fade):
        out[i] = out[i] * i // fade
        out[-1 - i] = out[-1 - i] * i // fade
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def wav(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """A WAV file of 16-bit mono ``pcm``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm)
    return out.getvalue()


# FLAC: fixed-size blocks of verbatim (uncompressed) subframes, checksums as the format wants.

_FLAC_BLOCK = 4800


def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return tuple(table)


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)
_CRC32 = _crc_table(0x04C11DB7, 32)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes, crc: int = 0) -> int:
    table = _CRC16
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


@lru_cache(maxsize=2)
def _zeros_after(length: int) -> tuple[int, ...]:
    """Where each bit of a CRC-16 state goes after ``length`` zero bytes: the state's path is
    linear, so a header's CRC joins a body's CRC computed once (``crc(a + b) ==
    advance(crc(a)) ^ crc(b)``)."""
    out = []
    for bit in range(16):
        crc = 1 << bit
        for _ in range(length):
            crc = ((crc << 8) & 0xFFFF) ^ _CRC16[crc >> 8]
        out.append(crc)
    return tuple(out)


def _crc16_joined(head: bytes, body_crc: int, body_length: int) -> int:
    state, moved = _crc16(head), 0
    for bit, image in enumerate(_zeros_after(body_length)):
        if state >> bit & 1:
            moved ^= image
    return moved ^ body_crc


def _utf8_number(n: int) -> bytes:
    """A FLAC frame number: coded like a UTF-8 character (up to 31 bits)."""
    return chr(n).encode("utf-8", "surrogatepass") if n < 0x110000 else _long_utf8(n)


def _long_utf8(n: int) -> bytes:
    count = 5 if n < 1 << 26 else 6
    lead = (0xF8, 0xFC)[count - 5]
    tail = [0x80 | (n >> (6 * i) & 0x3F) for i in range(count - 2, -1, -1)]
    return bytes([lead | n >> (6 * (count - 1)), *tail])


def flac(pcm: bytes, samples: int, rate: int = SAMPLE_RATE) -> bytes:
    """A FLAC file of 16-bit mono ``pcm`` (little-endian), in verbatim subframes."""
    big = array("h")
    big.frombytes(pcm)
    if sys.byteorder == "little":
        big.byteswap()
    data = big.tobytes()
    rate_code = {8000: 4, 16000: 5, 22050: 6, 24000: 7, 32000: 8, 44100: 9, 48000: 10}[rate]
    frames, sizes = [], []
    crcs: dict[bytes, int] = {}
    for number, start in enumerate(range(0, samples, _FLAC_BLOCK)):
        count = min(_FLAC_BLOCK, samples - start)
        head = bytes([0xFF, 0xF8, 0x70 | rate_code, 0x08]) + _utf8_number(number)
        head += struct.pack(">H", count - 1)
        head += bytes([_crc8(head)])
        body = b"\x02" + data[2 * start : 2 * (start + count)]  # verbatim, no wasted bits
        if count < _FLAC_BLOCK:  # the last block (or the only one): its own length, once
            crc = _crc16(head + body)
        else:
            body_crc = crcs.get(body)
            if body_crc is None:
                body_crc = crcs[body] = _crc16(body)
            crc = _crc16_joined(head, body_crc, len(body))
        frame = head + body + struct.pack(">H", crc)
        frames.append(frame)
        sizes.append(len(frame))
    block = min(_FLAC_BLOCK, samples)
    info = struct.pack(">HH", block, block)
    info += min(sizes).to_bytes(3, "big") + max(sizes).to_bytes(3, "big")
    # 20 bits rate, 3 bits channels - 1, 5 bits bits per sample - 1, 36 bits total samples
    info += ((rate << 44) | (0 << 41) | (15 << 36) | samples).to_bytes(8, "big")
    info += hashlib.md5(pcm, usedforsecurity=False).digest()
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info + b"".join(frames)


# MP3: MPEG-2 Layer III at 24 kHz, mono, 32 kbit/s; each frame's side information is all zero
# (no main data, no scale factors): a frame of silence, 576 samples. A first "Info" frame (the
# Xing header of constant-bitrate files) gives the frame count, so players know the duration.

_MP3_HEADER = bytes([0xFF, 0xF3, 0x44, 0xC4])
_MP3_FRAME = _MP3_HEADER + bytes(96 - 4)


def mp3(samples: int) -> bytes:
    frames = samples // 576
    info = _MP3_HEADER + bytes(9) + b"Info" + struct.pack(">II", 1, frames)
    return info + bytes(96 - len(info)) + _MP3_FRAME * frames


# AAC: ADTS frames of AAC-LC at 24 kHz, mono; each holds one single-channel element with no
# scale factor bands (silence), then the END element: 1024 samples.


def _bits(fields: list[tuple[int, int]]) -> bytes:
    value, width = 0, 0
    for bits, n in fields:
        value, width = (value << bits) | n, width + bits
    pad = -width % 8
    return (value << pad).to_bytes((width + pad) // 8, "big")


_AAC_RAW = _bits(
    [
        *[(3, 0), (4, 0), (8, 100)],  # SCE, tag 0, global gain
        *[(1, 0), (2, 0), (1, 0), (6, 0), (1, 0)],  # ics_info: long window, max_sfb 0
        *[(1, 0), (1, 0), (1, 0)],  # no pulse, TNS or gain control data
        (3, 7),  # END
    ]
)


def _adts(payload: bytes) -> bytes:
    """An ADTS header (MPEG-4 AAC-LC, 24 kHz, mono, no CRC) before ``payload``."""
    length = 7 + len(payload)
    fields = [(12, 0xFFF), (1, 0), (2, 0), (1, 1), (2, 1), (4, 6), (1, 0), (3, 1)]
    fields += [(1, 0), (1, 0), (1, 0), (1, 0), (13, length), (11, 0x7FF), (2, 0)]
    return _bits(fields) + payload


_AAC_FRAME = _adts(_AAC_RAW)


def aac(samples: int) -> bytes:
    return _AAC_FRAME * (samples // 1024)


# Opus in Ogg: 20 ms CELT frames that code silence, 48 kHz granules (Opus always counts at 48 kHz).

_OPUS_SILENCE = b"\xf8\xff\xfe"  # TOC: CELT fullband 20 ms mono, one frame; then "silence"
_PRE_SKIP = 312


def _ogg_crc(data: bytes) -> int:
    crc, table = 0, _CRC32
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


def _ogg_page(packets: list[bytes], granule: int, sequence: int, flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    head = struct.pack(
        "<4sBBqIIIB", b"OggS", 0, flags, granule, 0x4D4F434B, sequence, 0, len(lacing)
    )
    page = head + bytes(lacing) + b"".join(packets)
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def opus(samples: int) -> bytes:
    """Ogg Opus that plays ``samples`` (at 24 kHz): the decoder drops the pre-skip from the
    start, and the last granule position trims the end to the exact length."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, _PRE_SKIP, SAMPLE_RATE, 0, 0)
    vendor = b"mockserver"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    pages = [_ogg_page([head], 0, 0, 0x02), _ogg_page([tags], 0, 1, 0)]
    end = _PRE_SKIP + samples * 2  # in 48 kHz samples
    packets = -(-end // 960)
    for first in range(0, packets, 250):
        count = min(250, packets - first)
        last = first + count >= packets
        granule = end if last else (first + count) * 960
        pages.append(_ogg_page([_OPUS_SILENCE] * count, granule, len(pages), 0x04 if last else 0))
    return b"".join(pages)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` cut into pieces of ``size`` bytes (the last may be shorter): stream deltas."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --- reading -----------------------------------------------------------------------------------


def duration(data: bytes) -> float | None:
    """How many seconds ``data`` plays, read from its headers; None when its format is not one
    of those read here or it is damaged."""
    readers = (
        (b"RIFF", _wav_duration),
        (b"fLaC", _flac_duration),
        (b"OggS", _ogg_duration),
    )
    try:
        for magic, reader in readers:
            if data.startswith(magic):
                return reader(data)
        if data[4:8] == b"ftyp":
            return _mp4_duration(data)
        if data[:2] == b"\xff\xf1" or data[:2] == b"\xff\xf9":
            return _adts_duration(data)
        return _mp3_duration(data)
    except (EOFError, wave.Error, struct.error, IndexError, ValueError, ZeroDivisionError):
        return None


def _wav_duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data)) as file:
            return float(file.getnframes() / file.getframerate())
    except wave.Error:
        pass  # float or extensible WAV: read the header by hand
    at, byte_rate = 12, 0
    while at + 8 <= len(data):
        chunk, size = struct.unpack_from("<4sI", data, at)
        if chunk == b"fmt ":
            byte_rate = struct.unpack_from("<I", data, at + 16)[0]
        elif chunk == b"data" and byte_rate:
            return float(min(size, len(data) - at - 8) / byte_rate)
        at += 8 + size + (size & 1)
    return None


def _flac_duration(data: bytes) -> float | None:
    packed = int.from_bytes(data[18:26], "big")
    rate, total = packed >> 44, packed & ((1 << 36) - 1)
    return total / rate if rate and total else None


def _ogg_duration(data: bytes) -> float | None:
    last = data.rfind(b"OggS")
    granule = struct.unpack_from("<q", data, last + 6)[0]
    first_packet = data[27 + data[26] : 27 + data[26] + 19]
    if first_packet.startswith(b"OpusHead"):
        skip = struct.unpack_from("<H", first_packet, 10)[0]
        return float(max(0, granule - skip) / 48_000)
    if first_packet.startswith(b"\x01vorbis"):
        rate = struct.unpack_from("<I", first_packet, 12)[0]
        return float(granule / rate)
    return None


_MP3_BITRATES = {
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_duration(data: bytes) -> float | None:
    at = 0
    if data.startswith(b"ID3"):
        size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
        at = 10 + size
    seconds, frames = 0.0, 0
    while at + 4 <= len(data):
        b1, b2 = data[at + 1], data[at + 2]
        if data[at] != 0xFF or b1 & 0xE0 != 0xE0:
            break
        version, layer = b1 >> 3 & 3, b1 >> 1 & 3
        bitrate_index, rate_index = b2 >> 4, b2 >> 2 & 3
        if version == 1 or layer != 1 or rate_index == 3 or bitrate_index in (0, 15):
            break  # only Layer III, and no free format
        table = _MP3_BITRATES[(1 if version == 3 else 2, 3)]
        bitrate, rate = table[bitrate_index] * 1000, _MP3_RATES[version][rate_index]
        per_frame = 1152 if version == 3 else 576
        size = (per_frame // 8) * bitrate // rate + (b2 >> 1 & 1)
        tag = data.find(b"Info", at + 4, at + 40) if frames == 0 else -1
        if frames == 0 and tag < 0:
            tag = data.find(b"Xing", at + 4, at + 40)
        if tag >= 0:  # the header frame: it says how many frames follow (and holds no audio)
            flags, count = struct.unpack_from(">II", data, tag + 4)
            if flags & 1:
                return float(count * per_frame / rate)
            at += size
            continue
        seconds += per_frame / rate
        frames += 1
        at += size
    return seconds if frames else None


_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def _adts_duration(data: bytes) -> float | None:
    at, seconds = 0, 0.0
    while at + 7 <= len(data) and data[at] == 0xFF and data[at + 1] & 0xF6 == 0xF0:
        rate = _ADTS_RATES[data[at + 2] >> 2 & 0xF]
        length = (data[at + 3] & 3) << 11 | data[at + 4] << 3 | data[at + 5] >> 5
        if length < 7:
            break
        seconds += 1024 * ((data[at + 6] & 3) + 1) / rate
        at += length
    return seconds or None


def _mp4_duration(data: bytes) -> float | None:
    def boxes(start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        at = start
        while at + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, at)
            header = 8
            if size == 1:
                size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
            elif size == 0:
                size = end - at
            if size < header:
                return
            yield kind, at + header, min(at + size, end)
            at += size

    for kind, start, end in boxes(0, len(data)):
        if kind != b"moov":
            continue
        for inner, body, _ in boxes(start, end):
            if inner == b"mvhd":
                if data[body] == 1:
                    scale, length = struct.unpack_from(">IQ", data, body + 20)
                else:
                    scale, length = struct.unpack_from(">II", data, body + 12)
                return float(length / scale)
    return None
