"""The ``%%orchestrate`` and ``%maquina`` magics in an in-process IPython shell."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from maquina_nb.notebook import _runner
from maquina_nb.notebook._args import DEFAULT_OUT, split_line
from maquina_nb.notebook.magics import parse_orchestrate_line

OPTIONS = [
    "--models",
    "--over",
    "--system",
    "--temperature",
    "--max-tokens",
    "--top-p",
    "--seed",
    "--stop",
    "--samples",
    "--name",
    "--tag",
    "--no-cache",
    "--replay-only",
    "--max-cost",
    "--timeout",
    "--concurrency",
    "--blind",
    "--judge",
    "--judge-mode",
    "--background",
    "--no-stream",
    "--db",
    "--out",
]


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "magics.db"
    monkeypatch.setenv("MAQUINA_DB_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    return path


@pytest.fixture
def ip(db_path: Path) -> Iterator[InteractiveShell]:
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.extension_manager.load_extension("maquina_nb")
    try:
        yield shell
    finally:
        shell.extension_manager.unload_extension("maquina_nb")
        InteractiveShell.clear_instance()


def orchestrate_fn(ip: InteractiveShell):
    return ip.magics_manager.magics["cell"]["orchestrate"]


# --- the extension ---------------------------------------------------------


def test_extension_registers_and_removes_both_magics(ip: InteractiveShell) -> None:
    assert "orchestrate" in ip.magics_manager.magics["cell"]
    assert "maquina" in ip.magics_manager.magics["line"]

    ip.extension_manager.unload_extension("maquina_nb")
    assert "orchestrate" not in ip.magics_manager.magics["cell"]
    assert "maquina" not in ip.magics_manager.magics["line"]
    ip.extension_manager.load_extension("maquina_nb")


def test_help_lists_every_option_with_its_help(ip: InteractiveShell) -> None:
    fn = orchestrate_fn(ip)
    for option in OPTIONS:
        assert option in fn.__doc__, option
    for action in fn.parser._actions:
        assert action.help, action.option_strings
    assert DEFAULT_OUT in fn.__doc__
    assert "not expanded" in fn.__doc__


# --- C30: the magic line arrives literally, the same on every platform -----


C30_LINE = (
    '--models echo --system "Reply in {lang} and keep $budget under 5 words" '
    '--tag "my run" --name "it\'s mine"'
)


def test_line_is_split_without_leftover_or_lost_quotes(ip: InteractiveShell) -> None:
    options = parse_orchestrate_line(orchestrate_fn(ip), C30_LINE)

    assert options.system == "Reply in {lang} and keep $budget under 5 words"
    assert options.tags == ("my run",)
    assert options.name == "it's mine"
    assert options.models == ("echo",)


def _windows_arg_split(
    commandline: str, posix: bool = False, strict: bool = True
) -> list[str]:
    """What CommandLineToArgvW does: only double quotes group; singles stay."""
    words, current, quoted, started = [], [], False, False
    for char in commandline:
        if char == '"':
            quoted, started = not quoted, True
        elif char.isspace() and not quoted:
            if started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
    if started:
        words.append("".join(current))
    return words


def test_line_parsing_ignores_the_platform_splitter(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    import IPython.core.magic_arguments as magic_arguments
    import IPython.utils.process as process

    posix = parse_orchestrate_line(orchestrate_fn(ip), C30_LINE)

    # Force IPython's Windows code path: its splitter and the platform checks.
    monkeypatch.setattr(magic_arguments, "arg_split", _windows_arg_split)
    monkeypatch.setattr(process, "arg_split", _windows_arg_split)
    monkeypatch.setattr("sys.platform", "win32")
    windows = parse_orchestrate_line(orchestrate_fn(ip), C30_LINE)

    assert windows == posix
    # IPython's own splitter would have kept the quotes on POSIX:
    from IPython.utils._process_common import arg_split

    assert '"my run"' in arg_split('--tag "my run"')


def test_backslashes_and_hashes_survive() -> None:
    assert split_line(r"--db sqlite:///C:\data\runs.db --name #1 --system 'a\nb'") == [
        "--db",
        r"sqlite:///C:\data\runs.db",
        "--name",
        "#1",
        "--system",
        r"a\nb",
    ]


def test_cell_line_is_not_expanded_by_ipython(
    ip: InteractiveShell, db_path: Path
) -> None:
    ip.user_ns.update(lang="French", budget=3)
    seen = []
    original = _runner.run_cell
    try:
        _runner.run_cell = lambda shell, options, body: seen.append(options)  # type: ignore[assignment]
        ip.run_cell(f"%%orchestrate {C30_LINE}\nSay hi")
    finally:
        _runner.run_cell = original  # type: ignore[assignment]

    assert [o.system for o in seen] == [
        "Reply in {lang} and keep $budget under 5 words"
    ]
    assert seen[0].tags == ("my run",)


# --- bad input: exactly UsageError, one line, nothing written ---------------


@pytest.mark.parametrize(
    ("line", "body", "fragment"),
    [
        pytest.param(
            "-m echo --frobnicate",
            "Hi",
            "does not know '--frobnicate'",
            id="unknown-option",
        ),
        pytest.param("-m no-such-model", "Hi", "no-such-model", id="unknown-model"),
        pytest.param("-m echo", "Hi {{ nobody }}", "nobody", id="missing-variable"),
        pytest.param("-m echo", "   \n  ", "has no prompt", id="empty-body"),
        pytest.param(
            "-m echo --temperature warm",
            "Hi",
            "'warm' is not a number",
            id="nan-temperature",
        ),
        pytest.param(
            "-m echo --max-tokens 1.5",
            "Hi",
            "not a whole number",
            id="float-max-tokens",
        ),
        pytest.param(
            "-m echo --samples -2", "Hi", "out of range", id="negative-samples"
        ),
        pytest.param(
            "-m echo --max-cost lots", "Hi", "'lots' is not a number", id="bad-max-cost"
        ),
        pytest.param(
            "-m echo --over nothing_here",
            "{{ q }}",
            "names no variable",
            id="missing-over",
        ),
        pytest.param(
            "-m echo --over not_a_frame",
            "{{ q }}",
            "not a pandas DataFrame",
            id="over-not-frame",
        ),
        pytest.param(
            "-m echo -o 'two words'", "Hi", "Python variable name", id="bad-out"
        ),
        pytest.param("", "Hi", "at least one model", id="no-model"),
        pytest.param("-m @nowhere", "Hi", "names no variable", id="missing-model-var"),
        pytest.param("-m echo --system 'open", "Hi", "unclosed quote", id="open-quote"),
        pytest.param(
            "-m echo", "A\n{# turn #}\n\n{# turn #}\nB", "turn", id="empty-turn"
        ),
    ],
)
def test_bad_input_is_one_usage_error_and_writes_nothing(
    ip: InteractiveShell, db_path: Path, line: str, body: str, fragment: str
) -> None:
    ip.user_ns["not_a_frame"] = [1, 2, 3]

    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("orchestrate", line, body)

    assert type(caught.value) is UsageError
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message
    assert not db_path.exists()
    assert DEFAULT_OUT not in ip.user_ns


def test_bad_input_shows_one_line_in_the_cell(
    ip: InteractiveShell, db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell("%%orchestrate -m echo --temperature hot\nHi")

    captured = capsys.readouterr()
    assert isinstance(result.error_in_exec, UsageError)
    assert "Traceback" not in captured.out + captured.err
    assert "UsageError: %%orchestrate argument --temperature" in captured.err


# --- running ------------------------------------------------------------------


def test_run_lands_in_default_out_and_last_run(
    ip: InteractiveShell, db_path: Path
) -> None:
    import maquina_nb

    ip.run_cell_magic("orchestrate", "-m echo,echo:other --name first", "Say hi")

    frame = ip.user_ns[DEFAULT_OUT]
    assert sorted(frame["model_spec"]) == ["echo", "echo:other"]
    assert set(frame["status"]) == {"done"}
    assert maquina_nb.last_run() is not None
    assert list(maquina_nb.last_run().to_pandas()["response_id"]) == list(
        frame["response_id"]
    )
    assert db_path.exists()


def test_run_over_dataframe_with_turns_and_out_variable(ip: InteractiveShell) -> None:
    import pandas as pd

    ip.user_ns["df"] = pd.DataFrame(
        {"q": ["one", "two"], "code": ['{"a": 1}', "{x: x}"]}
    )

    ip.run_cell_magic(
        "orchestrate",
        "-m echo --over df -o answers --tag t1 --tag 't 2'",
        'First {{ q }} with {{ code }} and {"verdict": 1}\n{# turn #}\nNow {{ q }} again',
    )

    frame = ip.user_ns["answers"]
    assert len(frame) == 2
    assert DEFAULT_OUT not in ip.user_ns
    assert sorted(frame["item_index"]) == [0, 1]
    # The last turn's conversation holds the first turn verbatim (C29 braces kept).
    import maquina_nb

    first = maquina_nb.last_run().response(0, "echo")
    contents = [m["content"] for m in first.messages]
    assert 'First one with {"a": 1} and {"verdict": 1}' in contents
    assert contents[-1] == "Now one again"


def test_models_from_a_variable(ip: InteractiveShell) -> None:
    ip.user_ns["models"] = ["echo", "echo:b"]
    ip.run_cell_magic("orchestrate", "-m @models -o out", "Hi")
    assert sorted(ip.user_ns["out"]["model_spec"]) == ["echo", "echo:b"]


def test_background_returns_at_once_and_fills_out_later(ip: InteractiveShell) -> None:
    ip.run_cell_magic("orchestrate", "-m echo --background -o later", "Hi")

    _runner.wait_background(timeout=30)
    deadline = time.monotonic() + 10
    while "later" not in ip.user_ns and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(ip.user_ns["later"]["status"]) == ["done"]


# --- %maquina ---------------------------------------------------------------


def test_maquina_unknown_subcommand_is_usage_error(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=re.escape("no subcommand 'frob'")):
        ip.run_line_magic("maquina", "frob")
    with pytest.raises(UsageError, match="needs a subcommand"):
        ip.run_line_magic("maquina", "")


def test_maquina_config_never_shows_a_key(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRETSECRET1234")
    frame = ip.run_line_magic("maquina", "config")
    assert frame.loc["OPENAI_API_KEY", "value"] == "set"
    assert frame.loc["ANTHROPIC_API_KEY", "value"] == "not set"
    assert "SECRETSECRET" not in frame.to_string()


def test_maquina_history_show_and_feedback(ip: InteractiveShell) -> None:
    ip.run_cell_magic("orchestrate", "-m echo --name hist-run -o out", "Hi")
    run_id = ip.user_ns["out"]["run_id"].iloc[0]

    history = ip.run_line_magic("maquina", "history --name hist-run")
    assert list(history["run_id"]) == [run_id]

    from maquina_nb.db import Repository

    repository = Repository.from_url()
    repository.record_feedback(
        ip.user_ns["out"]["response_id"].iloc[0], "thumbs", 1, rater="t"
    )
    feedback = ip.run_line_magic("maquina", f"feedback {run_id}")
    assert list(feedback["kind"]) == ["thumbs"]

    widget = ip.run_line_magic("maquina", f"show {run_id}")
    assert widget is not None

    for command in ("show nope", "feedback nope"):
        with pytest.raises(UsageError) as missing:
            ip.run_line_magic("maquina", command)
        assert str(missing.value) == (
            "No run with id 'nope' in this database; %maquina history lists the "
            "stored ones (check MAQUINA_DB_URL if it should be here)."
        )
    with pytest.raises(UsageError, match=r"\(check --db if it should be here\)\.$"):
        ip.run_line_magic(
            "maquina", f"show nope --db {Repository.from_url().engine.url}"
        )


def test_maquina_db_upgrade(ip: InteractiveShell, tmp_path: Path) -> None:
    target = tmp_path / "fresh.db"
    note = ip.run_line_magic("maquina", f"db upgrade --db sqlite:///{target}")
    assert "latest schema" in repr(note)
    assert target.exists()


@pytest.fixture
def unreachable_postgres() -> tuple[str, str]:
    """A PostgreSQL URL with a password, at a loopback port nothing listens on."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "pw-" + "9" * 12  # built here: no secret-shaped literal in the file
    return (
        f"postgresql+psycopg://maquina:{password}@127.0.0.1:{port}/maquina_test",
        f"No database server answers at 127.0.0.1:{port} (connection refused); "
        "start it, or fix the host and port of the URL (--db or MAQUINA_DB_URL).",
    )


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("%maquina db upgrade --db {url}", id="db-upgrade"),
        pytest.param("%maquina history --db {url}", id="history"),
        pytest.param("%maquina show 0123 --db {url}", id="show"),
        pytest.param("%%orchestrate -m echo --db {url}", id="orchestrate"),
    ],
)
def test_unreachable_database_is_one_sentence_saying_what_to_do(
    ip: InteractiveShell, unreachable_postgres: tuple[str, str], command: str
) -> None:
    url, expected = unreachable_postgres
    magic, line = command.format(url=url).split(" ", 1)
    if magic == "%%orchestrate":
        run = lambda: ip.run_cell_magic("orchestrate", line, "Say hi")  # noqa: E731
    else:
        run = lambda: ip.run_line_magic("maquina", line)  # noqa: E731

    with pytest.raises(UsageError) as caught:
        run()

    assert type(caught.value) is UsageError
    assert str(caught.value) == expected
    assert DEFAULT_OUT not in ip.user_ns


def test_maquina_models_and_check(ip: InteractiveShell) -> None:
    models = ip.run_line_magic("maquina", "models")
    assert len(models) > 0
    assert {"provider", "model"} <= set(models.columns)
    check = ip.run_line_magic("maquina", "check echo gpt-4o")
    assert list(check["status"]) == ["ok", "missing"]
    with pytest.raises(UsageError, match="no-such-model"):
        ip.run_line_magic("maquina", "check no-such-model")


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        pytest.param("-m echo --replay-only", "replay", id="replay-only-miss"),
        pytest.param(
            "-m openai:gpt-4o --max-cost 0.000001 --max-tokens 4000",
            "$",
            id="over-budget",
        ),
    ],
)
def test_refused_runs_are_usage_errors_and_store_no_run(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch, line: str, fragment: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used-1234567890")
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("orchestrate", line, "Say hi")

    assert type(caught.value) is UsageError
    assert fragment in str(caught.value)
    from maquina_nb.db import Repository

    assert Repository.from_url().list_runs().runs == []
    assert DEFAULT_OUT not in ip.user_ns
    table = _runner.last_widget()
    assert table is not None
    bundle = table._repr_mimebundle_()
    shown = bundle[0] if isinstance(bundle, tuple) else bundle
    assert fragment in shown["text/plain"]


def test_background_refusal_says_why_in_the_table(ip: InteractiveShell) -> None:
    ip.run_cell_magic("orchestrate", "-m echo --background --replay-only", "Never seen")
    _runner.wait_background(timeout=30)

    bundle = _runner.last_widget()._repr_mimebundle_()
    shown = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "pending" not in shown["text/plain"].lower()
    assert "replay" in shown["text/plain"].lower()


def test_maquina_history_pages_with_a_cursor(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(3):
        ip.run_cell_magic(
            "orchestrate", f"-m echo --name paged-{index} --tag paged", "Hi"
        )

    note = ip.run_line_magic("maquina", "history --tag paged --limit 2")
    assert "--cursor" in repr(note)
    cursor = repr(note).split("--cursor ", 1)[1].strip()
    rest = ip.run_line_magic(
        "maquina", f"history --tag paged --limit 2 --cursor {cursor}"
    )
    assert list(rest["name"]) == ["paged-0"]

    with pytest.raises(UsageError, match="not a date"):
        ip.run_line_magic("maquina", "history --since yesterday-ish")


def test_maquina_stop_cancels_a_background_run_and_fills_out(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.db import Repository
    from maquina_nb.testing import FakeLLMServer, Reply

    assert "No background run" in repr(ip.run_line_magic("maquina", "stop"))
    with FakeLLMServer() as fake:
        fake.responder = lambda request: Reply(
            chunks=[f"s{i} " for i in range(200)], chunk_delay=0.05
        )
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-stop-key")
        ip.run_cell_magic(
            "orchestrate",
            "-m openai:gpt-4o,echo --background --name stopped -o partial",
            "Hi",
        )
        deadline = time.monotonic() + 20
        while not fake.requests_for() and time.monotonic() < deadline:
            time.sleep(0.05)
        note = ip.run_line_magic("maquina", "stop")

    # The stop returns once the run is stored and -o holds what finished.
    assert repr(note) == (
        "Stopped 1 background run(s); what finished is stored (see %maquina "
        "history) and in partial."
    )
    repository = Repository.from_url()
    [run] = repository.list_runs(name="stopped").runs
    assert run.status == "cancelled"
    frame = ip.user_ns["partial"]
    assert list(frame["run_id"].unique()) == [run.id]
    assert dict(zip(frame["model_spec"], frame["status"], strict=True)) == {
        "openai:gpt-4o": "cancelled",
        "echo": "done",
    }
    assert "No background run" in repr(ip.run_line_magic("maquina", "stop"))


def test_missing_keys_are_one_usage_error_line_and_store_no_run(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)

    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("orchestrate", "-m gpt-4o claude", "Say hi")

    message = str(caught.value)
    assert "\n" not in message
    assert "The 'gpt-4o' model needs OPENAI_API_KEY" in message
    assert "The 'claude' model needs ANTHROPIC_API_KEY" in message
    from maquina_nb.db import Repository

    assert Repository.from_url().list_runs().runs == []


def test_over_never_renders_a_notebook_variable(ip: InteractiveShell) -> None:
    ip.run_cell(
        "import pandas as pd\ntext = 'GLOBAL LEAK'\n"
        "df = pd.DataFrame({'question': ['a', 'b']})"
    )

    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("orchestrate", "-m echo --over df", "Answer: {{ text }}")

    assert "'text'" in str(caught.value)
    assert "'question'" in str(caught.value)
    assert DEFAULT_OUT not in ip.user_ns


def test_a_run_displays_as_the_static_table(ip: InteractiveShell) -> None:
    ip.run_cell("import maquina_nb\nr = maquina_nb.orchestrate('Say hi', ['echo'])")
    run = ip.user_ns["r"]

    data, _metadata = ip.display_formatter.format(run)

    assert "<table" in data["text/html"]
    assert "Say hi" in data["text/html"]
    assert data["text/plain"] == repr(run)
    assert " 1 item \N{MULTIPLICATION SIGN} 1 model, " in data["text/plain"]

    ip.extension_manager.unload_extension("maquina_nb")
    data, _metadata = ip.display_formatter.format(run)
    assert "text/html" not in data
    ip.extension_manager.load_extension("maquina_nb")


def test_missing_values_in_over_are_warned_about_once_per_cell(
    ip: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    ip.run_cell("import pandas as pd\ndf = pd.DataFrame({'q': ['a', None]})")

    with caplog.at_level("WARNING", logger="maquina_nb.templating"):
        ip.run_cell_magic("orchestrate", "-m echo --over df", "Q: {{ q }}")

    warnings = [r for r in caplog.records if "missing values" in r.getMessage()]
    assert len(warnings) == 1
    assert "'q' (1 of 2 rows)" in warnings[0].getMessage()


def test_judge_option_stores_a_judge_decision_per_item(
    ip: InteractiveShell, fake_llm_server: Any
) -> None:
    from maquina_nb.db import Repository
    from maquina_nb.testing import Reply

    # One pair, judged in both orders; both orders prefer echo:b's answer.
    fake_llm_server.enqueue(Reply(text="B is better. [[B]]"), Reply(text="[[A]]"))

    ip.run_cell_magic(
        "orchestrate", "-m echo:a,echo:b --judge openai:gpt-4o --name judged", "Say hi"
    )

    frame = ip.user_ns[DEFAULT_OUT]
    decisions = Repository.from_url().decisions_frame(frame["run_id"].iloc[0])
    assert list(decisions["strategy"]) == ["judge"]
    assert list(decisions["decided_by"]) == ["openai:gpt-4o"]
    winner = decisions["winner_response_id"].iloc[0]
    assert frame.set_index("response_id").loc[winner, "model_spec"] == "echo:b"
    assert len(fake_llm_server.requests) == 2


def test_unknown_judge_is_refused_before_the_run(ip: InteractiveShell) -> None:
    from maquina_nb.db import Repository

    with pytest.raises(UsageError, match="--judge gpt-9000"):
        ip.run_cell_magic("orchestrate", "-m echo --judge gpt-9000", "Say hi")

    assert Repository.from_url().list_runs().runs == []


def test_sampling_options_reach_the_provider_and_the_store(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maquina_nb.testing import FakeLLMServer

    with FakeLLMServer() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-" + "not-a-real-key")

        ip.run_cell(
            '%%orchestrate -m openai:gpt-4o --top-p 0.8 --seed 5 --stop "THE END" '
            "--stop ###\nWrite a story"
        )

        body = fake.requests[0].body
    assert (body["top_p"], body["seed"], body["stop"]) == (0.8, 5, ["THE END", "###"])
    stored = ip.user_ns[DEFAULT_OUT]["request_parameters"][0]
    assert (stored["top_p"], stored["seed"], stored["stop"]) == (
        0.8,
        5,
        ["THE END", "###"],
    )


def test_a_top_p_out_of_range_is_one_usage_error(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%%orchestrate -m echo --top-p 2\nHi")

    assert "--top-p" in capsys.readouterr().err
