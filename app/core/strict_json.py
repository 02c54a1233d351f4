"""JSON as standard parsers read it back: no NaN, no Infinity, no number that overflows a float.

Python's ``json`` accepts all three, but the node (Go) and most other readers cannot parse them, so a value
that passed through pyea must never carry them. Used on provider answers and on request bodies alike.
"""

from __future__ import annotations

import json
import math
from typing import Any


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def strict_json_loads(raw: bytes | str) -> Any:
    """``json.loads`` that accepts only what standard JSON parsers can read back (no NaN or Infinity).

    Bytes must be UTF-8, as RFC 8259 requires of JSON exchanged between systems."""
    return _STRICT_DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
