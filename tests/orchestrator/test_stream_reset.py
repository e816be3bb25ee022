"""A stream retried part-way replaces, not extends, the live and stored text."""

from __future__ import annotations

from maquina_nb.orchestrator import events as ev, orchestrate
from maquina_nb.testing import FakeLLMServer, Reply


def _replay(deltas: list[ev.TextDelta]) -> str:
    text = ""
    for delta in deltas:
        text = delta.text if delta.reset else text + delta.text
    return text


def test_retried_stream_sends_a_reset_delta(
    fake_llm_server: FakeLLMServer, db_url: str
) -> None:
    fake_llm_server.enqueue(
        Reply(chunks=["par", "tial"], error_after=1, error_type="server_error"),
        Reply(chunks=["who", "le"]),
    )
    seen: list[ev.Event] = []

    run = orchestrate("Say hi", ["openai:gpt-4o"], db=db_url, on_event=seen.append)

    deltas = [e for e in seen if isinstance(e, ev.TextDelta)]
    assert any(d.reset for d in deltas)
    assert _replay(deltas) == "whole"
    assert run.to_pandas()["text"].tolist() == ["whole"]
    assert len(fake_llm_server.requests) == 2
