"""docs/media.md: its examples run, and each scenario in its YAML answers the request meant
for it (``tests/docs.py`` reads the page)."""

from __future__ import annotations

import httpx
import openai
import pytest

from mockserver import MockServer, Options
from mockserver.scenarios.loader import load_text
from tests.docs import example, yaml_blocks

KEY = {"AIKey": "k"}
YAML = [text for page, _, text in yaml_blocks() if page == "docs/media.md"]


@pytest.mark.parametrize("name", ["media-thumbnail", "media-video-job"])
def test_the_examples_run(name: str) -> None:
    exec(compile(example(name), f"docs/media.md:{name}", "exec"), {})


def test_the_image_scenarios_answer_their_requests() -> None:
    with MockServer(load_text(YAML[0], "docs/media.md"), options=Options(speed=0)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
        logo = client.images.generate(model="gpt-image-2", prompt="our logo")
        assert logo.data is not None
        assert logo.data[0].revised_prompt == "A clean vector logo on white."
        with pytest.raises(openai.BadRequestError) as caught:
            client.images.generate(model="gpt-image-2", prompt="something violent")
        assert caught.value.code == "moderation_blocked"
        with pytest.raises(openai.APIConnectionError):
            client.images.generate(model="dall-e-3", prompt="a koi pond")
        again = client.images.generate(model="dall-e-3", prompt="a koi pond")
        assert again.data is not None
        assert again.data[0].url is not None
        assert [e.scenario for e in server.journal] == [
            "logo", "moderated", "flaky-renderer", "flaky-renderer",
        ]  # fmt: skip


def test_the_task_scenarios_answer_their_requests() -> None:
    def submit(server: MockServer, path: str, body: dict[str, object]) -> str:
        result = httpx.post(f"{server.url}{path}", json=body, headers=KEY).json()
        return str(next(iter(result["result"].values())))

    def video(text: str) -> dict[str, object]:
        return {"model": "doubao-seedance-2-0", "content": [{"type": "text", "text": text}]}

    with MockServer(load_text(YAML[1], "docs/media.md"), options=Options(speed=0)) as server:
        slow = submit(server, "/ai/seedance/videos", video("a slow pan"))
        polled = httpx.get(
            f"{server.url}/ai/seedance/result", params={"task_id": slow}, headers=KEY
        ).json()
        assert polled["result"]["state"] == "completed"  # speed 0: seconds are over at once
        refused = submit(server, "/ai/seedance/videos", video("something forbidden"))
        states = [
            httpx.get(
                f"{server.url}/ai/seedance/result", params={"task_id": refused}, headers=KEY
            ).json()
            for _ in range(2)
        ]
        assert [s["code"] for s in states] == [0, 4003]
        code = submit(server, "/ai/gemini/image/generate",
                      {"model": "nano-banana-pro", "prompt": "a banana"})  # fmt: skip
        custom = httpx.get(
            f"{server.url}/ai/gemini/result", params={"code": code}, headers=KEY
        ).json()
        assert custom["result"] == {"status": 1, "imageUrl": "https://cdn.example/x.png"}
        submits = [e.scenario for e in server.journal if e.method == "POST"]
        assert submits == ["slow-render", "refused-job", "custom-poll-body"]
