"""Run the quickstart notebook headless: ``python -m maquina_nb.demo`` (``make demo``).

The notebook ``notebooks/quickstart.ipynb`` is executed with nbclient in a fresh
working directory (``demo_output/`` by default), against SQLite and the bundled
offline models. Left behind there:

- ``maquina.db`` — every run, response and piece of feedback the notebook made;
- ``quickstart.ipynb`` — the executed notebook, outputs and widget state saved;
- ``quickstart.html`` — an HTML export (nbconvert) that opens without Jupyter or
  a network; the comparison tables appear as their static, sanitized HTML.

Live models join in when ``ANTHROPIC_API_KEY``, ``OPENAI_API_KEY`` or
``OLLAMA_HOST`` is set, exactly as when you run the notebook yourself.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from maquina_nb._redact import get_logger

if TYPE_CHECKING:
    from traitlets.config import Config

__all__ = ["find_notebook", "kernel_config", "main", "run_demo"]

logger = get_logger(__name__)

_NOTEBOOK = "quickstart.ipynb"
_MARKER = ".maquina-demo"
# Executing ten two-turn questions on five offline models takes seconds; the
# bound is for live models on a slow connection.
_CELL_TIMEOUT_S = 900


def find_notebook(explicit: str | None = None) -> Path:
    """Return the quickstart notebook: ``explicit``, ./notebooks, or the source tree.

    Raises:
        FileNotFoundError: no quickstart notebook in any of those places.
    """
    candidates = [Path(explicit)] if explicit else []
    candidates += [
        Path.cwd() / "notebooks" / _NOTEBOOK,
        Path(__file__).resolve().parent.parent / "notebooks" / _NOTEBOOK,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    tried = ", ".join(repr(str(c)) for c in candidates)
    raise FileNotFoundError(
        f"No quickstart notebook found (tried {tried}); run from the maquina_nb "
        "source tree, or pass --notebook PATH."
    )


def _fresh_directory(output: Path) -> None:
    """Empty ``output`` if an earlier demo made it; refuse to touch anything else."""
    if output.exists():
        if not (output / _MARKER).exists() and any(output.iterdir()):
            raise FileExistsError(
                f"{str(output)!r} exists and was not made by the demo; remove it "
                "or pass --output with another directory."
            )
        shutil.rmtree(output)
    output.mkdir(parents=True)
    (output / _MARKER).write_text("made by python -m maquina_nb.demo\n")


def _checkpoint(db_path: Path) -> None:
    """Fold SQLite's write-ahead log into ``maquina.db``, so the one file holds everything."""
    import sqlite3

    if not db_path.exists():
        return
    connection = sqlite3.connect(db_path, timeout=10)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def kernel_config() -> Config:
    """Return the settings of the demo's kernel: an encrypted connection to it.

    ipykernel 7 warns on stderr that a kernel reached over TCP without
    CurveZMQ keys "is susceptible to eavesdropping". The demo's kernel only
    listens on 127.0.0.1, but rather than hide the warning, the kernel manager
    provisions the keys (a jupyter_client with ``transport_encryption``, for
    kernelspecs that declare CurveZMQ support, as ipykernel 7's does); the
    kernel then encrypts and has nothing to warn about. A jupyter_client
    without that setting keeps the plain connection.
    """
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if KernelManager.class_traits().get("transport_encryption") is not None:
        config.KernelManager.transport_encryption = "auto"
    return config


def run_demo(output: Path, *, notebook: Path | None = None) -> dict[str, Path]:
    """Execute the quickstart in ``output`` and export it; return the files made.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (the partly
            executed notebook is still written, for reading the error).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    # Step 1: a fresh directory, and a database inside it for the kernel.
    source = notebook or find_notebook()
    output = output.resolve()
    _fresh_directory(output)
    db_path = output / "maquina.db"
    executed_path = output / _NOTEBOOK
    html_path = output / "quickstart.html"
    kernel_env = {**os.environ, "MAQUINA_DB_URL": f"sqlite:///{db_path}"}

    # Step 2: execute every cell; keep the partial notebook when one fails.
    nb = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
    client = NotebookClient(
        nb,
        timeout=_CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(output)}},
        store_widget_state=True,
        config=kernel_config(),
    )
    started = time.monotonic()
    try:
        client.execute(env=kernel_env)
    except CellExecutionError:
        nbformat.write(nb, executed_path)  # type: ignore[no-untyped-call]
        raise
    finally:
        logger.info("executed %s in %.1fs", source.name, time.monotonic() - started)
    nbformat.write(nb, executed_path)  # type: ignore[no-untyped-call]
    _checkpoint(db_path)

    # Step 3: an HTML export that opens without Jupyter or a network: without the
    # widget state, nbconvert shows each table's sanitized static HTML instead of
    # a widget that would need JavaScript from a CDN.
    export = copy.deepcopy(nb)
    export.metadata.pop("widgets", None)
    body, _ = HTMLExporter().from_notebook_node(export)  # type: ignore[no-untyped-call]
    html_path.write_text(strip_remote_assets(body), encoding="utf-8")
    return {"database": db_path, "notebook": executed_path, "html": html_path}


# nbconvert's templates load require.js, MathJax, jQuery and mermaid from a CDN;
# the static tables need none of them, and the export must open offline.
_REMOTE_SCRIPT = re.compile(
    r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//[^>]*>\s*</script>", re.IGNORECASE
)
_REMOTE_LINK = re.compile(
    r"<link\b[^>]*\bhref=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE
)


def strip_remote_assets(html: str) -> str:
    """Remove ``<script src>`` and ``<link href>`` tags that point off the machine."""
    return _REMOTE_LINK.sub("", _REMOTE_SCRIPT.sub("", html))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m maquina_nb.demo",
        description="Execute notebooks/quickstart.ipynb headless and export it.",
    )
    parser.add_argument(
        "--output",
        default="demo_output",
        help="directory to (re)create for the results (default: demo_output)",
    )
    parser.add_argument("--notebook", help="notebook to run (default: the quickstart)")
    args = parser.parse_args(argv)

    out = sys.stdout
    try:
        notebook = find_notebook(args.notebook)
        out.write(f"Running {notebook} headless (nbclient)…\n")
        out.flush()
        made = run_demo(Path(args.output), notebook=notebook)
    except (FileNotFoundError, FileExistsError) as exc:
        sys.stderr.write(f"demo: {exc}\n")
        return 2
    except Exception as exc:  # a failing cell: say where the partial notebook is
        sys.stderr.write(
            f"demo: the quickstart failed: {type(exc).__name__}: {exc}\n"
            f"The partly executed notebook is in {Path(args.output).resolve()}.\n"
        )
        return 1

    out.write("Done. The demo left:\n")
    out.write(f"  database           {made['database']}\n")
    out.write(f"  executed notebook  {made['notebook']}\n")
    out.write(f"  HTML export        {made['html']}\n")
    jupyter = Path(sys.executable).with_name("jupyter")
    out.write(
        f"Open the notebook in JupyterLab ({jupyter} lab "
        f"{made['notebook']}) to click feedback, or the HTML file in a browser.\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
