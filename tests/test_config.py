"""Config files: merge order, defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from maquina_nb import config
from maquina_nb.errors import ConfigurationError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_project_file_overrides_the_user_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = _write(
        tmp_path / "user.toml", '[defaults]\nrater = "ada"\nconcurrency = 4\n'
    )
    project = tmp_path / "project"
    project.mkdir()
    _write(project / "maquina.toml", "[defaults]\nconcurrency = 8\n")
    monkeypatch.setenv("MAQUINA_NB_CONFIG", str(user))
    monkeypatch.chdir(project)

    assert config.load_config() == {"defaults": {"rater": "ada", "concurrency": 8}}
    assert config.default_concurrency() == 8


def test_concurrency_defaults_to_32_without_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert config.default_concurrency() == config.DEFAULT_CONCURRENCY == 32


@pytest.mark.parametrize("value", ["0", "-3", '"ten"', "2.5", "true"])
def test_bad_concurrency_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    _write(tmp_path / "maquina.toml", f"[defaults]\nconcurrency = {value}\n")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigurationError, match=r"^\[defaults\] concurrency must be"):
        config.default_concurrency()


def test_invalid_toml_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "maquina.toml", "[defaults\n")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigurationError, match="is not valid TOML"):
        config.load_config()


def test_default_db_url_prefers_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert config.default_db_url() == f"sqlite:///{tmp_path / 'maquina.db'}"

    monkeypatch.setenv("MAQUINA_DB_URL", "postgresql+psycopg://u@127.0.0.1/x")
    assert config.default_db_url() == "postgresql+psycopg://u@127.0.0.1/x"


def test_rater_comes_from_environment_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "maquina.toml", '[defaults]\nrater = "grace"\n')
    monkeypatch.chdir(tmp_path)
    assert config.rater_name() == "test-rater"

    monkeypatch.delenv("MAQUINA_NB_RATER")
    assert config.rater_name() == "grace"
