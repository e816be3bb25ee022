"""Row ids: 32-character lower-case hex strings in the UUIDv7 layout.

The first 48 bits are the Unix time in milliseconds, so ids sort by creation time
(which keeps B-tree inserts append-only and gives keyset pagination a stable
order). Within one process a 12-bit sequence keeps ids strictly increasing inside
the same millisecond; the remaining 62 bits come from ``os.urandom``, so several
researchers writing into one shared PostgreSQL never collide (a collision needs
two writers in the same millisecond *and* the same 62 random bits).
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["id_timestamp_ms", "is_valid_id", "new_id", "new_ids"]

_HEX_DIGITS = frozenset("0123456789abcdef")
_lock = threading.Lock()
_last_ms = 0
_last_seq = 0


def _next_stamp() -> tuple[int, int]:
    """Return (milliseconds, sequence), strictly increasing within this process."""
    global _last_ms, _last_seq

    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _last_ms = now
            # Start the sequence low but random, so two processes in the same
            # millisecond do not share the whole prefix.
            _last_seq = int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            _last_seq += 1
            if _last_seq > 0xFFF:
                # NOTE: 4096 ids in one millisecond: borrow the next millisecond
                # rather than break the ordering.
                _last_ms += 1
                _last_seq = 0
        return _last_ms, _last_seq


def _format(ms: int, seq: int, rand: int) -> str:
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # version 7
    value |= seq << 64
    value |= 0b10 << 62  # RFC 9562 variant
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    return f"{value:032x}"


def new_id() -> str:
    """Return a new time-ordered, globally unique 32-character hex id."""
    ms, seq = _next_stamp()
    return _format(ms, seq, int.from_bytes(os.urandom(8), "big"))


def new_ids(count: int) -> list[str]:
    """Return ``count`` new ids in increasing order (one ``urandom`` call)."""
    if count <= 0:
        return []
    noise = os.urandom(8 * count)
    ids = []
    for index in range(count):
        ms, seq = _next_stamp()
        rand = int.from_bytes(noise[8 * index : 8 * index + 8], "big")
        ids.append(_format(ms, seq, rand))
    return ids


def is_valid_id(value: object) -> bool:
    """Return whether ``value`` looks like an id made by :func:`new_id`."""
    return isinstance(value, str) and len(value) == 32 and set(value) <= _HEX_DIGITS


def id_timestamp_ms(value: str) -> int:
    """Return the creation time (Unix milliseconds) encoded in an id."""
    return int(value[:12], 16)
