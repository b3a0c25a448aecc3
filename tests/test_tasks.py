"""The relay's task APIs over raw HTTP: submit, poll through the lifecycle, fetch the media."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from mockserver import MockServer, Options
from tests.conftest import Clock

KEY = {"AIKey": "sk-relay"}
VIDEO = {
    "model": "doubao-seedance-2-0",
    "content": [{"type": "text", "text": "a paper boat on a river"}],
    "resolution": "720p",
    "ratio": "16:9",
    "duration": 5,
}
IMAGE = {"prompt": "a banana in space", "action": "generate", "model": "nano-banana-fast",
         "aspect_ratio": "16:9"}  # fmt: skip


@pytest.fixture
def server(clock: Clock) -> Iterator[MockServer]:
    options = Options(api_keys=frozenset({"sk-relay"}), clock=clock)
    with MockServer([], options=options) as server:
        yield server


def submit_video(server: MockServer, body: dict[str, Any] = VIDEO) -> str:
    reply = httpx.post(f"{server.url}/ai/seedance/videos", json=body, headers=KEY)
    assert reply.status_code == 200, reply.text
    envelope = reply.json()
    assert (envelope["code"], envelope["info"]) == (0, "success")
    return str(envelope["result"]["task_id"])


def poll_video(server: MockServer, task_id: str) -> httpx.Response:
    return httpx.get(f"{server.url}/ai/seedance/result", params={"task_id": task_id}, headers=KEY)


def test_a_video_job_walks_queued_running_succeeded_and_its_mp4_is_served(
    server: MockServer, clock: Clock
) -> None:
    task_id = submit_video(server)
    assert task_id.startswith("cgt-")
    seen = []
    for t in (0, 0.5, 1, 4.9, 5, 60):  # by default: queued 1 s, running 4 s
        clock.now = 1000 + t
        seen.append(poll_video(server, task_id).json()["result"])
    assert [(r["status"], r["state"], r["progress"]) for r in seen] == [
        (0, "pending", 0),
        (0, "pending", 0),
        (0, "processing", 50),
        (0, "processing", 50),
        (1, "completed", 100),
        (1, "completed", 100),
    ]
    assert all(r["task_id"] == task_id for r in seen)
    video = httpx.get(seen[-1]["videoUrl"])
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    assert b"avc1" in video.content


def test_a_nano_banana_job_answers_its_task_code_and_a_real_image(
    server: MockServer, clock: Clock
) -> None:
    reply = httpx.post(f"{server.url}/ai/gemini/image/generate", json=IMAGE, headers=KEY).json()
    code = reply["result"]["taskCode"]
    assert set(reply["result"]) == {"taskCode"}
    clock.now += 10
    last = httpx.get(f"{server.url}/ai/gemini/result", params={"code": code}, headers=KEY)
    result = last.json()["result"]
    assert result["status"] == 1
    assert result["imageUrls"] == [result["imageUrl"]]
    image = Image.open(io.BytesIO(httpx.get(result["imageUrl"]).content))
    assert (image.format, image.size) == ("PNG", (1024, 576))  # 16:9


def test_two_identical_submits_are_two_tasks(server: MockServer, clock: Clock) -> None:
    first = submit_video(server)
    clock.now += 3
    second = submit_video(server)
    assert first != second
    assert poll_video(server, first).json()["result"]["state"] == "processing"
    assert poll_video(server, second).json()["result"]["state"] == "pending"


def test_at_speed_zero_a_task_is_done_on_its_first_poll_unless_it_counts_polls() -> None:
    counted = {"match": {"api": "tasks", "last_user": {"contains": "counted"}},
               "reply": {"task": {"states": [{"status": "running", "polls": 2},
                                             {"status": "succeeded"}]}}}  # fmt: skip
    with MockServer([counted], options=Options(speed=0)) as server:
        task_id = submit_video(server)
        assert poll_video(server, task_id).json()["result"]["status"] == 1
        task_id = submit_video(server, {**VIDEO, "content": [{"type": "text", "text": "counted"}]})
        assert [poll_video(server, task_id).json()["result"]["status"] for _ in range(3)] == [
            0, 0, 1,
        ]  # fmt: skip


def test_a_lifecycle_timed_in_seconds_follows_the_clock_at_speed(clock: Clock) -> None:
    scenario = {
        "match": {"api": "tasks"},
        "reply": {"task": {"states": [
            {"status": "queued", "seconds": 10},
            {"status": "running", "progress": 30, "seconds": 20},
            {"status": "succeeded"},
        ]}},
    }  # fmt: skip
    with MockServer([scenario], options=Options(speed=0.5, clock=clock)) as server:
        task_id = submit_video(server)

        def state_at(t: float) -> str:
            clock.now = 1000.0 + t
            return str(poll_video(server, task_id).json()["result"]["state"])

        # 10 s and 20 s at speed 0.5: 5 s queued, then 10 s running.
        assert [state_at(t) for t in (0, 4.9, 5.0, 14.9, 15.0)] == [
            "pending", "pending", "processing", "processing", "completed",
        ]  # fmt: skip


def test_a_failed_task_answers_the_relays_error_envelope(server: MockServer) -> None:
    server.add({
        "name": "refused",
        "match": {"api": "tasks", "last_user": {"contains": "boat"}},
        "reply": {"task": {"states": [
            {"status": "running", "progress": 10, "polls": 1},
            {"status": "failed", "code": 4003, "info": "The prompt was flagged."},
        ]}},
    })  # fmt: skip
    task_id = submit_video(server)
    assert poll_video(server, task_id).json()["result"]["progress"] == 10
    failed = poll_video(server, task_id)
    assert failed.status_code == 200
    body = failed.json()
    assert (body["code"], body["info"]) == (4003, "The prompt was flagged.")
    assert body["result"]["status"] == 2
    assert body["result"]["error"] == "The prompt was flagged."
    assert server.journal[-1].outcome == "task_failed"


def test_a_scenario_replaces_a_stage_reply_whole_and_pins_the_media(
    tmp_path: Path, server: MockServer
) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16)
    (tmp_path / "tasks.yaml").write_text(
        "- name: custom\n"
        "  match: {api: tasks}\n"
        "  reply:\n"
        "    task:\n"
        "      media: clip.mp4\n"
        "      states:\n"
        "        - {status: running, body: {code: 0, info: success, result: {stage: 'custom'}}}\n"
        "        - {status: succeeded}\n"
    )
    server.add(str(tmp_path / "tasks.yaml"))
    task_id = submit_video(server)
    assert poll_video(server, task_id).json() == {"code": 0, "info": "success",
                                                  "result": {"stage": "custom"}}  # fmt: skip
    url = poll_video(server, task_id).json()["result"]["videoUrl"]
    assert httpx.get(url).content == (tmp_path / "clip.mp4").read_bytes()


def test_the_submit_answers_scripted_errors_in_the_envelope(server: MockServer) -> None:
    server.add({"match": {"api": "tasks"}, "error": {"status": 429, "message": "Too busy."}})
    reply = httpx.post(f"{server.url}/ai/seedance/videos", json=VIDEO, headers=KEY)
    assert reply.status_code == 429
    assert reply.json() == {"code": 429, "info": "Too busy.", "result": None}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"AIKey": "sk-wrong"}, 401),
        ({}, 401),
        ({"Authorization": "Bearer sk-relay"}, 200),
        ({"AIKey": "sk-relay", "Authorization": "Bearer sk-other"}, 401),
    ],
)
def test_keys(server: MockServer, headers: dict[str, str], status: int) -> None:
    reply = httpx.post(f"{server.url}/ai/seedance/videos", json=VIDEO, headers=headers)
    assert reply.status_code == status
    if status == 401:
        assert reply.json()["code"] == 401
        assert reply.json()["result"] is None
        poll = httpx.get(f"{server.url}/ai/seedance/result", params={"task_id": "x"},
                         headers=headers)  # fmt: skip
        assert poll.status_code == 401


def test_bad_requests_and_unknown_tasks(server: MockServer) -> None:
    missing = httpx.post(f"{server.url}/ai/seedance/videos", json={"model": "m"}, headers=KEY)
    assert missing.status_code == 400
    assert "content" in missing.json()["info"]
    no_id = httpx.get(f"{server.url}/ai/seedance/result", headers=KEY)
    assert no_id.status_code == 400
    assert "task_id" in no_id.json()["info"]
    unknown = poll_video(server, "cgt-nope")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == 404
    video = submit_video(server)  # a Seedance id is not a Nano Banana code
    other = httpx.get(f"{server.url}/ai/gemini/result", params={"code": video}, headers=KEY)
    assert other.status_code == 404


def test_submits_and_polls_are_journalled_with_the_key_redacted(server: MockServer) -> None:
    task_id = submit_video(server)
    poll_video(server, task_id)
    submit, poll = server.journal[-2:]
    assert (submit.api, submit.reply and submit.reply["task_id"]) == ("tasks", task_id)
    assert (poll.path, poll.reply and poll.reply["status"]) == ("/ai/seedance/result", "queued")
    assert submit.headers["AIKey"] == "***"
    assert poll.headers["AIKey"] == "***"
