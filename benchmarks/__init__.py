"""Speed checks of every area, each against the raw library it builds on.

Run them all with ``python -m benchmarks`` (``make bench``), or one with
``python -m benchmarks.bench_db``. Each ``bench_<area>.py`` has a ``main()`` that
prints its figures.
"""
