from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from maquina_nb.errors import TemplateError
from maquina_nb.templating import TemplateItem, build_items, find_variables, render


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
        "columns are 'question', 'answer'. Add the column, define the variable, or "
        "write literal braces as {{ '{{' }}."
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


def test_namespace_fills_variables_that_are_not_columns() -> None:
    df = pd.DataFrame({"q": ["one", "two"]})

    items = build_items("{{ q }} in {{ lang }}", over=df, namespace={"lang": "French"})

    assert [i.messages[0]["content"] for i in items] == [
        "one in French",
        "two in French",
    ]
    assert items[1].variables == {"lang": "French", "q": "two"}


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
