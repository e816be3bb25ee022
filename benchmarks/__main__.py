"""Run every ``benchmarks/bench_*.py`` module's ``main()``, one after another.

python -m benchmarks            # all of them
python -m benchmarks db votes   # only bench_db and bench_votes
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path


def _modules(selected: list[str]) -> list[str]:
    here = Path(__file__).resolve().parent
    names = sorted(path.stem for path in here.glob("bench_*.py"))
    if selected:
        wanted = {
            name if name.startswith("bench_") else f"bench_{name}" for name in selected
        }
        names = [name for name in names if name in wanted]
    return names


def main() -> int:
    failed = []
    for name in _modules(sys.argv[1:]):
        print(f"\n=== benchmarks.{name} ===", flush=True)
        started = time.perf_counter()
        saved_argv = sys.argv
        sys.argv = [f"benchmarks.{name}"]  # each main() parses its own defaults
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            status = module.main()
            # main() returns None, an exit status, or its figures (a dict).
            if isinstance(status, int) and status != 0:
                failed.append(name)
        except Exception:  # one broken benchmark must not hide the rest
            traceback.print_exc()
            failed.append(name)
        finally:
            sys.argv = saved_argv
        print(f"=== {name}: {time.perf_counter() - started:.1f} s ===", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
