"""FakeLLMServer on the wire: raw HTTP, the SDKs, scripting, the request log."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import anthropic
import openai
import pytest

from maquina_nb.testing import FakeLLMServer, Reply


def raw_request(
    port: int,
    method: str,
    path: str,
    body: dict | None = None,
    headers: dict | None = None,
) -> tuple[int, dict, bytes]:
    payload = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + payload)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    parsed = {
        k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])
    }
    return int(lines[0].split()[1]), parsed, rest


def test_binds_loopback_on_a_free_port() -> None:
    with FakeLLMServer() as one, FakeLLMServer() as two:
        assert one.port != two.port
        assert one.openai_base_url == f"http://127.0.0.1:{one.port}/v1"
        assert one.anthropic_base_url == f"http://127.0.0.1:{one.port}"
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", one.port), timeout=1),
    ):
        pass


def test_models_endpoint_for_both_apis() -> None:
    with FakeLLMServer(models=("a", "b")) as fake:
        status, _, body = raw_request(fake.port, "GET", "/v1/models")
        assert status == 200
        assert [m["id"] for m in json.loads(body)["data"]] == ["a", "b"]

        client = anthropic.Anthropic(
            base_url=fake.anthropic_base_url, api_key="k", max_retries=0
        )
        assert [m.id for m in client.models.list()] == ["a", "b"]


def test_openai_sse_has_the_usage_chunk_only_when_asked() -> None:
    with FakeLLMServer() as fake:
        client = openai.OpenAI(
            base_url=fake.openai_base_url, api_key="k", max_retries=0
        )
        messages = [{"role": "user", "content": "hi"}]

        with_usage = list(
            client.chat.completions.create(
                model="m",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        without = list(
            client.chat.completions.create(model="m", messages=messages, stream=True)
        )

        assert with_usage[-1].choices == []
        assert with_usage[-1].usage.prompt_tokens == 1
        assert all(chunk.usage is None for chunk in without)


def test_anthropic_sse_sends_the_full_event_sequence() -> None:
    with FakeLLMServer() as fake:
        fake.enqueue(Reply(chunks=["a", "b"], pings=2))
        body = {
            "model": "claude",
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        }
        status, headers, raw = raw_request(
            fake.port, "POST", "/v1/messages", body, {"anthropic-version": "2023-06-01"}
        )

    events = [
        line[7:] for line in raw.decode().split("\n") if line.startswith("event: ")
    ]
    assert status == 200
    assert headers["content-type"] == "text/event-stream"
    assert events == [
        "message_start",
        "ping",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_scripted_stream_events_are_sent_as_given() -> None:
    with FakeLLMServer() as fake:
        fake.enqueue(Reply(events=[{"choices": None}, [1, 2]]))
        fake.enqueue(Reply(events=[{"type": "message_start"}, ("custom", {"a": 1})]))
        body = {"model": "m", "stream": True, "messages": []}
        _, _, openai_raw = raw_request(fake.port, "POST", "/v1/chat/completions", body)
        _, _, claude_raw = raw_request(
            fake.port, "POST", "/v1/messages", body, {"anthropic-version": "2023-06-01"}
        )

    def lines(raw: bytes) -> list[str]:
        return [
            line
            for line in raw.decode().split("\n")
            if line.startswith(("data: ", "event: "))
        ]

    assert lines(openai_raw) == [
        'data: {"choices": null}',
        "data: [1, 2]",
        "data: [DONE]",
    ]
    assert lines(claude_raw) == [
        "event: message_start",
        'data: {"type": "message_start"}',
        "event: custom",
        'data: {"a": 1}',
    ]


def test_scripted_status_headers_and_body_and_the_log() -> None:
    with FakeLLMServer() as fake:
        fake.enqueue(Reply.rate_limited("Wed, 21 Oct 2026 07:28:00 GMT"), model="m1")
        fake.enqueue(Reply.server_error(529), api="anthropic")
        body = {"model": "m2", "messages": [{"role": "user", "content": "x"}]}

        other_model = raw_request(fake.port, "POST", "/v1/chat/completions", body)
        limited = raw_request(
            fake.port, "POST", "/v1/chat/completions", {**body, "model": "m1"}
        )
        overloaded = raw_request(
            fake.port,
            "POST",
            "/v1/messages",
            {**body, "max_tokens": 1},
            {"x-api-key": "k"},
        )

        assert other_model[0] == 200
        assert limited[0] == 429
        assert limited[1]["retry-after"] == "Wed, 21 Oct 2026 07:28:00 GMT"
        assert overloaded[0] == 529
        assert json.loads(overloaded[2])["error"]["type"] == "overloaded_error"
        assert [(r.model, r.status, r.api) for r in fake.requests] == [
            ("m2", 200, "openai"),
            ("m1", 429, "openai"),
            ("m2", 529, "anthropic"),
        ]
        assert "k" not in repr(fake.requests[2])


def test_strict_mode_and_key_echo() -> None:
    with FakeLLMServer(
        strict_stream_options=True, accepted_keys={"good"}, echo_key_on_401=True
    ) as fake:
        client = openai.OpenAI(
            base_url=fake.openai_base_url, api_key="good", max_retries=0
        )
        with pytest.raises(openai.BadRequestError, match="stream_options"):
            client.chat.completions.create(
                model="m",
                messages=[],
                stream=True,
                stream_options={"include_usage": True},
            )
        bad = openai.OpenAI(
            base_url=fake.openai_base_url, api_key="leaky-key", max_retries=0
        )
        with pytest.raises(openai.AuthenticationError, match="leaky-key"):
            bad.chat.completions.create(model="m", messages=[])


def test_responder_and_rpm_limit() -> None:
    now = [0.0]
    with FakeLLMServer(rpm_limit=2, clock=lambda: now[0]) as fake:
        fake.responder = lambda request: Reply(text=request.prompt[::-1])
        client = openai.OpenAI(
            base_url=fake.openai_base_url, api_key="k", max_retries=0
        )

        texts = [
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "abc"}]
            )
            .choices[0]
            .message.content
            for _ in range(2)
        ]
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "abc"}]
            )
        now[0] = 60.0
        later = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "abc"}]
        )

    assert texts == ["cba", "cba"]
    assert later.choices[0].message.content == "cba"


def test_truncated_stream_drops_the_connection() -> None:
    with FakeLLMServer() as fake:
        fake.enqueue(Reply(chunks=["a", "b", "c"], truncate_after=2))
        client = openai.OpenAI(
            base_url=fake.openai_base_url, api_key="k", max_retries=0
        )
        seen = []

        def read_all() -> None:
            for chunk in client.chat.completions.create(
                model="m", messages=[], stream=True
            ):
                seen.extend(c.delta.content for c in chunk.choices)

        with pytest.raises(openai.APIConnectionError):
            read_all()
    assert seen == ["", "a", "b"]


def test_utf8_split_arrives_in_separate_chunks() -> None:
    with FakeLLMServer() as fake:
        fake.enqueue(Reply(text="é", split_utf8=True))
        body = {"model": "m", "stream": True, "messages": []}
        _, _, raw = raw_request(fake.port, "POST", "/v1/chat/completions", body)

    # Chunked encoding: the two-byte "é" (c3 a9) ends one chunk and starts the next.
    assert b"\xc3\r\n" in raw
    assert b"\r\n\xa9" in raw


def test_pytest_fixture_points_the_sdks_at_the_fake(
    fake_llm_server: FakeLLMServer,
) -> None:
    # The fixture comes from maquina_nb.testing.pytest_plugin, loaded in conftest.py.
    client = openai.OpenAI(max_retries=0)

    answer = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )

    assert answer.choices[0].message.content == "Fake answer: hi"
    assert fake_llm_server.requests[0].api_key == "sk-fake-openai-key"


async def test_holds_500_requests_in_flight() -> None:
    async def one(port: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = json.dumps(
            {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        ).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(payload)
            + payload
        )
        await writer.drain()
        data = await reader.read()
        writer.close()
        return int(data.split()[1])

    with FakeLLMServer() as fake:
        fake.default_reply = Reply(latency=1.5)
        statuses = await asyncio.wait_for(
            asyncio.gather(*(one(fake.port) for _ in range(500))), timeout=60
        )

    assert statuses == [200] * 500
    assert fake.peak_in_flight == 500


def test_garbage_request_drops_only_that_connection() -> None:
    with FakeLLMServer() as fake:
        with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
            sock.sendall(b"NONSENSE\r\n\r\n")
            assert sock.recv(100) == b""
        status, _, _ = raw_request(fake.port, "GET", "/v1/models")

    assert status == 200


async def test_async_context_manager() -> None:
    async with FakeLLMServer() as fake:
        client = openai.AsyncOpenAI(
            base_url=fake.openai_base_url, api_key="k", max_retries=0
        )
        answer = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "yo"}]
        )
        await client.close()

    assert answer.choices[0].message.content == "Fake answer: yo"


@pytest.fixture
def team_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    # What a researcher's shell may hold: the team database and an organization.
    team_db = tmp_path / "team.db"
    monkeypatch.setenv("MAQUINA_DB_URL", f"sqlite:///{team_db}")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-team")
    return team_db


def test_pytest_fixture_keeps_runs_out_of_the_real_database(
    team_environment: Path, fake_llm_server: FakeLLMServer
) -> None:
    from maquina_nb import orchestrate

    run = orchestrate("hi", ["gpt-4o"])

    assert run.to_pandas()["text"].tolist() == ["Fake answer: hi"]
    assert not team_environment.exists()
    assert "openai-organization" not in fake_llm_server.requests[0].headers
