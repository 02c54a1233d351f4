"""Reading values out of provider answers, the same way in every adapter: a number is a real JSON number (never
a boolean, which Python counts as one), and a provider's timestamp, in whatever form it comes, becomes Unix
milliseconds or, when missing or odd, unknown rather than an error."""

from __future__ import annotations

from datetime import datetime
from numbers import Real
from typing import Any


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool)


def iso_ms(stamp: Any) -> int | None:
    """``2024-03-25T10:15:00.000Z`` (ISO 8601, ``Z`` or an offset) → Unix ms."""
    if not isinstance(stamp, str):
        return None
    try:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def unix_s_ms(stamp: Any) -> int | None:
    """Unix seconds → Unix ms."""
    return int(stamp * 1000) if is_number(stamp) else None
