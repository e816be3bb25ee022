from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any

import pandas as pd
import pytest

from maquina_nb.db import Repository
from maquina_nb.errors import (
    BudgetExceededError,
    ProviderConnectionError,
    ReplayMissError,
    TemplateError,
)
from maquina_nb.orchestrator import (
    MultiModelOrchestrator,
    Run,
    aorchestrate,
    events as ev,
    last_run,
    orchestrate,
)
from maquina_nb.providers.base import Completion, ModelRequest

from .conftest import ScriptedModel


def _statuses(run: Run) -> list[tuple[int, str, str]]:
    return [(r.item_index, r.model_spec, r.status) for r in run.responses]


def test_orchestrate_answers_items_by_models(db_url: str) -> None:
    a, b = ScriptedModel("a"), ScriptedModel("b")

    run = orchestrate(["one", "two"], [a, b], db=db_url, name="basic", tags=["t1"])

    assert run.status == "complete"
    assert run.models == ["custom:a", "custom:b"]
    assert [(r.item_index, r.model_spec, r.text) for r in run.responses] == [
        (0, "custom:a", "a: one"),
        (0, "custom:b", "b: one"),
        (1, "custom:a", "a: two"),
        (1, "custom:b", "b: two"),
    ]
    stored = Repository.from_url(db_url).get_run(run.id)
    assert (stored.status, stored.name, stored.tags, len(stored.responses)) == (
        "complete",
        "basic",
        ["t1"],
        4,
    )
    assert last_run() is run


def test_finish_reasons_map_to_statuses(db_url: str) -> None:
    reasons = {
        "s": ("stop", "fine"),
        "l": ("length", "cut"),
        "e": ("empty", ""),
        "t": ("tool_calls", ""),
        "c": ("content_filter", ""),
    }

    def script(request: ModelRequest) -> Completion:
        reason, text = reasons[request.turns[-1].content]
        calls = [{"name": "f", "arguments": {}}] if reason == "tool_calls" else None
        return Completion(
            text=text, finish_reason=reason, tool_calls=calls, cost_usd=0.0
        )  # type: ignore[arg-type]

    run = orchestrate(list(reasons), [ScriptedModel("m", script=script)], db=db_url)

    assert [(r.status, r.finish_reason, r.text) for r in run.responses] == [
        ("done", "stop", "fine"),
        ("truncated", "length", "cut"),
        ("empty", "empty", ""),
        ("tool_call_only", "tool_calls", ""),
        ("content_filtered", "content_filter", ""),
    ]
    assert run.responses[3].tool_calls == [{"name": "f", "arguments": {}}]
    assert run.status == "complete"


def test_one_failing_model_does_not_stop_the_others(db_url: str) -> None:
    def down(request: ModelRequest) -> Completion:
        raise ProviderConnectionError(
            "Could not reach 'custom:down' at 'http://127.0.0.1:9'; start the server.",
            provider="custom",
            model="down",
        )

    models = [
        ScriptedModel("a"),
        ScriptedModel("down", script=down),
        ScriptedModel("c"),
    ]

    run = orchestrate(["x", "y"], models, db=db_url)

    assert run.status == "partial"
    assert _statuses(run) == [
        (0, "custom:a", "done"),
        (0, "custom:down", "failed"),
        (0, "custom:c", "done"),
        (1, "custom:a", "done"),
        (1, "custom:down", "failed"),
        (1, "custom:c", "done"),
    ]
    failed = run.response(0, "custom:down")
    assert (failed.error_kind, failed.error_message, failed.finish_reason) == (
        "connection",
        "Could not reach 'custom:down' at 'http://127.0.0.1:9'; start the server.",
        "error",
    )
    assert run.totals.failed == 2
    assert run.totals.answered == 4


def test_foreign_exception_is_recorded_redacted(db_url: str) -> None:
    def broken(request: ModelRequest) -> Completion:
        raise ValueError("bad key sk-proj-abcdefghijklmnop0123 used")

    run = orchestrate("x", [ScriptedModel("b", script=broken)], db=db_url)

    assert run.status == "failed"
    (response,) = run.responses
    assert (response.error_kind, response.error_message) == (
        "exception",
        "ValueError: bad key sk-<redacted> used",
    )


def test_cache_reuses_answers_and_records_their_source(db_url: str) -> None:
    first_model = ScriptedModel("m", cost=0.5)
    first = orchestrate(["p", "q"], [first_model], db=db_url)
    second_model = ScriptedModel("m", cost=0.5)

    second = orchestrate(["p", "q"], [second_model], db=db_url)

    assert second_model.calls == []
    assert [
        (r.status, r.text, r.cost_usd, r.cached_from_id) for r in second.responses
    ] == [
        ("cached", "m: p", 0.0, first.responses[0].id),
        ("cached", "m: q", 0.0, first.responses[1].id),
    ]
    assert second.totals.cost_usd == 0.0
    assert first.totals.cost_usd == 1.0
    assert second.status == "complete"


def test_truncated_and_failed_answers_are_never_reused(db_url: str) -> None:
    outcomes = iter(["length", "error-raise", "stop", "stop"])

    def script(request: ModelRequest) -> Completion:
        outcome = next(outcomes)
        if outcome == "error-raise":
            raise ProviderConnectionError("down", provider="custom", model="m")
        return Completion(text="t", finish_reason=outcome, cost_usd=0.0)  # type: ignore[arg-type]

    model = ScriptedModel("m", script=script)
    orchestrate(["p", "q"], [model], db=db_url, concurrency=1)

    rerun = orchestrate(["p", "q"], [model], db=db_url, concurrency=1)

    assert len(model.calls) == 4
    assert [r.status for r in rerun.responses] == ["done", "done"]


def test_cache_off_sends_again(db_url: str) -> None:
    model = ScriptedModel("m")
    orchestrate("p", [model], db=db_url)

    orchestrate("p", [model], db=db_url, cache=False)

    assert len(model.calls) == 2


def test_replay_only_fails_before_sending_when_anything_misses(db_url: str) -> None:
    recorded = ScriptedModel("m")
    orchestrate(["p"], [recorded], db=db_url)
    model = ScriptedModel("m")

    with pytest.raises(ReplayMissError) as caught:
        orchestrate(["p", "q"], [model], db=db_url, replay_only=True)

    assert str(caught.value) == (
        "replay_only is set but 1 of 2 requests have no stored answer: item 1 x "
        "'custom:m' (sample 0); nothing was sent. Run once without replay_only to "
        "record them."
    )
    assert model.calls == []
    assert len(Repository.from_url(db_url).list_runs().runs) == 1

    replayed = orchestrate(["p"], [model], db=db_url, replay_only=True)
    assert ([r.status for r in replayed.responses], model.calls) == (["cached"], [])


def test_budget_refuses_a_run_estimated_above_max_cost(db_url: str) -> None:
    model = ScriptedModel("m", estimate=0.01)

    with pytest.raises(BudgetExceededError) as caught:
        orchestrate(["a", "b", "c"], [model], db=db_url, max_cost=0.025)

    assert (caught.value.estimate, caught.value.limit) == (pytest.approx(0.03), 0.025)
    assert str(caught.value) == (
        "The run is estimated to cost $0.03, above max_cost=$0.025; raise "
        "max_cost, lower max_tokens, or ask fewer items or models."
    )
    assert model.calls == []
    assert Repository.from_url(db_url).list_runs().runs == []


def test_plan_exposes_the_estimate_without_sending(db_url: str) -> None:
    model = ScriptedModel("m", estimate=0.01)
    orchestrator = MultiModelOrchestrator([model], db=db_url)

    plan = orchestrator.plan(["a", "b"], samples=2)

    assert (plan.total, plan.estimated_cost_usd, model.calls) == (
        4,
        pytest.approx(0.04),
        [],
    )


def test_budget_stops_scheduling_once_spend_reaches_max_cost(db_url: str) -> None:
    model = ScriptedModel("m", cost=0.01, estimate=0.0)

    run = orchestrate(
        [f"q{i}" for i in range(6)], [model], db=db_url, max_cost=0.025, concurrency=1
    )

    assert [r.status for r in run.responses] == ["done"] * 3 + ["skipped"] * 3
    skipped = run.responses[-1]
    assert (skipped.error_kind, skipped.error_message, skipped.text) == (
        "budget",
        "Not sent: spend reached max_cost=$0.025.",
        None,
    )
    assert len(model.calls) == 3
    assert run.status == "partial"


def test_samples_are_separate_requests_with_their_own_keys(db_url: str) -> None:
    model = ScriptedModel("m")

    run = orchestrate("p", [model], db=db_url, samples=3)

    assert [r.sample_index for r in run.responses] == [0, 1, 2]
    assert len({r.cache_key for r in run.responses}) == 3
    assert len(model.calls) == 3


def test_timeout_fails_the_slow_response_only(db_url: str) -> None:
    slow = ScriptedModel("slow", delay=30)
    fast = ScriptedModel("fast")

    run = orchestrate("p", [slow, fast], db=db_url, timeout=0.2)

    assert [(r.model_spec, r.status, r.error_kind) for r in run.responses] == [
        ("custom:slow", "failed", "timeout"),
        ("custom:fast", "done", None),
    ]


def test_mt_bench_turns_are_asked_in_sequence(db_url: str) -> None:
    model = ScriptedModel("m")
    question = {"question_id": 81, "turns": ["Write a poem.", "Now shorter."]}

    run = orchestrate([question], [model], db=db_url, system="Be brief.")

    assert [[m.to_dict() for m in call.messages] for call in model.calls] == [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Write a poem."},
        ],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Write a poem."},
            {"role": "assistant", "content": "m: Write a poem."},
            {"role": "user", "content": "Now shorter."},
        ],
    ]
    (response,) = run.responses
    assert response.text == "m: Now shorter."
    assert response.messages == [m.to_dict() for m in model.calls[1].messages]
    assert (response.input_tokens, response.output_tokens) == (3 + 2, 4 + 3)


def test_template_over_dataframe_records_variables(db_url: str) -> None:
    df = pd.DataFrame({"code": ['{"a": 1}', None]})

    run = orchestrate(
        'Explain {{ code }} as {"v": 1}', [ScriptedModel("m")], over=df, db=db_url
    )

    assert [(r.text, r.variables) for r in run.responses] == [
        ('m: Explain {"a": 1} as {"v": 1}', {"code": '{"a": 1}'}),
        ('m: Explain  as {"v": 1}', {"code": None}),
    ]


def test_template_uses_the_callers_variables(db_url: str) -> None:
    lang = "French"

    run = orchestrate("Reply in {{ lang }}", [ScriptedModel("m")], db=db_url)

    assert run.responses[0].text == "m: Reply in French"
    assert lang


def test_undefined_variable_is_an_error_before_anything_runs(db_url: str) -> None:
    model = ScriptedModel("m")

    with pytest.raises(TemplateError, match="undefined variable"):
        orchestrate("{{ nowhere_defined_xyz }}", [model], db=db_url)

    assert model.calls == []


def test_events_tell_the_whole_story_in_order(db_url: str) -> None:
    seen: list[ev.Event] = []
    model = ScriptedModel("s", streaming=True)

    run = orchestrate(
        ["alpha beta gamma", "delta"], [model], db=db_url, on_event=seen.append
    )

    assert isinstance(seen[0], ev.RunStarted)
    assert (seen[0].total, seen[0].models, seen[0].items[1]["prompt"]) == (
        2,
        ("custom:s",),
        "delta",
    )
    assert isinstance(seen[-1], ev.RunFinished)
    assert (seen[-1].status, seen[-1].done, seen[-1].total) == ("complete", 2, 2)
    for response in run.responses:
        mine = [
            e for e in seen if getattr(e, "item_index", None) == response.item_index
        ]
        kinds = [e.type for e in mine]
        assert kinds[0] == "response_started"
        assert kinds[-1] == "response_finished"
        text = "".join(e.text for e in mine if isinstance(e, ev.TextDelta))
        assert text == response.text
        finished = mine[-1]
        assert (finished.response_id, finished.status) == (response.id, "done")


def test_text_deltas_are_coalesced(db_url: str) -> None:
    seen: list[ev.Event] = []
    words = " ".join(f"w{i}" for i in range(300))
    model = ScriptedModel("s", streaming=True)

    run = orchestrate(words, [model], db=db_url, on_event=seen.append)

    deltas = [e for e in seen if isinstance(e, ev.TextDelta)]
    assert "".join(d.text for d in deltas) == run.responses[0].text
    assert len(deltas) < 30


def test_a_raising_consumer_does_not_break_the_run(db_url: str) -> None:
    def consumer(event: ev.Event) -> None:
        raise RuntimeError("widget bug")

    run = orchestrate(["a", "b"], [ScriptedModel("m")], db=db_url, on_event=consumer)

    assert run.status == "complete"


def test_responses_are_written_in_batches(db_url: str) -> None:
    batches: list[int] = []

    class CountingRepository(Repository):
        def add_responses(self, rows: Any) -> list[str]:
            batches.append(len(rows))
            return super().add_responses(rows)

    repository = CountingRepository(Repository.from_url(db_url).engine)

    run = orchestrate(
        [f"q{i}" for i in range(300)], [ScriptedModel("m")], db=repository
    )

    assert sum(batches) == 300
    assert len(batches) < 300 / 10
    assert len(repository.responses_frame(run.id)) == 300


def test_interrupt_cancels_in_flight_and_keeps_what_finished(db_url: str) -> None:
    fast = ScriptedModel("fast", streaming=True)
    # The slow model starts streaming well after the fast one has finished.
    slow = ScriptedModel("slow", streaming=True, delay=0.5, chunk_delay=5.0)
    started = threading.Event()

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.TextDelta) and event.model == "custom:slow":
            started.set()

    def interrupt_when_streaming() -> None:
        if started.wait(timeout=10):
            # A real SIGINT to the main thread, as Ctrl-C or a kernel interrupt sends.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_when_streaming, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as caught:
        orchestrate(
            ["one two three", "four five"],
            [fast, slow],
            db=db_url,
            on_event=on_event,
            concurrency=3,
        )

    run = caught.value.run  # type: ignore[attr-defined]
    assert run.status == "cancelled"
    assert last_run() is run
    by_status = {
        (r.item_index, r.model_spec): (r.status, r.text) for r in run.responses
    }
    assert by_status[(0, "custom:fast")] == ("done", "fast: one two three")
    assert by_status[(0, "custom:slow")] == ("cancelled", "slow:")
    assert by_status[(1, "custom:slow")][0] == "cancelled"
    stored = Repository.from_url(db_url)
    assert stored.get_run(run.id).status == "cancelled"
    assert sorted(stored.responses_frame(run.id)["status"].astype(str)) == sorted(
        r.status for r in run.responses
    )

    # The loop is healthy: the next call works.
    again = orchestrate("after", [fast], db=db_url)
    assert again.status == "complete"


async def test_aorchestrate_from_a_foreign_loop(db_url: str) -> None:
    model = ScriptedModel("m", streaming=True)
    marker = "outer"

    run = await aorchestrate("from {{ marker }}", [model], db=db_url)

    assert (run.status, run.responses[0].text) == ("complete", "m: from outer")
    assert marker


async def test_cancelling_aorchestrate_cancels_the_run(db_url: str) -> None:
    model = ScriptedModel("slow", streaming=True, chunk_delay=5.0)
    seen: list[ev.Event] = []

    task = asyncio.ensure_future(
        aorchestrate("a b c", [model], db=db_url, on_event=seen.append)
    )
    for _ in range(200):
        if any(isinstance(e, ev.TextDelta) for e in seen):
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # By the time the cancelled await returns, the run is stored as cancelled.
    cancelled = last_run()
    assert cancelled is not None
    assert (cancelled.status, [r.status for r in cancelled.responses]) == (
        "cancelled",
        ["cancelled"],
    )
    assert Repository.from_url(db_url).get_run(cancelled.id).status == "cancelled"


def test_a_blocked_consumer_does_not_hold_up_the_run(db_url: str) -> None:
    # The consumer blocks on its first event until every response is stored;
    # that only happens if requests and writes go on without it.
    repository = Repository.from_url(db_url)
    seen_all_stored: list[bool] = []

    def consumer(event: ev.Event) -> None:
        if seen_all_stored:
            return
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = repository.responses_frame()
            if len(frame) == 40:
                seen_all_stored.append(True)
                return
            time.sleep(0.05)
        seen_all_stored.append(False)

    run = orchestrate(
        [f"q{i} a b" for i in range(40)],
        [ScriptedModel("m", streaming=True)],
        db=repository,
        on_event=consumer,
    )

    assert run.status == "complete"
    assert seen_all_stored == [True]


def test_streamed_turns_send_only_the_last_turns_text_as_deltas(db_url: str) -> None:
    seen: list[ev.Event] = []
    model = ScriptedModel("m", streaming=True)

    run = orchestrate(
        [{"turns": ["one two", "three four"]}], [model], db=db_url, on_event=seen.append
    )

    deltas = "".join(e.text for e in seen if isinstance(e, ev.TextDelta))
    assert deltas == run.responses[0].text == "m: three four"


def test_a_models_own_timeout_error_is_kept_as_is(db_url: str) -> None:
    def slow(request: ModelRequest) -> Completion:
        raise TimeoutError("read timed out after 5s")

    run = orchestrate("p", [ScriptedModel("m", script=slow)], db=db_url)

    response = run.responses[0]
    assert (response.status, response.error_kind, response.error_message) == (
        "failed",
        "timeout",
        "TimeoutError: read timed out after 5s",
    )


def test_a_slow_model_cannot_take_every_slot(db_url: str) -> None:
    seen: list[ev.Event] = []
    slow, fast = ScriptedModel("slow", delay=0.5), ScriptedModel("fast")

    orchestrate(
        [f"q{i}" for i in range(10)],
        [slow, fast],
        db=db_url,
        concurrency=4,
        on_event=seen.append,
    )

    finished = [e.model for e in seen if isinstance(e, ev.ResponseFinished)]
    assert finished[:10] == ["custom:fast"] * 10
    assert finished[10:] == ["custom:slow"] * 10


def test_one_unstorable_row_does_not_lose_the_batch(db_url: str) -> None:
    def negative(request: ModelRequest) -> Completion | None:
        if request.turns[-1].content == "bad":
            # The database refuses negative token counts.
            return Completion(
                text="x", finish_reason="stop", input_tokens=-1, cost_usd=0.0
            )
        return None

    run = orchestrate(
        ["a", "bad", "c"], [ScriptedModel("m", script=negative)], db=db_url
    )

    assert run.unsaved == 1
    stored = Repository.from_url(db_url).responses_frame(run.id)
    assert sorted(stored["text"]) == ["m: a", "m: c"]


def test_a_conversation_is_sent_as_one_request(db_url: str) -> None:
    model = ScriptedModel("m")
    conversation = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "A joke, please."},
    ]

    run = orchestrate(conversation, [model], db=db_url, system="Be kind.")

    assert [[m.to_dict() for m in call.messages] for call in model.calls] == [
        [{"role": "system", "content": "Be kind."}, *conversation]
    ]
    assert (len(run.items), run.responses[0].text) == (1, "m: A joke, please.")
