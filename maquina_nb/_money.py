"""Dollar amounts as people read them, from a tenth of a cent to thousands.

A fixed ``$%.4f`` turns a budget of $0.00001 into "$0.0000"; :func:`usd`
keeps three significant digits below a dollar and cents above it.
"""

from __future__ import annotations

import math

__all__ = ["usd"]

_SIGNIFICANT = 3


def usd(value: float) -> str:
    """Format ``value`` dollars: ``$12.35``, ``$0.50``, ``$0.0123``, ``$0.00001``.

    At least two decimals; below a dollar, enough for three significant digits
    (trailing zeros past the cents dropped); below a billionth, scientific
    notation (``$3.00e-10``).
    """
    if math.isnan(value) or math.isinf(value):
        return f"${value}"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    if magnitude == 0:
        return "$0.00"
    if magnitude < 1e-9:
        return f"{sign}${magnitude:.2e}"
    decimals = max(2, _SIGNIFICANT - 1 - math.floor(math.log10(magnitude)))
    text = f"{magnitude:,.{decimals}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{fraction}"
