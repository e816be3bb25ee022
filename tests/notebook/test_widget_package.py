"""The widget's page code ships inside the package and follows its safety rules."""

from __future__ import annotations

import re
import zipfile
from importlib import resources
from pathlib import Path

import pytest

from maquina_nb.notebook.widget import ComparisonWidget

STATIC = resources.files("maquina_nb.notebook") / "static"


def test_widget_loads_its_module_and_styles_from_package_data() -> None:
    widget = ComparisonWidget("run-1", ["echo"], ["q"])

    assert widget._esm == (STATIC / "widget.js").read_text(encoding="utf-8")
    assert widget._css == (STATIC / "widget.css").read_text(encoding="utf-8")
    widget.close()


def test_widget_js_puts_html_only_through_the_safe_setter() -> None:
    source = (STATIC / "widget.js").read_text(encoding="utf-8")
    code = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith("//")
    )

    # The only HTML sink is setSafeHTML's inert <template>; everything else is textContent.
    assert re.findall(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function",
        code,
    ) == ["innerHTML"]
    assert "template.innerHTML = html;" in code
    # The page never sends the table back to the kernel.
    assert "save_changes" not in code


def test_widget_css_follows_the_jupyterlab_theme() -> None:
    css = (STATIC / "widget.css").read_text(encoding="utf-8")

    for variable in (
        "--jp-layout-color1",
        "--jp-ui-font-color1",
        "--jp-border-color2",
        "--jp-brand-color1",
    ):
        assert f"var({variable}" in css
    assert ":focus-visible" in css


@pytest.mark.packaging
def test_wheel_contains_the_widget_static_files(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    root = Path(__file__).resolve().parents[2]
    [wheel] = list(
        WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])
    )

    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "maquina_nb/notebook/static/widget.js",
        "maquina_nb/notebook/static/widget.css",
        "maquina_nb/notebook/widget.py",
        "maquina_nb/notebook/render.py",
        "maquina_nb/notebook/static_html.py",
    } <= names
