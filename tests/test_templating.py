from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from maquina_nb.errors import TemplateError
from maquina_nb.templating import (
    TemplateItem,
    build_items,
    find_variables,
    render,
    to_json_value,
)


def _user(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def test_build_items_keeps_json_and_code_braces_as_text() -> None:
    # C29: single braces in the template and in row values are never fields.
    df = pd.DataFrame({"code": ["{x: x**2 for x in nums}", '{"a": 1}']})
    template = 'Explain this code: {{ code }}\nAnswer as {"verdict": "..."}'

    items = build_items(template, over=df)

    assert items == [
        TemplateItem(
            0,
            _user(
                'Explain this code: {x: x**2 for x in nums}\nAnswer as {"verdict": "..."}'
            ),
            {"code": "{x: x**2 for x in nums}"},
            label=0,
        ),
        TemplateItem(
            1,
            _user('Explain this code: {"a": 1}\nAnswer as {"verdict": "..."}'),
            {"code": '{"a": 1}'},
            label=1,
        ),
    ]


def test_row_values_are_not_rendered_twice() -> None:
    df = pd.DataFrame({"text": ["{{ secret }} stays", "{% if x %}y{% endif %}"]})

    items = build_items("Summarise {{ text }}", over=df)

    assert [i.messages[0]["content"] for i in items] == [
        "Summarise {{ secret }} stays",
        "Summarise {% if x %}y{% endif %}",
    ]


def test_undefined_variable_is_reported_up_front_with_columns() -> None:
    df = pd.DataFrame({"question": ["a"], "answer": ["b"]})

    with pytest.raises(TemplateError) as caught:
        build_items("Q: {{ question }} ctx: {{ context }}", over=df)

    assert str(caught.value) == (
        "The prompt template uses undefined variable(s) 'context'; the available "
        "columns are 'question', 'answer' (with over= only the row's columns are "
        "variables). Add the column (df.assign(context=...) for a value every row shares), write a column "
        "whose name is not an identifier as {{ row['my col'] }}, or write literal "
        "braces as {{ '{{' }}."
    )
    assert caught.value.variable == "context"


def test_undefined_variable_in_system_prompt_is_reported() -> None:
    with pytest.raises(TemplateError, match=re.escape("variable(s) 'lang'")):
        build_items("hi", namespace={"x": 1}, extra_sources=["Reply in {{ lang }}"])


def test_missing_values_render_empty_and_are_recorded_as_null() -> None:
    df = pd.DataFrame(
        {
            "a": ["x", None, "z"],
            "b": [1.5, np.nan, 3.0],
            "c": pd.array([1, None, 3], dtype="Int64"),
        }
    )

    items = build_items("[{{ a }}|{{ b }}|{{ c }}|{{ a is none }}]", over=df)

    assert [i.messages[0]["content"] for i in items] == [
        "[x|1.5|1|False]",
        "[|||True]",
        "[z|3.0|3|False]",
    ]
    assert [i.variables for i in items] == [
        {"a": "x", "b": 1.5, "c": 1},
        {"a": None, "b": None, "c": None},
        {"a": "z", "b": 3.0, "c": 3},
    ]


def test_variables_are_json_ready() -> None:
    df = pd.DataFrame(
        {
            "n": np.array([7], dtype=np.int64),
            "when": [pd.Timestamp("2024-01-02T03:04:05Z")],
        }
    )

    (item,) = build_items("{{ n }} {{ when }}", over=df)

    assert item.variables == {"n": 7, "when": "2024-01-02T03:04:05+00:00"}
    assert type(item.variables["n"]) is int


def test_over_never_takes_variables_from_the_namespace() -> None:
    # A notebook global of the same name must not leak into every row.
    df = pd.DataFrame({"question": ["a", "b"]})

    with pytest.raises(TemplateError) as caught:
        build_items("Answer: {{ text }}", over=df, namespace={"text": "GLOBAL LEAK"})

    assert caught.value.variable == "text"
    assert "'text'" in str(caught.value)
    assert "'question'" in str(caught.value)


def test_over_system_prompt_uses_the_row_only() -> None:
    df = pd.DataFrame({"q": ["one"], "lang": ["French"]})

    (item,) = build_items(
        "{{ q }}",
        over=df,
        namespace={"lang": "GLOBAL", "tone": "GLOBAL"},
        extra_sources=["Reply in {{ lang }}"],
    )
    assert item.extra == ("Reply in French",)

    with pytest.raises(TemplateError, match=re.escape("variable(s) 'tone'")):
        build_items(
            "{{ q }}", over=df, namespace={"tone": "x"}, extra_sources=["{{ tone }}"]
        )


def test_row_reaches_columns_whose_names_are_not_identifiers() -> None:
    df = pd.DataFrame({"my col": ["spaced"], "2nd": ["digit"], "q": ["plain"]})

    (item,) = build_items('{{ row["my col"] }} {{ row["2nd"] }} {{ row.q }}', over=df)

    assert item.messages[0]["content"] == "spaced digit plain"
    assert item.variables == {"my col": "spaced", "2nd": "digit", "q": "plain"}


def test_a_column_named_row_wins_over_the_row_mapping() -> None:
    df = pd.DataFrame({"row": ["mine"]})

    (item,) = build_items("{{ row }}", over=df)

    assert item.messages[0]["content"] == "mine"


def test_missing_values_are_warned_about_once_per_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    df = pd.DataFrame(
        {"a": ["x", None, None], "b": [1.5, np.nan, 3.0], "unused": [None] * 3}
    )

    with caplog.at_level("WARNING", logger="maquina_nb.templating"):
        build_items("a={{ a }} b={{ b }}", over=df)

    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "'a' (2 of 3 rows)" in message
    assert "'b' (1 of 3 rows)" in message
    assert "unused" not in message


def test_no_warning_without_missing_values(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="maquina_nb.templating"):
        build_items("{{ a }}", over=pd.DataFrame({"a": ["x"]}))

    assert [r for r in caplog.records if r.levelname == "WARNING"] == []


def test_int_column_with_missing_values_renders_without_point_zero() -> None:
    # pandas turns an int column with a gap into float64: 1 -> 1.0.
    df = pd.DataFrame({"n": [1, None, 3], "x": [1.5, None, 2.0], "f": [1.0, 2.0, 3.0]})

    items = build_items("{{ n }}|{{ x }}|{{ f }}", over=df)

    assert [i.messages[0]["content"] for i in items] == [
        "1|1.5|1.0",
        "||2.0",
        "3|2.0|3.0",
    ]
    assert items[0].variables == {"n": 1, "x": 1.5, "f": 1.0}
    assert type(items[0].variables["n"]) is int


def test_list_of_prompts_gives_one_item_each() -> None:
    items = build_items(["a {{ n }}", "b"], namespace={"n": 2})

    assert [(i.item_index, i.messages) for i in items] == [
        (0, _user("a 2")),
        (1, _user("b")),
    ]


def test_conversation_is_one_item_sent_as_is() -> None:
    conversation = [
        {"role": "user", "content": "Hi {{ name }}"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    ]

    (item,) = build_items(conversation, namespace={"name": "Ada"})

    assert item.messages == (
        {"role": "user", "content": "Hi Ada"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a joke."},
    )
    assert item.sequential is False


def test_mt_bench_items_are_sequential_turns() -> None:
    questions = [
        {
            "question_id": 81,
            "category": "writing",
            "turns": ["Write a post.", "Rewrite it."],
        },
        {"question_id": 82, "category": "writing", "turns": ["Draft an email."]},
    ]

    items = build_items(questions)

    assert items[0] == TemplateItem(
        0,
        (
            {"role": "user", "content": "Write a post."},
            {"role": "user", "content": "Rewrite it."},
        ),
        None,
        sequential=True,
        meta={"question_id": 81, "category": "writing"},
    )
    assert items[1].prompt == "Draft an email."


def test_sandbox_blocks_internals() -> None:
    with pytest.raises(TemplateError, match="sandbox forbids"):
        render("{{ x.__class__.__mro__ }}", {"x": 1})


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateError, match="syntax error on line 2"):
        find_variables("fine\n{{ broken ")


@pytest.mark.parametrize("read", [find_variables, lambda t: render(t, {})])
def test_a_spaced_column_name_gets_the_row_advice(read: object) -> None:
    with pytest.raises(TemplateError) as caught:
        read("Rate {{ my  col }} please")  # type: ignore[operator]

    message = str(caught.value)
    assert "{{ row['my col'] }}" in message
    assert "raw" not in message


def test_a_spaced_column_name_renders_through_row() -> None:
    items = build_items("{{ row['my col'] }}", over=pd.DataFrame({"my col": ["x"]}))

    assert items[0].messages[0]["content"] == "x"


def test_other_syntax_errors_keep_the_literal_braces_advice() -> None:
    with pytest.raises(TemplateError, match="raw"):
        find_variables("{{ a + }}")


def test_over_rows_may_be_mappings() -> None:
    items = build_items("{{ a }}-{{ b }}", over=[{"a": 1, "b": 2}, {"a": 3}])

    assert [i.messages[0]["content"] for i in items] == ["1-2", "3-"]
    assert items[1].variables == {"a": 3, "b": None}


def test_float_nan_is_missing_not_text() -> None:
    assert render("[{{ v }}]", {"v": math.nan}) == "[]"
    assert render("[{{ v }}]", {"v": pd.NaT}) == "[]"


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        pytest.param([], "The prompt list is empty", id="empty-list"),
        pytest.param(42, "is not a string", id="number"),
        pytest.param(
            [{"role": "robot", "content": "x"}], "role 'robot'", id="bad-role"
        ),
    ],
)
def test_bad_prompts_are_clear_errors(prompt: object, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        build_items(prompt)


# --- runtime errors and sandbox bounds --------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("{% for i in range(10**9) %}x{% endfor %}", "range"),
        ("{{ code | int + 'y' }}", "TypeError"),
        (
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "recurse",
        ),
        ("{{ 'ab' * 10**8 }}", "1,000,000"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}"
            "{% endfor %}{% endfor %}",
            "range",
        ),
    ],
)
def test_runtime_errors_are_template_errors_naming_the_row(
    body: str, error: str
) -> None:
    frame = pd.DataFrame({"code": ["12", "34"]}, index=["a", "b"])

    with pytest.raises(TemplateError) as caught:
        build_items(body, over=frame)

    message = str(caught.value)
    assert error in message
    assert "row 0" in message
    assert "'a'" in message
    assert "\n" not in message


def test_runtime_error_without_over_names_the_prompt() -> None:
    with pytest.raises(TemplateError, match=r"for prompt 1: ZeroDivisionError"):
        build_items(["fine", "{{ 1/0 }}"], namespace={})


def test_rendered_prompt_over_the_cap_is_refused() -> None:
    with pytest.raises(TemplateError, match="1,000,000 characters"):
        render("{% for i in range(30000) %}{{ text }}{% endfor %}", {"text": "x" * 50})


@pytest.mark.parametrize(
    "body",
    [
        "{{ 'ab' | center(10**9) }}",
        "{{ 'x' | indent(10**8, true) }}",
        "{{ '%0999999999d' | format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s | length }}{% endmacro %}"
        "{{ f('x', 40) }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}"
        "{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
    ],
)
def test_sandbox_bounds_stop_huge_intermediate_values(body: str) -> None:
    with pytest.raises(TemplateError, match="limit"):
        render(body, {})


def test_a_render_that_runs_too_long_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maquina_nb.templating import _bounds

    monkeypatch.setattr(_bounds, "MAX_RENDER_SECONDS", 0.01)
    body = (
        "{% for i in range(500) %}{% for j in range(500) %}"
        "{% set s = 'x' * 1000 %}{% endfor %}{% endfor %}"
    )

    with pytest.raises(TemplateError, match="seconds"):
        render(body, {})


def test_system_prompt_over_rows_replaces_lone_surrogates() -> None:
    # As without over=: text UTF-8 cannot encode never reaches a model.
    lone = "x" + chr(0xD800)
    rows = [{"q": "a", "s": lone}]

    (item,) = build_items("{{ q }}", over=rows, extra_sources=["{{ s }}"])
    (plain,) = build_items("{{ q }}", namespace=rows[0], extra_sources=["{{ s }}"])

    assert item.extra == ("x\ufffd",)
    assert plain.extra == item.extra


def test_over_rows_with_a_non_string_key_are_refused() -> None:
    # As for a DataFrame's column names: the value would otherwise be lost.
    with pytest.raises(TemplateError, match=re.escape("non-string key 1")):
        build_items('{{ row["1"] }}', over=[{"q": "a"}, {1: "b"}])


def test_non_finite_decimals_are_recorded_as_null() -> None:
    assert to_json_value(Decimal("Infinity")) is None
    assert to_json_value(Decimal("-Infinity")) is None
    assert to_json_value(Decimal("2.5")) == 2.5
