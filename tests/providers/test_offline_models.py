"""echo and replay: offline, deterministic, and clear on a miss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maquina_nb.errors import ReplayMissError
from maquina_nb.providers import (
    Completion,
    Message,
    ModelRequest,
    TextDelta,
    mt_bench_questions,
    resolve_model,
)

from .helpers import ask


async def test_echo_repeats_the_last_user_message() -> None:
    completion = await resolve_model("echo").generate(
        ask("Hello there", system="ignored")
    )

    assert (completion.text, completion.finish_reason, completion.cost_usd) == (
        "Hello there",
        "stop",
        0.0,
    )
    assert (completion.input_tokens, completion.output_tokens) == (3, 2)


async def test_echo_streams_words_and_truncates_at_max_tokens() -> None:
    items = [
        item
        async for item in resolve_model("echo").stream(
            ask("one two three four", max_tokens=2)
        )
    ]

    assert items[:-1] == [TextDelta("one "), TextDelta("two ")]
    assert (items[-1].text, items[-1].finish_reason) == ("one two ", "length")


def test_echo_options_from_the_spec_or_keywords() -> None:
    slow = resolve_model("echo:slow?latency=0.2&chunk_delay=0.01")
    also = resolve_model("echo", latency=0.3)

    assert (slow.model, slow.latency, slow.chunk_delay) == ("slow", 0.2, 0.01)
    assert also.latency == 0.3
    assert slow.identity == {"provider": "echo", "model": "slow"}


def test_bundled_questions() -> None:
    questions = mt_bench_questions()

    assert len(questions) == 80
    assert questions[0]["question_id"] == 81
    assert all(len(q["turns"]) == 2 for q in questions)


@pytest.mark.parametrize("name", ["gpt-4", "gpt-3.5-turbo", "claude-v1", "llama-13b"])
async def test_replay_answers_both_turns_of_every_question(name: str) -> None:
    source = (
        Path(__file__).parents[2]
        / "maquina_nb/providers/data/mt_bench"
        / f"answer_{name}.jsonl.gz"
    )
    import gzip

    recorded = {
        row["question_id"]: row["choices"][0]["turns"]
        for row in map(json.loads, gzip.decompress(source.read_bytes()).splitlines())
    }
    model = resolve_model(f"replay:{name}")

    for question in mt_bench_questions():
        first, second = question["turns"]
        one = await model.generate(ModelRequest((Message("user", first),)))
        two = await model.generate(
            ModelRequest(
                (
                    Message("user", first),
                    Message("assistant", "anything"),
                    Message("user", second),
                )
            )
        )
        assert one.text == recorded[question["question_id"]][0]
        assert two.text == recorded[question["question_id"]][1]
    assert one.model_id == name
    assert one.cost_usd == 0.0


async def test_replay_miss_is_clear() -> None:
    model = resolve_model("replay:gpt-4")

    with pytest.raises(
        ReplayMissError,
        match=r"The replay model 'replay:gpt-4' has no recorded answer for the prompt 'What is 2\+2\?'",
    ):
        await model.generate(ask("What is 2+2?"))


async def test_replay_from_a_prompt_answer_file(tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(
        json.dumps({"prompt": "Capital of France?", "answer": "Paris."})
        + "\n"
        + json.dumps({"prompt": "Capital of Peru?", "response": "Lima."})
        + "\n",
        encoding="utf-8",
    )

    model = resolve_model(f"replay:{path}")
    streamed = [item async for item in model.stream(ask("Capital of  Peru?"))]

    assert (await model.generate(ask("Capital of France?"))).text == "Paris."
    assert isinstance(streamed[-1], Completion)
    assert streamed[-1].text == "Lima."
