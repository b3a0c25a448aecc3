"""Speech, transcription, translation and moderation through the openai SDK, on real sockets.

Every audio file the mock writes is decoded by a real decoder (PyAV, which is ffmpeg), and the
files it transcribes are made here with the standard library's ``wave``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import openai
import pytest

from mockserver import MockServer, Options
from mockserver.core.errors import ScenarioError
from mockserver.media import audio
from mockserver.recording.record import Recorder
from mockserver.scenarios.loader import load_paths, load_text
from mockserver.scenarios.schema import MODERATION_CATEGORIES
from tests.docs import blocks, example

AUTH = {"Authorization": "Bearer sk-test"}
SHORT = "Your order has shipped."
LONG = " ".join([SHORT] * 4) + " It will arrive on Tuesday between nine and noon."


def note(seconds: float, rate: int = 16_000, pitch: float = 440.0) -> bytes:
    """A WAV voice note: a sine of ``seconds``, 16-bit mono."""
    frames = b"".join(
        struct.pack("<h", round(8000 * math.sin(2 * math.pi * pitch * i / rate)))
        for i in range(round(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(frames)
    return out.getvalue()


NOTE = note(6.0)


def decode(data: bytes) -> tuple[float, int, int]:
    """Seconds, sample rate and peak amplitude (16-bit) of a file, as ffmpeg decodes it, failing
    on any checksum or bitstream error (FLAC's CRCs, Ogg's page checksums)."""
    to_s16 = av.AudioResampler(format="s16", layout="mono")
    with av.open(io.BytesIO(data)) as container:
        strict = {"err_detect": "crccheck+bitstream+explode"}
        container.streams.audio[0].codec_context.options = strict
        samples, rate, peak = 0, 0, 0
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate
            for converted in to_s16.resample(frame):
                pcm = array("h", bytes(converted.planes[0])[: converted.samples * 2])
                peak = max(peak, max(map(abs, pcm), default=0))
    return samples / rate, rate, peak


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    scenarios = [
        {
            "name": "voice note",
            "match": {"api": "transcriptions", "file": "voice-note.wav"},
            "reply": {"content": "Call me back about the invoice. It is due on Friday."},
        },
        {
            "name": "french",
            "match": {"api": "transcriptions", "body": {"language": "fr"}},
            "reply": {"content": "Rappelle-moi demain."},
        },
        {
            "name": "prompted",
            "match": {"api": "transcriptions", "last_user": {"regex": "Meeting with (\\w+)"}},
            "reply": {"content": "{{ match.1 }} quarterly review."},
        },
        {
            "name": "flagged",
            "match": {"api": "moderations", "last_user": {"contains": "hurt"}},
            "reply": {
                "flagged": ["violence", "harassment/threatening"],
                "scores": {"violence": 0.97},
            },
        },
    ]
    with MockServer(scenarios, options=Options(api_keys=frozenset({"sk-test"}))) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as api:
        yield api


# --- speech ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav"])
def test_speech_in_each_format_decodes_and_lasts_longer_for_more_text(
    client: openai.OpenAI, server: MockServer, fmt: str
) -> None:
    short = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input=SHORT, response_format=fmt
    )
    seconds, rate, peak = decode(short.content)
    assert server.last.reply is not None
    journalled = server.last.reply["audio"]
    assert journalled["format"] == fmt
    assert seconds == pytest.approx(journalled["seconds"], abs=0.001)
    assert rate in (24_000, 48_000)  # Opus decodes at 48 kHz, whatever it was made from
    assert 1.0 < seconds < 4.0  # a short sentence
    if fmt in ("wav", "flac"):
        assert peak > 3000  # a tone, not silence
    long = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input=LONG, response_format=fmt
    )
    assert decode(long.content)[0] > 4 * seconds
    fast = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input=LONG, response_format=fmt, speed=2.0
    )
    assert decode(fast.content)[0] == pytest.approx(decode(long.content)[0] / 2, abs=0.05)


def test_speech_is_mp3_by_default_and_pcm_is_raw_24khz(client: openai.OpenAI) -> None:
    mp3 = client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT)
    assert mp3.response.headers["content-type"] == "audio/mpeg"
    mp3_seconds = decode(mp3.content)[0]
    pcm = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SHORT, response_format="pcm"
    )
    assert pcm.response.headers["content-type"] == "audio/pcm"
    samples = struct.unpack(f"<{len(pcm.content) // 2}h", pcm.content)
    assert len(samples) / 24_000 == pytest.approx(mp3_seconds, abs=0.03)
    assert max(samples) > 3000
    again = client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT)
    assert again.content == mp3.content  # deterministic


def test_speech_streams_audio_deltas_over_sse(client: openai.OpenAI) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="nova", input=LONG, stream_format="sse",
        response_format="wav",
    ) as response:  # fmt: skip
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
        ]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) > 1
    assert events[-1]["type"] == "speech.audio.done"
    usage = events[-1]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    data = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    whole = client.audio.speech.create(
        model="gpt-4o-mini-tts", voice="nova", input=LONG, response_format="wav"
    )
    assert data == whole.content
    assert decode(data)[0] > 4


def test_speech_without_the_v1_prefix(server: MockServer) -> None:
    """The relay's SDK examples set a base URL without ``/v1``."""
    with openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0) as bare:
        speech = bare.audio.speech.create(model="tts-1", voice="alloy", input=SHORT)
        text = bare.audio.transcriptions.create(
            model="whisper-1", file=("voice-note.wav", NOTE), response_format="text"
        )
        moderation = bare.moderations.create(input="hello")
    assert decode(speech.content)[0] > 1
    assert text.startswith("Call me back")
    assert not moderation.results[0].flagged
    assert [e.path for e in server.journal[-3:]] == [
        "/audio/speech", "/audio/transcriptions", "/moderations",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "tts-1", "input": SHORT}, "voice", "Missing required parameter"),
        ({"model": "tts-1", "voice": "alloy"}, "input", "Missing required parameter"),
        ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, "input", "maximum length 4096"),
        ({"model": "tts-1", "voice": "alloy", "input": SHORT, "response_format": "ogg"},
         "response_format", "Supported values are: 'mp3'"),
        ({"model": "tts-1", "voice": "alloy", "input": SHORT, "speed": 5}, "speed", "<= 4.0"),
        ({"model": "tts-1", "voice": "alloy", "input": SHORT, "stream_format": "sse"},
         "stream_format", "not supported for model 'tts-1'"),
    ],
)  # fmt: skip
def test_speech_refusals_name_the_parameter(
    server: MockServer, body: dict[str, Any], param: str, words: str
) -> None:
    reply = httpx.post(f"{server.base_url}/audio/speech", json=body, headers=AUTH)
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param
    assert words in error["message"]


# --- transcription and translation -----------------------------------------------------------


def cues(text: str) -> list[tuple[float, float, str]]:
    """The cues of SRT or WebVTT text: start, end, text."""
    found = re.findall(
        r"(\d\d):(\d\d):(\d\d)[.,](\d{3}) --> (\d\d):(\d\d):(\d\d)[.,](\d{3})\n(.+)", text
    )
    out = []
    for *clock, line in found:
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, clock)
        out.append((h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000,
                    line))  # fmt: skip
    return out


SCRIPTED = "Call me back about the invoice. It is due on Friday."


def test_transcription_in_every_response_format(client: openai.OpenAI) -> None:
    file = ("voice-note.wav", NOTE)
    plain = client.audio.transcriptions.create(model="whisper-1", file=file)
    assert plain.text == SCRIPTED
    assert plain.usage is not None
    assert plain.usage.type == "duration"
    assert plain.usage.seconds == 6
    text = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="text")
    assert text == SCRIPTED + "\n"
    srt = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="srt")
    assert srt.startswith("1\n00:00:00,000 --> ")
    vtt = client.audio.transcriptions.create(model="whisper-1", file=file, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    for subtitles in (srt, vtt):
        timed = cues(subtitles)
        assert [t for _, _, t in timed] == [
            "Call me back about the invoice.",
            "It is due on Friday.",
        ]
        assert timed[0][0] == 0
        assert timed[0][1] == timed[1][0]
        assert timed[-1][1] == 6.0
    verbose = client.audio.transcriptions.create(
        model="whisper-1", file=file, response_format="verbose_json",
        timestamp_granularities=["word", "segment"], language="en",
    )  # fmt: skip
    assert (verbose.text, verbose.duration, verbose.language) == (SCRIPTED, 6.0, "english")
    assert verbose.words is not None
    assert verbose.segments is not None
    assert [w.word for w in verbose.words][:4] == ["Call", "me", "back", "about"]
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts)
    assert verbose.words[-1].end == 6.0
    assert all(w.start < w.end for w in verbose.words)
    assert [s.text for s in verbose.segments] == [" Call me back about the invoice.",
                                                  " It is due on Friday."]  # fmt: skip
    assert verbose.segments[-1].end == 6.0
    assert verbose.segments[0].tokens


def test_timestamps_spread_over_the_real_duration_of_each_file(client: openai.OpenAI) -> None:
    for seconds, rate in ((2.5, 8000), (11.0, 44_100)):
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=("voice-note.wav", note(seconds, rate)),
            response_format="verbose_json", timestamp_granularities=["word"],
        )  # fmt: skip
        assert verbose.duration == seconds
        assert verbose.words is not None
        assert verbose.words[-1].end == seconds


def test_durations_are_read_from_other_formats_headers() -> None:
    """The files the mock writes, read back: every format but raw PCM has a duration."""
    for fmt in ("mp3", "opus", "aac", "flac", "wav"):
        data = audio.encode(fmt, 3.3)
        assert audio.duration(data) == pytest.approx(decode(data)[0], abs=0.001), fmt
    assert audio.duration(b"not audio at all") is None


def test_with_no_scenario_the_transcript_is_generated_the_same_for_the_same_audio(
    client: openai.OpenAI, server: MockServer
) -> None:
    first = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", note(4.0)))
    again = client.audio.transcriptions.create(model="whisper-1", file=("b.wav", note(4.0)))
    other = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", note(4.0, pitch=330))
    )
    assert first.text == again.text != other.text
    assert 6 <= len(first.text.split()) <= 20  # about what four seconds hold
    assert server.last.scenario == "generated"
    assert (server.last.reply or {})["content"] == other.text


def test_a_generated_transcript_is_in_the_language_asked_for(client: openai.OpenAI) -> None:
    from faker.providers.lorem.de_DE import Provider as German

    german = client.audio.transcriptions.create(
        model="whisper-1", file=("memo.wav", note(5.0)), language="de"
    )
    words = {w.strip(".").lower() for w in german.text.split()}
    assert words <= {w.lower() for w in German.word_list}
    english = client.audio.transcriptions.create(model="whisper-1", file=("memo.wav", note(5.0)))
    assert english.text != german.text


def test_matching_on_language_prompt_and_digest(client: openai.OpenAI, server: MockServer) -> None:
    french = client.audio.transcriptions.create(
        model="whisper-1", file=("x.mp3", audio.encode("mp3", 2)), language="fr"
    )
    assert french.text == "Rappelle-moi demain."
    prompted = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("x.wav", NOTE), prompt="Meeting with ACME"
    )
    assert prompted.text == "ACME quarterly review."
    digest = server.last.body["file"]["sha256"]
    scenario = {"match": {"file": {"sha256": digest}}, "reply": {"content": "pinned"}}
    with (
        MockServer([scenario]) as pinned,
        openai.OpenAI(base_url=pinned.base_url, api_key="k", max_retries=0) as api,
    ):
        assert (
            api.audio.transcriptions.create(model="whisper-1", file=("y.wav", NOTE)).text
            == "pinned"
        )
        other = api.audio.transcriptions.create(model="whisper-1", file=("y.wav", note(1.0)))
        assert other.text != "pinned"
        assert pinned.last.scenario == "generated"


def test_gpt_4o_transcribe_streams_text_deltas(client: openai.OpenAI) -> None:
    stream = client.audio.transcriptions.create(
        model="gpt-4o-transcribe", file=("voice-note.wav", NOTE), stream=True,
        include=["logprobs"],
    )  # fmt: skip
    events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text == SCRIPTED
    assert len(deltas) > 5
    assert done.usage is not None
    assert done.usage.type == "tokens"
    assert done.usage.input_token_details is not None
    assert (done.usage.input_token_details.audio_tokens or 0) > 0
    assert done.logprobs
    assert deltas[0].logprobs


CALL = "agent: Thanks for calling. How can I help?\ncustomer: My parcel is late."


def test_the_diarizing_model_says_who_speaks(client: openai.OpenAI, server: MockServer) -> None:
    scenario = {"match": {"model": "*diarize"}, "reply": {"content": CALL}}
    with (
        MockServer([scenario]) as diarizing,
        openai.OpenAI(base_url=diarizing.base_url, api_key="k", max_retries=0) as api,
    ):
        upload = ("call.wav", NOTE)
        model = "gpt-4o-transcribe-diarize"
        result = api.audio.transcriptions.create(
            model=model, file=upload, response_format="diarized_json"
        )
        assert result.text == "Thanks for calling. How can I help? My parcel is late."
        assert [(s.speaker, s.text) for s in result.segments] == [
            ("agent", "Thanks for calling. How can I help?"),
            ("customer", "My parcel is late."),
        ]
        assert result.segments[0].start == 0
        assert result.segments[0].end == result.segments[1].start
        assert result.segments[1].end == 6.0
        assert result.duration == 6.0
        events = list(
            api.audio.transcriptions.create(
                model=model, file=upload, response_format="diarized_json", stream=True
            )
        )
        deltas = [e for e in events if e.type == "transcript.text.delta"]
        segments = [e for e in events if e.type == "transcript.text.segment"]
        assert [s.speaker for s in segments] == ["agent", "customer"]
        assert {d.segment_id for d in deltas} == {"seg_0", "seg_1"}
        assert "".join(d.delta for d in deltas) == events[-1].text == result.text
    # Unlabelled text: each sentence in turn by the known speakers.
    named = client.audio.transcriptions.create(
        model="gpt-4o-transcribe-diarize", file=("voice-note.wav", NOTE),
        response_format="diarized_json", known_speaker_names=["ana", "bo"],
        known_speaker_references=["data:audio/wav;base64,AAAA"] * 2,
    )  # fmt: skip
    assert [s.speaker for s in named.segments] == ["ana", "bo"]
    refused = httpx.post(
        f"{server.base_url}/audio/transcriptions",
        data={"model": "whisper-1", "response_format": "diarized_json"},
        files={"file": ("a.wav", NOTE)},
        headers=AUTH,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "response_format"


def test_whisper_ignores_stream_as_openai_does(client: openai.OpenAI) -> None:
    reply = httpx.post(
        f"{client.base_url}audio/transcriptions",
        files={"file": ("voice-note.wav", NOTE)},
        data={"model": "whisper-1", "stream": "true"},
        headers=AUTH,
    )
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["text"] == SCRIPTED


DEPRECATED = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
"""The SDK marks ``audio.translations.create`` deprecated; it is still served and called."""


@DEPRECATED
def test_translation(client: openai.OpenAI, server: MockServer) -> None:
    plain = client.audio.translations.create(model="whisper-1", file=("talk.m4a", b"\0" * 64))
    assert plain.text
    assert server.last.api == "translations"
    verbose = client.audio.translations.create(
        model="whisper-1", file=("talk.wav", note(3.0)), response_format="verbose_json"
    )
    assert verbose.language == "english"
    assert verbose.duration == 3.0
    assert verbose.segments
    assert verbose.segments[-1].end == 3.0
    srt = client.audio.translations.create(
        model="whisper-1", file=("talk.wav", note(3.0)), response_format="srt"
    )
    assert cues(srt)[-1][1] == 3.0


@pytest.mark.parametrize(
    ("data", "files", "status", "param", "words"),
    [
        ({"model": "whisper-1"}, None, 400, None, "expected multipart/form-data"),
        ({"model": "whisper-1"}, {"other": ("a.wav", NOTE)}, 400, "file", "Missing required"),
        ({}, {"file": ("a.wav", NOTE)}, 400, "model", "Missing required"),
        ({"model": "whisper-1"}, {"file": ("notes.txt", b"hi")}, 400, "file",
         "Invalid file format"),
        ({"model": "gpt-4o-transcribe", "response_format": "srt"}, {"file": ("a.wav", NOTE)},
         400, "response_format", "not compatible with model"),
        ({"model": "whisper-1", "response_format": "docx"}, {"file": ("a.wav", NOTE)}, 400,
         "response_format", "Invalid value"),
        ({"model": "whisper-1", "language": "english"}, {"file": ("a.wav", NOTE)}, 400,
         "language", "ISO-639-1"),
        ({"model": "whisper-1", "temperature": "hot"}, {"file": ("a.wav", NOTE)}, 400,
         "temperature", "expected a number"),
    ],
)  # fmt: skip
def test_transcription_refusals(
    server: MockServer,
    data: dict[str, str],
    files: dict[str, Any] | None,
    status: int,
    param: str | None,
    words: str,
) -> None:
    url = f"{server.base_url}/audio/transcriptions"
    if files is None:
        reply = httpx.post(url, json=data, headers=AUTH)
    else:
        reply = httpx.post(url, data=data, files=files, headers=AUTH)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert (error["param"], words in error["message"]) == (param, True), error


def test_a_boundary_no_body_can_carry_is_a_400(server: MockServer) -> None:
    """A Content-Type whose boundary is not Latin-1 (sent as UTF-8 bytes) is refused, not a 500."""
    body = b"--\xe2\x82\xac\r\nContent-Disposition: form-data; name=model\r\n\r\nwhisper-1\r\n"
    with socket.create_connection((server.host, server.port)) as conn:
        conn.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer sk-test\r\n"
            b"Content-Type: multipart/form-data; boundary=\xe2\x82\xac\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"expected multipart/form-data" in reply


def test_a_refused_upload_is_not_kept_whole_in_the_journal(server: MockServer) -> None:
    big = note(30.0)
    reply = httpx.post(
        f"{server.base_url}/audio/transcriptions",
        data={"model": "whisper-1", "response_format": "docx"},
        files={"file": ("a.wav", big)},
        headers=AUTH,
    )
    assert reply.status_code == 400
    kept = server.last.body
    assert isinstance(kept, str)
    assert len(kept) < 20_000 < len(big)


# --- moderation --------------------------------------------------------------------------------


def test_moderation_by_default_flags_nothing_with_every_category(
    client: openai.OpenAI, server: MockServer
) -> None:
    result = client.moderations.create(model="omni-moderation-latest", input="Have a nice day")
    assert result.model == "omni-moderation-latest"
    (only,) = result.results
    assert only.flagged is False
    raw = server.last
    assert raw.api == "moderations"
    assert raw.scenario == "generated"
    body = only.model_dump(by_alias=True)
    assert set(body["categories"]) == set(MODERATION_CATEGORIES)
    assert not any(body["categories"].values())
    assert all(0 < s < 0.01 for s in body["category_scores"].values())
    assert body["category_applied_input_types"]["violence"] == ["text"]
    again = client.moderations.create(model="omni-moderation-latest", input="Have a nice day")
    assert again.results[0].category_scores == only.category_scores  # deterministic
    several = client.moderations.create(input=["one", "two", "three"])
    assert len(several.results) == 3
    legacy = client.moderations.create(model="text-moderation-latest", input="hi")
    assert legacy.results[0].categories.illicit is None  # not a category of the text models


def test_moderation_of_an_image_and_text(client: openai.OpenAI) -> None:
    result = client.moderations.create(
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "Is this fine?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    )
    (only,) = result.results
    applied = only.model_dump(by_alias=True)["category_applied_input_types"]
    assert applied["violence"] == ["text", "image"]
    assert applied["hate"] == ["text"]
    refused = httpx.post(
        f"{client.base_url}moderations",
        json={"model": "text-moderation-latest",
              "input": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        headers=AUTH,
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input"


def test_a_scenario_says_which_categories_fire(client: openai.OpenAI, server: MockServer) -> None:
    result = client.moderations.create(input="I will hurt you")
    (only,) = result.results
    assert only.flagged is True
    assert only.categories.violence
    assert only.categories.harassment_threatening
    assert not only.categories.hate
    assert only.category_scores.violence == 0.97
    assert 0.9 <= only.category_scores.harassment_threatening < 1
    assert only.category_scores.hate < 0.01
    assert server.last.scenario == "flagged"
    assert (server.last.reply or {})["flagged"] == ["violence", "harassment/threatening"]


def test_unknown_category_names_fail_at_load_time() -> None:
    text = """
scenarios:
  - match: {api: moderations}
    reply:
      flagged: [violence, self_harm]
      scores: {violense: 0.9}
"""
    with pytest.raises(ScenarioError) as raised:
        load_text(text, "mod.yaml")
    problems = [str(p) for p in raised.value.problems]
    assert any(p.startswith("mod.yaml:5: scenarios[0].reply.flagged[1]: 'self_harm' is not one of")
               for p in problems), problems  # fmt: skip
    assert any("mod.yaml:6: scenarios[0].reply.scores.violense: unknown key (did you mean "
               "'violence'?)" in p for p in problems), problems  # fmt: skip


# --- journal, inspector, recording ---------------------------------------------------------------


@DEPRECATED
def test_every_route_journals_and_shows_in_the_inspector(
    client: openai.OpenAI, server: MockServer
) -> None:
    client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT, response_format="opus")
    client.audio.transcriptions.create(model="whisper-1", file=("voice-note.wav", NOTE))
    client.audio.translations.create(model="whisper-1", file=("voice-note.wav", NOTE))
    client.moderations.create(input="hello")
    recent = httpx.get(f"{server.url}/_mock/journal", headers=AUTH).json()["entries"][-4:]
    assert [e["api"] for e in recent] == ["speech", "transcriptions", "translations", "moderations"]
    detail = httpx.get(f"{server.url}/_mock/journal/{recent[1]['seq']}", headers=AUTH).json()
    assert detail["body"]["file"]["filename"] == "voice-note.wav"
    assert detail["body"]["file"]["duration"] == 6.0
    assert detail["reply"]["content"] == SCRIPTED
    why = httpx.post(
        f"{server.url}/_mock/explain", json={"seq": recent[1]["seq"]}, headers=AUTH
    ).json()
    assert why["answer"]["scenario"] == "voice note"  # explained from the upload as parsed
    made = httpx.get(f"{server.url}/_mock/journal/{recent[1]['seq']}/scenario", headers=AUTH)
    assert len(load_text(made.text, "made.yaml")) == 1  # it loads
    assert "file: voice-note.wav" in made.text
    assert f"content: {SCRIPTED}" in made.text
    moderated = httpx.get(f"{server.url}/_mock/journal/{recent[3]['seq']}/scenario", headers=AUTH)
    assert "flagged: []" in moderated.text
    assert load_text(moderated.text, "made.yaml")
    speech = httpx.get(f"{server.url}/_mock/journal/{recent[0]['seq']}", headers=AUTH).json()
    assert speech["reply"]["audio"]["format"] == "opus"


def test_audio_and_moderations_record_and_replay(tmp_path: Path) -> None:
    """Transcripts and moderations are recorded as replies; speech, a file, is kept beside
    its scenario and replayed byte for byte."""
    upstream_scenarios = [
        {"match": {"api": "transcriptions"}, "reply": {"content": "Recorded words."}},
        {"match": {"api": "moderations"}, "reply": {"flagged": ["hate"]}},
        {"match": {"api": "speech"}, "reply": {"content": "A longer recorded voice, " * 4}},
    ]
    out = tmp_path / "recorded"
    with MockServer(upstream_scenarios) as upstream:
        rec = Recorder(upstream=upstream.base_url, out=out)
        with (
            MockServer([], options=Options(recorder=rec)) as recorder,
            openai.OpenAI(base_url=recorder.base_url, api_key="k", max_retries=0) as api,
        ):
            said = api.audio.transcriptions.create(model="whisper-1", file=("a.wav", NOTE)).text
            text = api.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", NOTE), response_format="srt"
            )
            flagged = api.moderations.create(input="something hateful").results[0]
            spoken = api.audio.speech.create(model="tts-1", voice="alloy", input=SHORT)
            outcomes = [e.outcome for e in recorder.journal]
    assert outcomes == ["recorded"] * 4
    assert len(list(out.glob("*.yaml"))) == 4
    (kept,) = out.glob("*.mp3")
    assert kept.read_bytes() == spoken.content
    with (
        MockServer(load_paths([out])) as replay,
        openai.OpenAI(base_url=replay.base_url, api_key="k", max_retries=0) as api,
    ):
        assert api.audio.transcriptions.create(model="whisper-1", file=("a.wav", NOTE)).text == said
        assert (
            api.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", NOTE), response_format="srt"
            )
            == text
        )
        again = api.moderations.create(input="something hateful").results[0]
        assert again.categories == flagged.categories
        assert again.flagged
        assert again.category_scores == flagged.category_scores
        other = api.audio.transcriptions.create(model="whisper-1", file=("a.wav", note(2.0)))
        assert other.text != said  # another file: not the recording's
        replayed = api.audio.speech.create(model="tts-1", voice="alloy", input=SHORT)
        assert replayed.content == spoken.content  # the upstream's voice, not the mock's own
        assert replayed.response.headers["content-type"] == "audio/mpeg"
        assert replay.journal[-1].scenario.startswith("speech-")
        mine = api.audio.speech.create(model="tts-1", voice="alloy", input=SHORT + " Again.")
        assert decode(mine.content)[0] < decode(spoken.content)[0]


# --- the documentation's examples --------------------------------------------------------------


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    return out.getvalue()


def test_docs_speech_example() -> None:
    assert _run(example("speech-to-file")) == "3.0 s\n"


def test_docs_transcription_example() -> None:
    out = _run(example("transcribe-a-voice-note"))
    (shown,) = [b.text for b in blocks("text") if b.page == "docs/audio.md"]
    assert out == shown + "\n\n"  # the SRT ends with a blank line, and print() adds one


def test_docs_moderation_example() -> None:
    assert _run(example("moderation-flags")) == "False False\nTrue True\n"


def test_docs_yaml_examples_answer_the_requests_meant_for_them() -> None:
    texts = [b.text for b in blocks("yaml") if b.page == "docs/audio.md"]
    scenarios = [s for text in texts for s in load_text(text, "docs/audio.md")]
    exact = io.BytesIO()
    with wave.open(exact, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(16_000)
        file.writeframes(bytes(2 * 16_000))
    with (
        MockServer(scenarios) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        answered = []
        with pytest.raises(openai.InternalServerError):
            api.audio.speech.create(model="tts-1", voice="alloy", input="Read my voicemail")
        answered.append(server.last.scenario)
        api.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=("c.wav", NOTE))
        answered.append(server.last.scenario)
        api.audio.transcriptions.create(model="whisper-1", file=("voice-note.wav", NOTE))
        answered.append(server.last.scenario)
        french = api.audio.transcriptions.create(
            model="whisper-1", file=("memo-12.m4a", b"\0" * 32), language="fr"
        )
        assert french.text == "Rappelle-moi demain."
        answered.append(server.last.scenario)
        api.audio.transcriptions.create(model="whisper-1", file=("any.wav", exact.getvalue()))
        answered.append(server.last.scenario)
        assert api.moderations.create(input="I will hurt you").results[0].flagged
        answered.append(server.last.scenario)
    assert answered == [s.name for s in scenarios]


def test_the_node_sdk_speaks_uploads_and_moderates(server: MockServer, tmp_path: Path) -> None:
    """The Node SDK builds its multipart body its own way (``toFile``, fetch's FormData)."""
    node = shutil.which("node")
    folder = Path(__file__).parent / "node"
    if node is None or not (folder / "node_modules" / "openai").is_dir():
        pytest.fail("this test needs node and the SDKs: cd tests/node && npm ci", pytrace=False)
    wav = tmp_path / "voice-note.wav"
    wav.write_bytes(NOTE)
    run = subprocess.run(
        [node, "audio.mjs", server.url, str(wav)], cwd=folder, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {
        "speech": {"type": "audio/wav", "riff": "RIFF"},
        "text": SCRIPTED,
        "duration": 6.0,
        "lastWordEnd": 6.0,
        "streamed": SCRIPTED,
        "flagged": True,
    }


def test_flagged_categories_in_a_scenario_for_every_api_are_a_warning() -> None:
    from mockserver.scenarios.lint import warnings

    loose = load_text("- {name: loose, reply: {flagged: [hate]}}\n", "m.yaml")
    assert [str(p) for p in warnings(loose)] == [
        "m.yaml:1: warning: scenario 'loose' answers with 'flagged' categories, which only "
        "moderations read, but it matches every API (a chat request gets an empty message); "
        "add match.api: moderations"
    ]
    scoped = "- {name: ok, match: {api: moderations}, reply: {flagged: [hate]}}\n"
    assert warnings(load_text(scoped, "m.yaml")) == []


def test_the_unmatched_default_reply_does_not_become_a_transcript() -> None:
    """``--unmatched default`` answers chat with a canned text; these routes answer for
    themselves first (a transcript, not the chat text; speech of the request's text)."""
    from mockserver.scenarios.loader import load_defaults

    fallback = next(s for s in load_defaults() if s.name == "default")
    with (
        MockServer([], options=Options(fallback=fallback)) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        text = api.audio.transcriptions.create(model="whisper-1", file=("a.wav", NOTE)).text
        assert "mockserver" not in text
        assert server.last.scenario == "generated"
        chat = api.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert "scripted reply" in (chat.choices[0].message.content or "")


def test_litellm_transcribes_speaks_and_moderates(server: MockServer, tmp_path: Path) -> None:
    """In a process of its own: litellm's first call changes what a later test's litellm
    warns about (a pydantic warning, an error under this suite's filters)."""
    wav = tmp_path / "voice-note.wav"
    wav.write_bytes(NOTE)
    code = f"""
import litellm
where = {{"api_base": {server.base_url!r}, "api_key": "sk-test"}}
heard = litellm.transcription(
    model="whisper-1", file=("voice-note.wav", open({str(wav)!r}, "rb").read()), **where
)
spoken = litellm.speech(model="openai/tts-1", voice="alloy", input="Hello there.", **where)
checked = litellm.moderation(input="I will hurt you", model="omni-moderation-latest", **where)
print(heard.text)
print(spoken.content[:3] == b"\\xff\\xf3\\x44", checked.results[0].flagged)
"""
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [SCRIPTED, "True True"]  # an MP3 frame; flagged


def test_prompt_caching_leaves_these_routes_alone() -> None:
    """``serve --prompt-cache`` simulates caching for conversations; these are not one."""
    with (
        MockServer([], options=Options(prompt_cache=True)) as server,
        openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as api,
    ):
        for _ in range(2):
            api.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", NOTE))
            api.moderations.create(input="x" * 5000)
            api.audio.speech.create(model="tts-1", voice="alloy", input="y " * 1500)
        assert all("prompt_cache" not in e.extra for e in server.journal)
