"""Start a real JupyterLab on 127.0.0.1 and drive it from headless Chromium (RECIPES.md).

Used by the browser tests' fixtures and by ``benchmarks/bench_notebook.py``:
:func:`start_lab` runs ``jupyter lab`` on a free loopback port with its own
``JUPYTER_*`` and ``IPYTHONDIR`` directories, the news/update toast off through an
``overrides.json``, and no API keys in its environment; :func:`launch_chromium`
starts Debian's Chromium with every flag RECIPES.md lists, so not even a DNS
lookup leaves the machine; ``open_notebook`` / ``run_cell`` drive the UI.
:func:`serve_page` serves a single page and its static files without any server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("MAQUINA_TEST_CHROMIUM", "/usr/bin/chromium")

# Every flag from RECIPES.md; the last two keep Chromium from resolving any name.
# The one list: the browser tests and the page benchmarks all launch with it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-features=AutofillServerCommunication,OptimizationGuideModelDownloading,"
    "OptimizationHintsFetching,MediaRouter,DialMediaRouteProvider,Translate",
]

# NOTE: nothing listens here; Playwright routing answers every request to it.
ORIGIN = "http://127.0.0.1:9"
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}

_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    }
}
_KEY_NAMES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
)
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Lab:
    """Handle on the running JupyterLab server."""

    url: str
    token: str
    root: Path
    db_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
            raw = response.read()
        return json.loads(raw) if raw else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_until(
    predicate: Any, *, timeout: float, interval: float = 0.2, what: str
) -> Any:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # keep polling until the deadline
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} ({last_error!r})"
    )


def start_lab(base: Path, *, rater: str = "browser-rater") -> Lab:
    """Start JupyterLab with its own directories under ``base``; wait until it answers."""
    dirs = {
        name: base / name
        for name in (
            "root",
            "config",
            "data",
            "runtime",
            "ipython",
            "workspaces",
            "app_settings",
            "user_settings",
        )
    }
    for folder in dirs.values():
        folder.mkdir()
    (dirs["app_settings"] / "overrides.json").write_text(json.dumps(_OVERRIDES))

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _KEY_NAMES and not k.startswith(("MAQUINA_NB_", "MAQUINA_DB_URL"))
    }
    db_path = base / "browser.db"
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        MAQUINA_DB_URL=f"sqlite:///{db_path}",
        MAQUINA_NB_RATER=rater,
        MAQUINA_NB_CONFIG=str(base / "no-config.toml"),
        PYTHONUNBUFFERED="1",
    )

    port, token = _free_port(), "maquina-browser-token"
    log_path = base / "jupyter.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={dirs['root']}",
        "--allow-root",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.port_retries=0",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        f"--LabApp.app_settings_dir={dirs['app_settings']}",
        f"--LabApp.user_settings_dir={dirs['user_settings']}",
    ]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=dirs["root"],
        )
    handle = Lab(
        url=f"http://127.0.0.1:{port}",
        token=token,
        root=dirs["root"],
        db_path=db_path,
        process=process,
        log_path=log_path,
    )
    try:
        _wait_until(
            lambda: handle.api("GET", "/api/status"),
            timeout=90,
            what=f"JupyterLab on port {port}:\n{handle.log() if log_path.exists() else ''}",
        )
    except BaseException:
        stop_lab(handle)
        raise
    return handle


def stop_lab(handle: Lab) -> None:
    """Shut the kernels down through the API, then stop the server by its pid."""
    try:
        for session in handle.api("GET", "/api/sessions") or []:
            handle.api("DELETE", f"/api/sessions/{session['id']}")
    except Exception:  # the server may already be gone
        pass
    handle.process.terminate()
    try:
        handle.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        handle.process.wait(timeout=10)


def write_notebook(lab: Lab, name: str, cells: list[str]) -> str:
    """Write a notebook of code cells under the server's root; return its path."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, lab.root / name)
    return name


def kernel_ready(lab: Lab, path: str) -> bool:
    for session in lab.api("GET", "/api/sessions") or []:
        if session.get("path") == path:
            kernel = session.get("kernel") or {}
            return (
                kernel.get("connections", 0) >= 1
                and kernel.get("execution_state") == "idle"
            )
    return False


def open_notebook(page: Any, lab: Lab, path: str) -> Any:
    """Open ``path`` in JupyterLab and wait until its kernel is connected and idle."""
    page.goto(
        f"{lab.url}/lab/tree/{path}?token={lab.token}", wait_until="domcontentloaded"
    )
    page.wait_for_selector(f"{ACTIVE} .jp-Cell", timeout=60_000)
    _wait_until(lambda: kernel_ready(lab, path), timeout=60, what=f"kernel of {path}")
    return page.locator(ACTIVE)


def run_cell(page: Any, index: int, *, attempts: int = 3) -> None:
    """Click into cell ``index`` of the visible notebook and press Shift+Enter.

    The keypress is checked: until the cell's prompt leaves ``[ ]:`` (queued as
    ``[*]`` or numbered), the click and keypress are repeated, a bounded number
    of times (a click can land while the page still lays out after an interrupt).
    """
    cell = page.locator(f"{ACTIVE} .jp-Cell").nth(index)
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text().strip()
    for _ in range(attempts):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = prompt.inner_text().strip()
            if now != before or now == "[*]:":
                return
            time.sleep(0.1)
    raise AssertionError(f"cell {index} did not start after {attempts} tries")


def cell_output(page: Any, index: int) -> Any:
    return page.locator(f"{ACTIVE} .jp-Cell").nth(index).locator(".jp-OutputArea")


def wait_idle(lab: Lab, path: str, timeout: float = 60) -> None:
    _wait_until(lambda: kernel_ready(lab, path), timeout=timeout, what=f"{path} idle")


wait_until = _wait_until


def launch_chromium(playwright: Any, profile: Path) -> Any:
    """Launch Debian's Chromium with every network flag, in a persistent context."""
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1000},
    )
    context.set_default_timeout(30_000)
    return context


def serve_page(
    page: Any, index: str, static: Any, names: Sequence[str], *, ready: str
) -> Any:
    """Open ``index`` at :data:`ORIGIN`, with the ``static`` files ``names`` beside it.

    Playwright routing answers every request (any other path is aborted), and
    the page is returned once the JavaScript expression ``ready`` is true.
    """
    files = {"/": ("text/html", index)}
    for name in names:
        kind = _CONTENT_TYPES[Path(name).suffix]
        files[f"/{name}"] = (kind, (static / name).read_text(encoding="utf-8"))

    def serve(route: Any) -> None:
        path = route.request.url[len(ORIGIN) :] or "/"
        if path not in files:
            route.abort()
            return
        kind, body = files[path]
        route.fulfill(status=200, content_type=kind, body=body)

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function(ready)
    return page
