"""An inter-process lock file that is removed once released.

A plain ``flock`` lock file cannot simply be deleted on release: a process
that opened the file just before the holder deleted it would then lock the
deleted file, while a third process creates a new one and locks that, and
both would believe they hold the lock. So after taking the lock, the taker
checks that the file it locked is still the one at the path, and starts over
if not. The holder deletes the file while still holding the lock, so no lock
file outlives a migration (unless the process is killed mid-way; a stale file
is harmless, since ``flock`` locks die with their process).

On systems without ``fcntl`` (Windows), ``filelock`` is used; it removes its
file on release there.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["LockTimeout", "removable_file_lock"]

_MAX_POLL_S = 0.1


class LockTimeout(Exception):
    """The lock was not free within the timeout."""


@contextlib.contextmanager
def removable_file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; delete ``path`` after.

    Raises:
        LockTimeout: another process held the lock for ``timeout`` seconds.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(path), timeout=timeout):
                yield
        except Timeout as exc:
            raise LockTimeout(str(path)) from exc
        return

    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if time.monotonic() > deadline:
                raise LockTimeout(str(path)) from None
            time.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_S)
            continue
        # Locked; but the previous holder may have deleted this file after we
        # opened it, in which case someone else may lock a new one at the path.
        locked = os.fstat(descriptor)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (
            locked.st_dev,
            locked.st_ino,
        ):
            break
        os.close(descriptor)

    try:
        yield
    finally:
        # Delete while still holding the lock (see the module docstring).
        # A file that cannot be deleted (a read-only folder) is left; harmless.
        with contextlib.suppress(OSError):
            os.unlink(path)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
