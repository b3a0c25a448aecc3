"""Images: ``POST /v1/images/generations`` (JSON) and ``/v1/images/edits`` (multipart, one or
several ``image`` files and an optional ``mask``), each also without ``/v1``.

Needs no script: a request no scenario answers gets generated images, deterministic in the
prompt (and the images edited), that decode as real files of the size and format asked for.
``b64_json`` for the GPT image models, ``url`` for DALL-E or where ``response_format`` asks for
it (the mock serves the bytes itself, at ``/media/...``). A scenario can pin the files, set
``revised_prompt``, or answer with an error, a fault, a delay or steps. ``stream`` sends
``partial_images`` previews and the final image as the SDK's ``image_generation.*`` (or
``image_edit.*``) events.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from typing import Any

from ..core.errors import APIError, invalid_type, missing_param
from ..core.forms import Upload, is_form, parse_form
from ..core.request import (
    Request,
    check_range,
    integral,
    invalid_value,
    json_object,
    required_text,
)
from ..core.tokens import count_tokens
from ..media.blobs import Blob
from ..media.images import FORMATS, Picture, dimensions, encode, seed_of, sniff
from . import NOWHERE, Answer, Frame, Lookup, Protocol, Target, dumps, sse_event
from .capture import Captured

DEFAULT_MODEL = "gpt-image-2"
"""The relay's model: what a request that names none gets (the SDK makes ``model`` optional)."""
MAX_N = 10
MAX_PROMPT = 32_000
MAX_PARTIAL = 3
QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto", "standard", "hd")
BACKGROUNDS = ("transparent", "opaque", "auto")
RESPONSE_FORMATS = ("url", "b64_json")
_GPT_IMAGE_1_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
_FIXED_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "gpt-image-1": _GPT_IMAGE_1_SIZES,
    "gpt-image-1-mini": _GPT_IMAGE_1_SIZES,
    "gpt-image-1.5": _GPT_IMAGE_1_SIZES,
    "chatgpt-image-latest": _GPT_IMAGE_1_SIZES,
}
"""Models with a list of sizes; the others (``gpt-image-2`` and later, a relay's own names)
take any ``WIDTHxHEIGHT`` within ``_flexible``'s limits."""
MAX_EDGE, MAX_PIXELS = 3840, 3840 * 2160
DETAIL = {"low": 12, "medium": 24, "high": 40, "xhigh": 48, "max": 56, "hd": 40}
"""Tiles across the longer edge, by quality: better quality, finer mosaic."""
OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "xhigh": 6240, "max": 8320}
"""Image output tokens of a 1024x1024 image by quality (gpt-image-1's table), scaled by area."""
_INTEGERS = ("n", "output_compression", "partial_images")
_BOOLEANS = ("stream",)


def is_dalle(model: str) -> bool:
    return model.startswith("dall-e")


def _size_text(w: int, h: int) -> str:
    return f"{w}x{h}"


def _flexible(size: str) -> tuple[int, int]:
    """A free ``WIDTHxHEIGHT`` (gpt-image-2): edges divisible by 16, aspect ratio within
    1:3..3:1, at most 3840 a side and 3840x2160 in pixels. The wording is ours."""
    w_text, _, h_text = size.partition("x")
    if w_text.isdigit() and h_text.isdigit():
        w, h = int(w_text), int(h_text)
        if (w and h and w % 16 == 0 and h % 16 == 0 and max(w, h) <= 3 * min(w, h)
                and max(w, h) <= MAX_EDGE and w * h <= MAX_PIXELS):  # fmt: skip
            return w, h
    raise APIError(
        400,
        f"Invalid value: '{size}'. The size must be 'auto' or WIDTHxHEIGHT with both edges "
        f"divisible by 16, an aspect ratio between 1:3 and 3:1, edges of at most {MAX_EDGE} "
        f"and at most {MAX_PIXELS} pixels (3840x2160).",
        param="size",
        code="invalid_value",
    )


def output_size(model: str, size: str | None, default: tuple[int, int]) -> tuple[int, int]:
    """The size asked for, checked against the model's; ``auto`` (or none) is ``default``."""
    fixed = _FIXED_SIZES.get(model)
    if fixed is not None and size is not None and size not in fixed:
        raise invalid_value("size", size, fixed)
    if size is None or size == "auto":
        return default
    if fixed is not None:
        w, _, h = size.partition("x")
        return int(w), int(h)
    return _flexible(size)


def _form_body(raw: bytes, content_type: str) -> tuple[dict[str, Any], tuple[Upload, ...]]:
    """A multipart form as the body it stands for: text fields typed as JSON would be (the
    SDK sends ``n`` as "2"), files described (name, type, size, digest), not inlined."""
    form = parse_form(raw, content_type)
    body: dict[str, Any] = {}
    for name in form.fields:
        text = form.value(name)
        assert text is not None
        value: Any = text
        if name in _INTEGERS:
            try:
                value = int(text)
            except ValueError:
                raise invalid_type(name, "an integer", text) from None
        elif name in _BOOLEANS:
            value = {"true": True, "false": False}.get(text.lower(), text)
        body[name] = value
    files: list[Upload] = []
    for name, uploads in form.files.items():
        files.extend(uploads)
        described = [u.describe() for u in uploads]
        body[name] = described if name == "image" and len(uploads) > 1 else described[0]
    return body, tuple(files)


def _check(body: dict[str, Any], edit: bool) -> tuple[str, str]:
    """The model and prompt, every parameter checked as OpenAI checks it."""
    prompt = required_text(body, "prompt", MAX_PROMPT)
    model = body.get("model")
    if model is None:
        model = DEFAULT_MODEL
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
    for name in _INTEGERS:
        value = integral(body, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_type(name, "an integer", value)
    check_range(body, "n", 1, 1 if model == "dall-e-3" else MAX_N)
    check_range(body, "output_compression", 0, 100)
    check_range(body, "partial_images", 0, MAX_PARTIAL)
    enums = (("quality", QUALITIES), ("background", BACKGROUNDS), ("output_format", FORMATS),
             ("response_format", RESPONSE_FORMATS), ("moderation", ("low", "auto")))  # fmt: skip
    for name, allowed in enums:
        value = body.get(name)
        if value is not None and value not in allowed:
            raise invalid_value(name, value, allowed)
    for name in ("user",):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise invalid_type(name, "a string", body[name])
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid_type("stream", "a boolean", stream)
    if stream and is_dalle(model):
        raise APIError(400, f"Streaming is not supported for {model}.", param="stream")
    size = body.get("size")
    if size is not None and not isinstance(size, str):
        raise invalid_type("size", "a string", size)
    if body.get("background") == "transparent" and body.get("output_format") == "jpeg":
        raise APIError(
            400,
            "Transparent background is not supported for the jpeg output format; use png or webp.",
            param="background",
            code="invalid_value",
        )
    if edit and model == "dall-e-3":
        raise invalid_value("model", model, ("dall-e-2", "gpt-image-1", DEFAULT_MODEL))
    return model, prompt


def _checked_images(files: tuple[Upload, ...]) -> tuple[int, int] | None:
    """The edited images and the mask checked: real PNG, JPEG or WebP files, a PNG mask the
    size of the first image. The first image's size (what ``size: auto`` answers with)."""
    images = [f for f in files if f.field == "image"]
    if not images:
        raise missing_param("image")
    first = None
    for upload in images:
        kind = sniff(upload.data)
        if kind not in FORMATS:
            raise APIError(
                400,
                f"Invalid file '{upload.filename}': unsupported mimetype "
                f"('{upload.content_type}'). Supported file formats are 'image/jpeg', "
                "'image/png', and 'image/webp'.",
                param="image",
                code="unsupported_file_mimetype",
            )
        first = first or dimensions(upload.data)
    mask = next((f for f in files if f.field == "mask"), None)
    if mask is not None:
        if sniff(mask.data) != "png":
            raise APIError(
                400,
                f"Invalid mask '{mask.filename}': the mask must be a PNG image.",
                param="mask",
                code="invalid_image_format",
            )
        size = dimensions(mask.data)
        if first is not None and size != first:
            raise APIError(
                400,
                "Invalid mask image: the mask and the image must be the same size (image "
                f"{_size_text(*first)}, mask {_size_text(*size) if size else 'unknown'}).",
                param="mask",
                code="invalid_mask_image",
            )
    return first


def parse_images(raw: bytes, headers: Mapping[str, str], edit: bool) -> Request:
    content_type = headers.get("Content-Type", "")
    if is_form(content_type):
        body, files = _form_body(raw, content_type)
    else:
        body, files = json_object(raw), ()
    model, prompt = _check(body, edit)
    native = 1024, 1024
    if edit:
        native = _checked_images(files) or native
    w, h = output_size(model, body.get("size"), native)
    if edit and max(w, h) > MAX_EDGE:
        w, h = native = 1024, 1024
    return Request(
        api="images",
        body=body,
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=bool(body.get("stream")),
        n=body.get("n") or 1,
        headers=headers,
        params={"size": (w, h)},
        files=files,
        tokens=count_tokens(prompt),
    )


class Images(Protocol):
    """Generations; ``for_route`` gives edits their own instance."""

    name = "images"
    routes = ("/images/generations", "/images/edits")
    id_prefix = "img-"
    answers_unmatched = True

    def __init__(self, edit: bool = False) -> None:
        self.edit = edit
        self.event = "image_edit" if edit else "image_generation"

    def for_route(self, route: str) -> Protocol:
        return Images(edit=route.endswith("/edits"))

    def parse(
        self, raw: bytes, headers: Mapping[str, str], lookup: Lookup, target: Target = NOWHERE
    ) -> Request:
        return parse_images(raw, headers, self.edit)

    # --- what is drawn ---

    def settings(self, answer: Answer) -> dict[str, Any]:
        """What the reply reports it did (format, quality, background, size), ``auto``s
        resolved; built once per request."""
        done = answer.wire.get("settings")
        if done is None:
            body = answer.request.body
            w, h = answer.request.params["size"]
            model = answer.request.model
            quality = body.get("quality") or "auto"
            background = body.get("background") or "auto"
            done = answer.wire["settings"] = {
                "output_format": "png" if is_dalle(model) else body.get("output_format") or "png",
                "quality": ("standard" if is_dalle(model) else "medium")
                if quality == "auto" else quality,
                "background": "opaque" if background == "auto" else background,
                "size": _size_text(w, h),
                "width": w,
                "height": h,
                "url": body.get("response_format") == "url"
                or (is_dalle(model) and body.get("response_format") is None),
            }  # fmt: skip
        return done

    def picture(self, answer: Answer, index: int, reveal: float = 1.0) -> Picture:
        s = self.settings(answer)
        request = answer.request
        seed = seed_of(request.last_user, request.model, index, answer.seed,
                       *(f.digest for f in request.files))  # fmt: skip
        return Picture(s["width"], s["height"], seed, DETAIL.get(s["quality"], 24),
                       s["background"] == "transparent", reveal)  # fmt: skip

    def image(self, answer: Answer, index: int, reveal: float = 1.0) -> bytes | Blob:
        """Image ``index``: the scenario's pinned file, else one drawn for this request."""
        pinned = answer.reply.images if answer.reply is not None else ()
        if pinned and reveal >= 1.0:
            return pinned[index % len(pinned)]
        s = self.settings(answer)
        compression = answer.request.body.get("output_compression")
        quality = 100 if compression is None else compression
        return encode(self.picture(answer, index, reveal), s["output_format"], quality)

    def url(self, answer: Answer, index: int, origin: str | None = None) -> str:
        """Where the mock serves image ``index``: the URL says how to draw it again, so any
        worker serves it with no state; a pinned file by its digest. ``origin`` "" gives the
        path alone (the journal's)."""
        if origin is None:
            origin = "http://" + answer.request.headers.get("Host", "127.0.0.1")
        pinned = answer.reply.images if answer.reply is not None else ()
        if pinned:
            blob = pinned[index % len(pinned)]
            return f"{origin}/media/files/{blob.digest}.{blob.extension}"
        pic = self.picture(answer, index)
        s = self.settings(answer)
        compression = answer.request.body.get("output_compression")
        return f"{origin}/media/images/{image_token(pic, s['output_format'], compression)}"

    def reply_summary(self, answer: Answer) -> dict[str, Any]:
        """The images, by the path that serves each (the inspector shows them)."""
        s = self.settings(answer)
        images = [self.url(answer, i, "") for i in range(answer.request.n)]
        return {"images": images, "size": s["size"], "output_format": s["output_format"]}

    def revised_prompt(self, answer: Answer) -> str | None:
        reply = answer.reply
        if reply is not None and reply.revised_prompt is not None:
            return reply.revised_prompt
        return answer.request.last_user if answer.request.model == "dall-e-3" else None

    def usage(self, answer: Answer) -> dict[str, Any]:
        """The GPT image models' usage: the prompt's text tokens, the edited images' tokens,
        and image output tokens by quality and area (gpt-image-1's table, an estimate)."""
        s = self.settings(answer)
        text = answer.request.prompt_tokens
        images = sum(_input_image_tokens(f) for f in answer.request.files if f.field == "image")
        per_image = OUTPUT_TOKENS.get(s["quality"], OUTPUT_TOKENS["medium"])
        output = math.ceil(per_image * s["width"] * s["height"] / (1024 * 1024))
        output *= answer.request.n
        return {
            "input_tokens": text + images,
            "input_tokens_details": {"image_tokens": images, "text_tokens": text},
            "output_tokens": output,
            "total_tokens": text + images + output,
            "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
        }

    # --- the wire ---

    def data(self, answer: Answer, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {}
        if self.settings(answer)["url"]:
            item["url"] = self.url(answer, index)
        else:
            item["b64_json"] = _b64(self.image(answer, index))
        revised = self.revised_prompt(answer)
        if revised is not None:
            item["revised_prompt"] = revised
        return item

    def body(self, answer: Answer) -> bytes:
        request = answer.request
        body: dict[str, Any] = {"created": answer.env.created}
        body["data"] = [self.data(answer, i) for i in range(request.n)]
        if not is_dalle(request.model):
            s = self.settings(answer)
            body.update(background=s["background"], output_format=s["output_format"],
                        quality=s["quality"], size=s["size"], usage=self.usage(answer))  # fmt: skip
        return dumps(body).encode()

    def _event(self, answer: Answer, kind: str, b64: str, **extra: Any) -> bytes:
        s = self.settings(answer)
        name = f"{self.event}.{kind}"
        event = {"type": name, "b64_json": b64, "background": s["background"],
                 "created_at": answer.env.created, "output_format": s["output_format"],
                 "quality": s["quality"], "size": s["size"], **extra}  # fmt: skip
        return sse_event(name, event)

    def frames(self, answer: Answer) -> list[Frame]:
        """``partial_images`` previews of the first image (more of its tiles each time), paced
        like text; the completed images are ``end``."""
        count = answer.request.body.get("partial_images") or 0
        return [
            Frame(
                self._event(
                    answer,
                    "partial_image",
                    _b64(self.image(answer, 0, (k + 1) / (count + 1))),
                    partial_image_index=k,
                ),
                paced=True,
            )
            for k in range(count)
        ]

    def end(self, answer: Answer, sent: int) -> bytes:
        usage = self.usage(answer)
        return b"".join(
            self._event(answer, "completed", _b64(self.image(answer, i)), usage=usage)
            for i in range(answer.request.n)
        )

    def stream_error(self, err: APIError, answer: Answer, sent: int) -> bytes:
        return sse_event("error", {"type": "error", "error": err.body()["error"]})

    def read_body(self, body: Any) -> Captured | None:
        return images_body(body)


# --- reading an upstream's reply back (recording) -------------------------------------------


def images_body(body: Any) -> Captured | None:
    """``reply.images``: each ``b64_json`` image as a file named by its digest (the recorder
    writes it beside the scenario); None for ``url`` replies, kept as they came (``raw``): the
    files behind those URLs are not the upstream's to give."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data:
        return None
    files: dict[str, bytes] = {}
    names = []
    for item in data:
        b64 = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(b64, str):
            return None
        raw = base64.b64decode(b64)
        name = f"image-{hashlib.sha256(raw).hexdigest()[:16]}.{sniff(raw) or 'bin'}"
        files[name] = raw
        names.append(name)
    extra: dict[str, Any] = {"images": names}
    revised = data[0].get("revised_prompt")
    if isinstance(revised, str):
        extra["revised_prompt"] = revised
    return Captured([], None, None, extra=extra, files=files)


def _b64(image: bytes | Blob) -> str:
    data = image.data if isinstance(image, Blob) else image
    return base64.b64encode(data).decode()


def _input_image_tokens(upload: Upload) -> int:
    """An input image's tokens: 65, and 129 a 512-pixel tile (at most four): an estimate."""
    size = dimensions(upload.data) or (1024, 1024)
    tiles = math.ceil(size[0] / 512) * math.ceil(size[1] / 512)
    return 65 + 129 * min(tiles, 4)


def image_token(pic: Picture, fmt: str, compression: int | None) -> str:
    """The last part of a generated image's URL: everything needed to draw it again."""
    quality = 100 if compression is None else compression
    return (f"{pic.seed:016x}-{pic.width}x{pic.height}-{pic.detail}-{int(pic.transparent)}"
            f"-{quality}.{fmt}")  # fmt: skip


def from_token(token: str) -> tuple[Picture, str, int] | None:
    """``image_token`` read back (None if it is not one): what ``/media/images/`` serves."""
    stem, _, fmt = token.rpartition(".")
    parts = stem.split("-")
    if fmt not in FORMATS or len(parts) != 5:
        return None
    try:
        seed = int(parts[0], 16)
        w, h = (int(x) for x in parts[1].split("x"))
        detail, transparent, quality = int(parts[2]), parts[3] == "1", int(parts[4])
    except ValueError:
        return None
    if not (0 < w <= MAX_EDGE and 0 < h <= MAX_EDGE and 1 <= detail <= 64
            and 0 <= quality <= 100):  # fmt: skip
        return None
    return Picture(w, h, seed, detail, transparent), fmt, quality
