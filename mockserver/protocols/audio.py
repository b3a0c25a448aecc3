"""Audio: ``POST /v1/audio/speech``, ``/v1/audio/transcriptions`` and ``/v1/audio/translations``.

Speech needs no script: the reply is a real file in the requested format (``media.audio``)
that plays longer the more there is to say (0.3 s a token, divided by ``speed``), or a stream
of ``speech.audio.delta`` events carrying it in base64 (``stream_format: sse``). A scenario
(``api: speech``) can answer with an error, a fault or a delay, or give the text to speak.

Transcription and translation read a multipart form. The transcript is the scenario's
``content`` (``api: transcriptions`` / ``translations``); with none, a generated one, the same
for the same audio (seeded by its digest). Timestamps (``verbose_json``, ``srt``, ``vtt``)
spread over the audio's real duration when the file's headers give it, else over the time the
words would take (0.4 s a word). ``stream: true`` (not for ``whisper-1``, which ignores it as
OpenAI's does) sends ``transcript.text.delta`` events, then ``transcript.text.done``.

For matching, the request's conversation is one user message: the speech's ``input``, or the
transcription's ``prompt`` (with the audio's digest as a part, so recordings tell files apart);
the form's fields are its ``body`` and the file is ``body.file`` (name, type, size, sha256).
"""

from __future__ import annotations

import base64
import json
import math
import re
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..core.caching import Plan
from ..core.errors import APIError, invalid_type, missing_param
from ..core.forms import Upload, parse_form
from ..core.request import Request, body_and_model, invalid_value, required_text
from ..core.tokens import count_tokens, split_tokens
from ..media import audio
from . import NOWHERE, Answer, Frame, Lookup, Protocol, Target, dumps
from .capture import Captured, Event, Piece, text_of

if TYPE_CHECKING:
    from faker import Faker

MAX_INPUT = 4096
SECONDS_PER_TOKEN = 0.3
"""Speech: about 150 words a minute at ``speed`` 1."""
SECONDS_PER_WORD = 0.4
"""Transcription of a file whose duration cannot be read: the time its words would take."""
AUDIO_TOKENS_PER_SECOND = 10
"""Audio tokens (usage of the gpt-4o models): an estimate, OpenAI does not publish the rate."""
SPEECH_TOKENS_PER_SECOND = 20
DELTA_BYTES = 4800
"""Audio bytes per ``speech.audio.delta`` (before base64): 0.1 s of 24 kHz PCM."""
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
TEXT_PLAIN = "text/plain; charset=utf-8"
UPLOAD_FORMATS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
LANGUAGES = {
    "af": "afrikaans", "ar": "arabic", "bg": "bulgarian", "ca": "catalan", "cs": "czech",
    "cy": "welsh", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "et": "estonian", "fa": "persian", "fi": "finnish", "fr": "french",
    "he": "hebrew", "hi": "hindi", "hr": "croatian", "hu": "hungarian", "id": "indonesian",
    "it": "italian", "ja": "japanese", "ko": "korean", "lt": "lithuanian", "lv": "latvian",
    "ms": "malay", "nl": "dutch", "no": "norwegian", "pl": "polish", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sk": "slovak", "sl": "slovenian", "sr": "serbian",
    "sv": "swedish", "sw": "swahili", "th": "thai", "tr": "turkish", "uk": "ukrainian",
    "ur": "urdu", "vi": "vietnamese", "zh": "chinese",
}  # fmt: skip
"""Whisper reports the language by name; other ISO-639-1 codes are reported as given."""
_SENTENCE = re.compile("[^.!?\u3002\uff01\uff1f]+(?:[.!?\u3002\uff01\uff1f]+|$)")
"""A sentence, ended as Latin or CJK text ends one (the full stop, and full-width ! and ?)."""


def _whisper(model: str) -> bool:
    """Models that bill by duration and ignore ``stream``."""
    return model.startswith("whisper")


def _formats(model: str) -> tuple[str, ...]:
    """The response formats ``model`` gives: the gpt-4o models ``json`` and ``text`` only (and
    ``diarized_json`` for the diarizing one), the others all but ``diarized_json``."""
    if "diarize" in model:
        return ("json", "text", "diarized_json")
    if model.startswith("gpt-"):
        return ("json", "text")
    return TRANSCRIPT_FORMATS[:-1]


_LABEL = re.compile(r"\s*([^:\n]{1,40}):\s+(\S.*)")


def turns(text: str, names: list[str]) -> list[tuple[str, str]]:
    """Who says what, for the diarizing model: lines written ``SPEAKER: words`` as written;
    otherwise each sentence in turn by the known speakers, or by A and B."""
    lines = [line for line in text.split("\n") if line.strip()]
    labelled = [_LABEL.fullmatch(line) for line in lines]
    if lines and all(labelled):
        return [(m.group(1).strip(), m.group(2).strip()) for m in labelled if m]
    voices = names or ["A", "B"]
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    return [(voices[i % len(voices)], s) for i, s in enumerate(sentences)]


def _number(body: Mapping[str, Any], name: str, low: float, high: float) -> float | None:
    """A number parameter (a JSON number, or a form field's text), checked against its range."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid_type(name, "a number", value) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise invalid_type(name, "a number", value)
    if not low <= value <= high:
        side, bound = (
            ("below minimum", f">= {low}") if value < low else ("above maximum", f"<= {high}")
        )
        raise APIError(
            400,
            f"Invalid '{name}': decimal {side} value. Expected a value {bound}, "
            f"but got {value} instead.",
            param=name,
            code=f"decimal_{'below_min' if value < low else 'above_max'}_value",
        )
    return float(value)


def _string(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_type(name, "a string", value)
    return value


def _data(event: dict[str, Any]) -> bytes:
    """A server-sent event with its type in its data (no ``event:`` line), as OpenAI's audio
    streams send them."""
    return b"data: " + dumps(event).encode() + b"\n\n"


# --- speech ----------------------------------------------------------------------------------


def _voice(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return str(value["id"])
    if value is None:
        raise missing_param("voice")
    raise invalid_type("voice", "a string or an object with an id", value)


def parse_speech(raw: bytes, headers: Mapping[str, str], lookup: Lookup) -> Request:
    body, model = body_and_model(raw)
    text = required_text(body, "input", MAX_INPUT)
    _voice(body.get("voice"))
    fmt = body.get("response_format")
    if fmt is not None and fmt not in audio.FORMATS:
        raise invalid_value("response_format", fmt, audio.FORMATS)
    _number(body, "speed", 0.25, 4.0)
    stream_format = body.get("stream_format")
    if stream_format is not None and stream_format not in ("sse", "audio"):
        raise invalid_value("stream_format", stream_format, ("sse", "audio"))
    if stream_format == "sse" and model.startswith("tts-1"):
        raise APIError(
            400,
            f"stream_format 'sse' is not supported for model '{model}'.",
            param="stream_format",
            code="unsupported_value",
        )
    _string(body, "instructions")
    return Request(
        api="speech",
        body=body,
        model=model,
        messages=[{"role": "user", "content": text}],
        stream=stream_format == "sse",
        headers=headers,
        tokens=count_tokens(text),
    )


class Speech(Protocol):
    name = "speech"
    routes = ("/audio/speech",)
    id_prefix = "speech-"
    answers_unmatched = True

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_speech(raw, headers, lookup)

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # no prompt caching in OpenAI's audio APIs

    def _audio(self, answer: Answer) -> tuple[bytes, float]:
        """The file and its length in seconds, built once per answer."""
        made = answer.wire.get("audio")
        if made is None:
            body = answer.request.body
            spoken = answer.rendered.choices[0].content
            tokens = count_tokens(spoken) if spoken is not None else answer.request.prompt_tokens
            seconds = max(0.5, SECONDS_PER_TOKEN * tokens) / float(body.get("speed") or 1.0)
            fmt = body.get("response_format") or "mp3"
            voice = zlib.crc32(_voice(body.get("voice")).encode())
            data = audio.encode(fmt, seconds, voice)
            made = answer.wire["audio"] = (
                data,
                audio.samples_for(fmt, seconds) / audio.SAMPLE_RATE,
            )
        return made

    def content_type(self, answer: Answer) -> str:
        return audio.CONTENT_TYPES[answer.request.body.get("response_format") or "mp3"]

    def body(self, answer: Answer) -> bytes:
        return self._audio(answer)[0]

    def frames(self, answer: Answer) -> list[Frame]:
        data, _ = self._audio(answer)
        deltas = (
            {"type": "speech.audio.delta", "audio": base64.b64encode(piece).decode()}
            for piece in audio.pieces(data, DELTA_BYTES)
        )
        return [Frame(_data(delta), paced=True) for delta in deltas]

    def end(self, answer: Answer, sent: int) -> bytes:
        _, seconds = self._audio(answer)
        spoken = answer.usage.prompt
        out = math.ceil(seconds * SPEECH_TOKENS_PER_SECOND)
        usage = {"input_tokens": spoken, "output_tokens": out, "total_tokens": spoken + out}
        return _data({"type": "speech.audio.done", "usage": usage})

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        data, seconds = self._audio(answer)
        fmt = answer.request.body.get("response_format") or "mp3"
        return {"audio": {"format": fmt, "seconds": round(seconds, 3), "bytes": len(data)}}


# --- transcription and translation -----------------------------------------------------------


def _upload(files: Mapping[str, list[Upload]]) -> Upload:
    found = files.get("file")
    if not found:
        raise missing_param("file")
    upload = found[0]
    extension = upload.filename.rpartition(".")[2].lower() if "." in upload.filename else ""
    if extension not in UPLOAD_FORMATS:
        raise APIError(
            400,
            f"Invalid file format. Supported formats: {list(UPLOAD_FORMATS)}",
            param="file",
            code="invalid_value",
        )
    return upload


def parse_transcription(raw: bytes, headers: Mapping[str, str], api: str) -> Request:
    form = parse_form(raw, headers.get("Content-Type", ""))
    body = form.body()
    model = body.get("model")
    if not model:
        raise missing_param("model")
    upload = _upload(form.files)
    fmt = body.get("response_format") or "json"
    if fmt not in TRANSCRIPT_FORMATS:
        raise invalid_value("response_format", fmt, TRANSCRIPT_FORMATS)
    allowed = _formats(model)
    if fmt not in allowed:
        raise APIError(
            400,
            f"response_format '{fmt}' is not compatible with model '{model}'. "
            f"Use {' or '.join(repr(f) for f in allowed)}.",
            param="response_format",
            code="unsupported_value",
        )
    temperature = _number(body, "temperature", 0, 1)
    if temperature is not None:
        body["temperature"] = temperature
    language = body.get("language")
    if api == "translations" and language is not None:
        raise APIError(400, "Unrecognized request argument supplied: language", param="language")
    if language is not None and not re.fullmatch(r"[a-z]{2}", language):
        raise APIError(
            400,
            f"Invalid language '{language}'. Language parameter must be specified in "
            "ISO-639-1 format.",
            param="language",
            code="invalid_language_format",
        )
    stream = body.get("stream")
    if stream is not None and stream.lower() not in ("true", "false"):
        raise invalid_type("stream", "a boolean", stream)
    body["stream"] = stream is not None and stream.lower() == "true"
    granularities = body.get("timestamp_granularities") or []
    for value in granularities:
        if value not in ("word", "segment"):
            raise invalid_value("timestamp_granularities", value, ("word", "segment"))
    file = upload.describe()
    file["duration"] = audio.duration(upload.data)
    body["file"] = file
    prompt = body.get("prompt") or ""
    parts: list[dict[str, Any]] = [{"type": "input_audio", "sha256": file["sha256"]}]
    if prompt:
        parts.append({"type": "text", "text": prompt})
    return Request(
        api=api,
        body=body,
        model=model,
        messages=[{"role": "user", "content": parts}],
        stream=body["stream"] and not _whisper(model),
        headers=headers,
        tokens=count_tokens(prompt),
    )


FAKER_LOCALES = {
    "ar": "ar_AA", "az": "az_AZ", "bn": "bn_BD", "cs": "cs_CZ", "da": "da_DK", "de": "de_DE",
    "el": "el_GR", "en": "en_US", "es": "es_ES", "fa": "fa_IR", "fr": "fr_FR", "he": "he_IL",
    "hy": "hy_AM", "it": "it_IT", "ja": "ja_JP", "mk": "mk_MK", "nl": "nl_NL", "pl": "pl_PL",
    "ru": "ru_RU", "th": "th_TH", "uk": "uk_UA", "vi": "vi_VN", "zh": "zh_CN",
}  # fmt: skip
"""Languages Faker has words for: a generated transcript is in the request's ``language``
when it is one of these, else in English."""
_FAKERS: dict[str, Faker] = {}


def _faker(seed: int, locale: str) -> Faker:
    fake = _FAKERS.get(locale)
    if fake is None:
        from faker import Faker

        fake = _FAKERS[locale] = Faker(locale)
    fake.seed_instance(seed)
    return fake


def generated_transcript(sha256: str, seconds: float | None, language: str | None = None) -> str:
    """Sentences the same for the same audio, about as many words as its length would hold,
    in ``language`` where Faker has its words."""
    fake = _faker(int(sha256[:16], 16), FAKER_LOCALES.get(language or "en", "en_US"))
    words = max(6, round((seconds or 0) / SECONDS_PER_WORD))
    sentences: list[str] = []
    while words > 0:
        size = fake.random_int(6, 14)
        size = words if words - size < 4 else size  # no stub of a sentence at the end
        sentences.append(fake.sentence(nb_words=size, variable_nb_words=False))
        words -= size
    return " ".join(sentences)


def _timed_words(text: str, seconds: float) -> list[tuple[str, float, float]]:
    """Each word with its start and end: the duration shared out by the words' lengths."""
    words = text.split()
    total = sum(len(w) + 1 for w in words) or 1
    out, at = [], 0
    for word in words:
        start = seconds * at / total
        at += len(word) + 1
        out.append((word, round(start, 2), round(seconds * at / total, 2)))
    return out


def _segments(text: str, seconds: float) -> list[dict[str, Any]]:
    """Sentences as Whisper's segments, timed like their words."""
    words = _timed_words(text, seconds)
    out: list[dict[str, Any]] = []
    at = 0
    for sentence in (s.strip() for s in _SENTENCE.findall(text)):
        count = len(sentence.split())
        if not count:
            continue
        mine = words[at : at + count]
        at += count
        tokens = [50364 + zlib.crc32(t.encode()) % 50000 for t in split_tokens(" " + sentence)]
        out.append({
            "id": len(out), "seek": 0, "start": mine[0][1], "end": mine[-1][2],
            "text": " " + sentence, "tokens": tokens, "temperature": 0.0,
            "avg_logprob": -0.25, "compression_ratio": 1.2, "no_speech_prob": 0.01,
        })  # fmt: skip
    return out


def _clock(seconds: float, comma: bool) -> str:
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if comma else '.'}{ms:03d}"


def subtitles(segments: list[dict[str, Any]], kind: str) -> str:
    """SRT or WebVTT of the segments."""
    cues = []
    for i, seg in enumerate(segments):
        span = f"{_clock(seg['start'], kind == 'srt')} --> {_clock(seg['end'], kind == 'srt')}"
        text = seg["text"].strip()
        cues.append(f"{i + 1}\n{span}\n{text}\n" if kind == "srt" else f"{span}\n{text}\n")
    body = "\n".join(cues)
    return body + "\n" if kind == "srt" else "WEBVTT\n\n" + body + "\n"


class Transcriptions(Protocol):
    name = "transcriptions"
    routes = ("/audio/transcriptions",)
    id_prefix = "transcript-"
    answers_unmatched = True
    task = "transcribe"

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_transcription(raw, headers, self.name)

    def cache_plan(self, req: Request, scope: str, ttl: float) -> Plan | None:
        return None  # no prompt caching in OpenAI's audio APIs

    def _transcript(self, answer: Answer) -> tuple[str, float]:
        """The text and the seconds it spans, once per answer (and, for the diarizing model,
        who says what: ``wire["turns"]``)."""
        made = answer.wire.get("transcript")
        if made is None:
            body = answer.request.body
            file = body["file"]
            seconds = file["duration"]
            text = answer.rendered.choices[0].content
            if text is None:
                language = body.get("language") if self.task == "transcribe" else None
                text = generated_transcript(file["sha256"], seconds, language)
            if "diarize" in answer.request.model:
                said = answer.wire["turns"] = turns(text, body.get("known_speaker_names") or [])
                text = " ".join(words for _, words in said)
            if seconds is None:
                seconds = max(1.0, len(text.split()) * SECONDS_PER_WORD)
            made = answer.wire["transcript"] = (text, float(seconds))
        return made

    def _usage(self, answer: Answer, text: str, seconds: float) -> dict[str, Any] | None:
        if _whisper(answer.request.model):
            return {"type": "duration", "seconds": math.ceil(seconds)}
        heard = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)
        prompt, out = answer.usage.prompt, count_tokens(text)
        return {"type": "tokens", "input_tokens": heard + prompt,
                "input_token_details": {"text_tokens": prompt, "audio_tokens": heard},
                "output_tokens": out, "total_tokens": heard + prompt + out}  # fmt: skip

    def _logprobs(self, answer: Answer, text: str) -> list[dict[str, Any]] | None:
        if "logprobs" not in (answer.request.body.get("include") or ()):
            return None
        return [
            {"token": t, "logprob": -0.01, "bytes": list(t.encode())} for t in split_tokens(text)
        ]

    def _with_text(self, out: dict[str, Any], answer: Answer) -> dict[str, Any]:
        """``out`` with the whole transcript, its logprobs when asked for, and usage: the
        ``json`` body, and the stream's ``transcript.text.done``."""
        text, seconds = self._transcript(answer)
        out["text"] = text
        logprobs = self._logprobs(answer, text)
        if logprobs is not None:
            out["logprobs"] = logprobs
        usage = self._usage(answer, text, seconds)
        if usage is not None:
            out["usage"] = usage
        return out

    def _speakers(self, answer: Answer) -> list[dict[str, Any]]:
        """The diarized segments: one per turn, timed like its words."""
        text, seconds = self._transcript(answer)
        words = _timed_words(text, seconds)
        out: list[dict[str, Any]] = []
        at = 0
        for speaker, said in answer.wire["turns"]:
            mine = words[at : at + len(said.split())]
            at += len(mine)
            out.append({"type": "transcript.text.segment", "id": f"seg_{len(out)}",
                        "start": mine[0][1], "end": mine[-1][2], "text": said,
                        "speaker": speaker})  # fmt: skip
        return out

    def content_type(self, answer: Answer) -> str:
        fmt = answer.request.body.get("response_format") or "json"
        return TEXT_PLAIN if fmt in ("text", "srt", "vtt") else "application/json"

    def body(self, answer: Answer) -> bytes:
        text, seconds = self._transcript(answer)
        body = answer.request.body
        fmt = answer.request.body.get("response_format") or "json"
        if fmt == "text":
            return (text + "\n").encode()
        if fmt in ("srt", "vtt"):
            return subtitles(_segments(text, seconds), fmt).encode()
        if fmt == "json":
            return dumps(self._with_text({}, answer)).encode()
        if fmt == "diarized_json":
            diarized = {"task": "transcribe", "duration": round(seconds, 2), "text": text,
                        "segments": self._speakers(answer),
                        "usage": self._usage(answer, text, seconds)}  # fmt: skip
            return dumps(diarized).encode()
        language = body.get("language") if self.task == "transcribe" else None
        verbose: dict[str, Any] = {
            "task": self.task,
            "language": LANGUAGES.get(language or "en", language),
            "duration": round(seconds, 2),
            "text": text,
        }
        granularities = body.get("timestamp_granularities") or ["segment"]
        if "word" in granularities:
            verbose["words"] = [
                {"word": w.strip(".,!?;:\"'"), "start": s, "end": e}
                for w, s, e in _timed_words(text, seconds)
            ]
        if "segment" in granularities:
            verbose["segments"] = _segments(text, seconds)
        if self.task == "transcribe":
            verbose["usage"] = {"type": "duration", "seconds": math.ceil(seconds)}
        return dumps(verbose).encode()

    def frames(self, answer: Answer) -> list[Frame]:
        self._transcript(answer)
        if answer.request.body.get("response_format") == "diarized_json":
            return self._diarized_frames(answer)
        choice = answer.rendered.choices[0]
        pieces = choice.content_pieces
        if choice.content is None:  # generated: cut like any text, by token
            pieces = tuple(split_tokens(answer.wire["transcript"][0]))
        logprobs = self._logprobs(answer, "") is not None
        frames = []
        for piece in pieces:
            event: dict[str, Any] = {"type": "transcript.text.delta", "delta": piece}
            if logprobs:
                event["logprobs"] = self._logprobs(answer, piece)
            frames.append(Frame(_data(event), paced=True))
        return frames

    def _diarized_frames(self, answer: Answer) -> list[Frame]:
        """Each turn's words as deltas naming their segment, then the segment itself."""
        frames = []
        for i, segment in enumerate(self._speakers(answer)):
            for piece in split_tokens((" " if i else "") + segment["text"]):
                delta = {"type": "transcript.text.delta", "delta": piece,
                         "segment_id": segment["id"]}  # fmt: skip
                frames.append(Frame(_data(delta), paced=True))
            frames.append(Frame(_data(segment)))
        return frames

    def end(self, answer: Answer, sent: int) -> bytes:
        done = self._with_text({"type": "transcript.text.done"}, answer)
        return _data(done) + b"data: [DONE]\n\n"

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        text, seconds = self._transcript(answer)
        return {"content": text, "audio": {"seconds": round(seconds, 3)}}

    def read_body(self, body: Any) -> Captured | None:
        """The transcript of a JSON reply (``json``, ``verbose_json``); text formats are kept
        as ``raw`` by the recorder."""
        text = text_of(body.get("text")) if isinstance(body, dict) else None
        return None if text is None else Captured([{"content": text}])

    def read_stream(self, events: list[Event]) -> Captured | None:
        pieces, text, complete = [], None, False
        for event in events:
            if event.data.strip() == "[DONE]":
                continue
            data = json.loads(event.data)
            if data.get("type") == "transcript.text.delta":
                pieces.append(Piece("text", str(data.get("delta", "")), event.at))
            elif data.get("type") == "transcript.text.done":
                text, complete = text_of(data.get("text")), True
        if text is None:
            text = "".join(p.text for p in pieces)
        return Captured([{"content": text}], pieces=pieces, complete=complete)


class Translations(Transcriptions):
    """Always into English; no ``language``."""

    name = "translations"
    routes = ("/audio/translations",)
    id_prefix = "translation-"
    task = "translate"

    def _usage(self, answer: Answer, text: str, seconds: float) -> dict[str, Any] | None:
        return None  # OpenAI's translation objects carry none
