"""Images through the real openai SDK: every result decoded with a real image library."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image

from mockserver import MockServer, Options
from mockserver.media.images import FORMATS, Picture, dimensions, encode


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer([]) as server:
        yield server


@pytest.fixture
def client(server: MockServer) -> Iterator[openai.OpenAI]:
    server.reset()
    with openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0) as client:
        yield client


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()  # decodes every pixel: a broken stream fails here
    return image


def png(width: int, height: int, seed: int = 1) -> bytes:
    return encode(Picture(width, height, seed), "png")


def test_the_relays_example_reads_b64_json_without_asking_for_it(client: openai.OpenAI) -> None:
    result = client.images.generate(model="gpt-image-2", prompt="a lighthouse at dawn")
    assert result.data is not None
    image = decode(result.data[0].b64_json)
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert result.data[0].url is None
    assert result.data[0].revised_prompt is None
    assert (result.size, result.output_format, result.background) == ("1024x1024", "png", "opaque")
    assert result.usage is not None
    assert result.usage.input_tokens_details.text_tokens == result.usage.input_tokens > 0
    assert result.usage.output_tokens == 1056  # medium quality (auto), 1024x1024
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens


def test_the_same_prompt_draws_the_same_image_and_another_prompt_another(
    client: openai.OpenAI,
) -> None:
    def draw(prompt: str) -> bytes:
        data = client.images.generate(model="gpt-image-2", prompt=prompt, size="1024x1024").data
        assert data is not None
        assert data[0].b64_json is not None
        return base64.b64decode(data[0].b64_json)

    assert draw("a red fox") == draw("a red fox")
    assert draw("a red fox") != draw("a blue fox")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_each_format_decodes_at_the_size_asked_for(client: openai.OpenAI, fmt: str) -> None:
    result = client.images.generate(
        model="gpt-image-2",
        prompt="a wide mountain range",
        size="1536x864",
        output_format=fmt,
        output_compression=60,
        quality="low",
        n=2,
    )
    assert result.data is not None
    assert len(result.data) == 2
    images = [decode(d.b64_json) for d in result.data]
    assert [(i.format, i.size) for i in images] == [(fmt.upper(), (1536, 864))] * 2
    assert images[0].tobytes() != images[1].tobytes()  # n images, not one n times
    assert (result.output_format, result.quality, result.size) == (fmt, "low", "1536x864")


def test_a_jpeg_quality_follows_output_compression(client: openai.OpenAI) -> None:
    sizes = []
    for compression in (10, 100):
        data = client.images.generate(
            model="gpt-image-2", prompt="dunes", output_format="jpeg",
            output_compression=compression,
        ).data  # fmt: skip
        assert data is not None
        assert data[0].b64_json is not None
        sizes.append(len(base64.b64decode(data[0].b64_json)))
    assert sizes[0] < sizes[1]


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_a_transparent_background_is_transparent(client: openai.OpenAI, fmt: str) -> None:
    result = client.images.generate(
        model="gpt-image-2", prompt="a sticker of a cat", background="transparent",
        output_format=fmt, size="1024x1024",
    )  # fmt: skip
    assert result.data is not None
    image = decode(result.data[0].b64_json).convert("RGBA")
    assert image.getpixel((0, 0))[3] == 0  # type: ignore[index]
    assert image.getpixel((512, 512))[3] == 255  # type: ignore[index]
    assert result.background == "transparent"


def test_without_v1_in_the_base_url_as_the_relays_sdk_examples(server: MockServer) -> None:
    with openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0) as client:
        result = client.images.generate(model="gpt-image-2", prompt="a bare path")
    assert result.data is not None
    assert decode(result.data[0].b64_json).size == (1024, 1024)
    assert server.last.path == "/images/generations"


def test_dall_e_3_answers_a_url_the_mock_serves_and_a_revised_prompt(
    client: openai.OpenAI,
) -> None:
    result = client.images.generate(model="dall-e-3", prompt="a koi pond", size="1792x1024")
    assert result.data is not None
    item = result.data[0]
    assert item.b64_json is None
    assert item.url is not None
    assert item.revised_prompt == "a koi pond"
    fetched = httpx.get(item.url)
    assert fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (1792, 1024)
    assert result.usage is None  # DALL-E reports none


def test_response_format_url_for_a_gpt_image_model(client: openai.OpenAI) -> None:
    result = client.images.generate(
        model="gpt-image-2", prompt="a barn", response_format="url", output_format="webp"
    )
    assert result.data is not None
    assert result.data[0].url is not None
    fetched = httpx.get(result.data[0].url)
    assert fetched.headers["content-type"] == "image/webp"
    assert Image.open(io.BytesIO(fetched.content)).format == "WEBP"


def test_edit_several_images_with_a_mask(client: openai.OpenAI) -> None:
    result = client.images.edit(
        model="gpt-image-2",
        prompt="put the two together in a gift basket",
        image=[("soap.png", png(768, 512, 1), "image/png"),
               ("lotion.png", png(768, 512, 2), "image/png")],
        mask=("mask.png", png(768, 512, 3), "image/png"),
    )  # fmt: skip
    assert result.data is not None
    image = decode(result.data[0].b64_json)
    assert image.size == (768, 512)  # size auto: the first image's
    assert result.usage is not None
    assert result.usage.input_tokens_details.image_tokens == 2 * (65 + 129 * 2)


def test_an_edit_depends_on_the_images_edited(client: openai.OpenAI) -> None:
    def edit(seed: int) -> str | None:
        data = client.images.edit(
            model="gpt-image-2", prompt="make it snow", image=("a.png", png(256, 256, seed))
        ).data
        assert data is not None
        return data[0].b64_json

    assert edit(1) == edit(1)
    assert edit(1) != edit(2)


def test_a_mask_of_another_size_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(
            model="gpt-image-2",
            prompt="a hat",
            image=("a.png", png(512, 512), "image/png"),
            mask=("m.png", png(256, 256), "image/png"),
        )
    assert caught.value.param == "mask"
    assert "512x512" in caught.value.message
    assert "256x256" in caught.value.message


def test_a_file_that_is_not_an_image_is_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="gpt-image-2", prompt="x", image=("a.txt", b"hello", "text/plain"))
    assert caught.value.param == "image"


@pytest.mark.parametrize(
    ("kwargs", "param", "words"),
    [
        ({"model": "dall-e-2", "size": "1536x1024"}, "size", "'256x256', '512x512', and '1024x1024'"),
        ({"model": "gpt-image-1", "size": "1792x1024"}, "size", "'1024x1536'"),
        ({"model": "gpt-image-2", "size": "1000x1000"}, "size", "divisible by 16"),
        ({"model": "gpt-image-2", "size": "3000x512"}, "size", "1:3"),
        ({"model": "gpt-image-2", "n": 11}, "n", "Expected a value <= 10"),
        ({"model": "gpt-image-2", "n": 0}, "n", "Expected a value >= 1"),
        ({"model": "dall-e-3", "n": 2}, "n", "Expected a value <= 1"),
        ({"model": "gpt-image-2", "output_compression": 101}, "output_compression", "<= 100"),
        ({"model": "gpt-image-2", "background": "transparent", "output_format": "jpeg"},
         "background", "jpeg"),
        ({"model": "gpt-image-2", "quality": "ultra"}, "quality", "Invalid value"),
    ],
)  # fmt: skip
def test_openais_400s(
    client: openai.OpenAI, kwargs: dict[str, object], param: str, words: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="x", **kwargs)
    assert caught.value.param == param
    assert words in caught.value.message


def test_streamed_partial_images_with_the_sdks_events(client: openai.OpenAI) -> None:
    stream = client.images.generate(
        model="gpt-image-2", prompt="a city at night", stream=True, partial_images=2,
        size="1024x1024",
    )  # fmt: skip
    events = list(stream)
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [getattr(e, "partial_image_index", None) for e in events] == [0, 1, None]
    images = [decode(e.b64_json) for e in events]
    assert {i.size for i in images} == {(1024, 1024)}
    assert len({i.tobytes() for i in images}) == 3  # each preview shows more
    final = client.images.generate(model="gpt-image-2", prompt="a city at night")
    assert final.data is not None
    assert events[-1].b64_json == final.data[0].b64_json
    assert events[-1].usage.output_tokens == 1056


def test_streamed_edit_events_are_image_edit(client: openai.OpenAI) -> None:
    events = list(
        client.images.edit(
            model="gpt-image-2",
            prompt="snow",
            image=("a.png", png(256, 256)),
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


def test_a_scenario_pins_an_image_from_a_file_and_a_revised_prompt(tmp_path: Path) -> None:
    (tmp_path / "logo.jpg").write_bytes(encode(Picture(320, 200, 7), "jpeg"))
    (tmp_path / "images.yaml").write_text(
        "- name: logo\n"
        "  match: {api: images, last_user: {contains: logo}}\n"
        "  reply: {image: logo.jpg, revised_prompt: A clean vector logo}\n"
    )
    with MockServer([tmp_path / "images.yaml"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        result = client.images.generate(model="gpt-image-2", prompt="our logo", n=2)
        urls = client.images.generate(model="dall-e-3", prompt="the logo").data
        server.assert_called("logo", times=2)
        journal = server.last.reply
    assert result.data is not None
    assert urls is not None
    assert [base64.b64decode(d.b64_json or "") for d in result.data] == [
        (tmp_path / "logo.jpg").read_bytes()
    ] * 2
    assert result.data[0].revised_prompt == "A clean vector logo"
    assert urls[0].url is not None
    assert urls[0].url.endswith(".jpeg")
    assert journal is not None
    assert journal["images"][0].startswith("/media/files/")


def test_pinned_image_url_is_served(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png(64, 48))
    (tmp_path / "s.yaml").write_text("- match: {api: images}\n  reply: {image: a.png}\n")
    with MockServer([tmp_path / "s.yaml"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        data = client.images.generate(model="dall-e-2", prompt="x", size="256x256").data
        assert data is not None
        assert data[0].url is not None
        assert httpx.get(data[0].url).content == (tmp_path / "a.png").read_bytes()
        assert httpx.get(f"{server.url}/media/files/{'0' * 32}.png").status_code == 404


def test_a_missing_pinned_file_is_named_before_the_server_starts(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("- match: {api: images}\n  reply: {image: gone.png}\n")
    with pytest.raises(Exception, match=r"s\.yaml:2: .*reply\.image: cannot read 'gone\.png'"):
        MockServer([tmp_path / "s.yaml"])


def test_scenarios_answer_with_errors_steps_faults_and_delays(clock_sleeps: list[float]) -> None:
    scenarios = [
        {
            "name": "flaky",
            "match": {"api": "images"},
            "steps": [
                {"error": {"status": 400, "message": "Your request was rejected by the safety "
                           "system.", "code": "moderation_blocked"}},
                {"fault": {"kind": "reset"}},
                {"delay": 2, "reply": {}},
            ],
        }
    ]  # fmt: skip
    with MockServer(scenarios, options=Options(speed=0.5, sleep=_recorder(clock_sleeps))) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(model="gpt-image-2", prompt="x")
        assert caught.value.code == "moderation_blocked"
        with pytest.raises(openai.APIConnectionError):
            client.images.generate(model="gpt-image-2", prompt="x")
        result = client.images.generate(model="gpt-image-2", prompt="x")
        assert result.data is not None
        assert decode(result.data[0].b64_json).size == (1024, 1024)
        assert [e.api for e in server.journal] == ["images"] * 3
    assert sum(clock_sleeps) == pytest.approx(1.0)  # 2 s at speed 0.5


@pytest.fixture
def clock_sleeps() -> list[float]:
    return []


def _recorder(sleeps: list[float]):  # type: ignore[no-untyped-def]
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return sleep


def test_the_journal_keeps_a_description_of_uploads_not_their_bytes(
    client: openai.OpenAI, server: MockServer
) -> None:
    client.images.edit(model="gpt-image-2", prompt="x", image=("a.png", png(64, 64)))
    body = server.last.body
    assert body["image"]["filename"] == "a.png"
    assert body["image"]["bytes"] == len(png(64, 64))
    assert set(body["image"]) == {"filename", "content_type", "bytes", "sha256"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_encoders_write_files_their_headers_describe(fmt: str) -> None:
    for w, h in ((16, 16), (100, 37), (1024, 1536)):
        data = encode(Picture(w, h, 3, transparent=fmt != "jpeg"), fmt)
        assert dimensions(data) == (w, h)
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.size == (w, h)


def test_record_then_replay_keeps_the_images_in_files_beside_the_scenario(tmp_path: Path) -> None:
    from mockserver.recording.record import Recorder

    out = tmp_path / "recorded"
    mask = png(256, 256, 9)
    with MockServer([]) as upstream:
        rec = Recorder(upstream=upstream.base_url, out=out)
        with MockServer([], options=Options(recorder=rec)) as recorder:
            api = openai.OpenAI(
                base_url=recorder.base_url, api_key="sk-real-key-123", max_retries=0
            )
            made = api.images.generate(model="gpt-image-2", prompt="a teapot", n=2)
            edited = api.images.edit(
                model="gpt-image-2", prompt="paint it blue",
                image=("teapot.png", png(256, 256)), mask=("mask.png", mask),
            )  # fmt: skip
            assert [e.outcome for e in recorder.journal] == ["recorded"] * 2
    pictures = sorted(p.name for p in out.iterdir() if not p.name.endswith(".yaml"))
    assert len(pictures) == 3
    assert all(p.endswith(".png") for p in pictures)
    assert "sk-real-key-123" not in "".join(p.read_text() for p in out.glob("*.yaml"))
    with MockServer([out]) as replay:  # the upstream is gone
        api = openai.OpenAI(base_url=replay.base_url, api_key="k", max_retries=0)
        again = api.images.generate(model="gpt-image-2", prompt="a teapot", n=2)
        edited_again = api.images.edit(
            model="gpt-image-2", prompt="paint it blue",
            image=("teapot.png", png(256, 256)), mask=("mask.png", mask),
        )  # fmt: skip
        assert not replay.unmatched
        assert all((e.scenario or "").startswith("images-") for e in replay.journal)
    assert made.data is not None
    assert again.data is not None
    assert [d.b64_json for d in again.data] == [d.b64_json for d in made.data]
    assert edited.data is not None
    assert edited_again.data is not None
    assert edited_again.data[0].b64_json == edited.data[0].b64_json
