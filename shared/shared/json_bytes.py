"""Compact UTF-8 JSON for what docroute writes in bulk: event envelopes and JSON row parameters.

`dumps(value)` returns exactly the bytes of
`json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default).encode("utf-8")`
(Vietnamese text unescaped, key order kept), computed by orjson, which takes a twentieth of the time. Where
the two libraries would write a value differently, or orjson cannot write it, the standard library writes
the whole value:

- floats: orjson spells some in other ways than Python's `repr` (`0.00001` for `1e-05`, `1e-7` for
  `1e-07`). A walk over the value (about 1 µs for an envelope, a tenth of what the standard library takes
  to write it) sends any value holding a float to the standard library. `default` must not return one.
- integers beyond 64 bits, dict keys that are not strings, lone UTF-16 surrogates (which have no UTF-8
  form: `UnicodeEncodeError`, as before) and any type orjson refuses.

Datetimes go through `default` as before (orjson's own form is not asked for). orjson writes a few
types natively that the standard library would hand to `default` (UUID, dataclasses, enums not derived
from str or int); docroute passes none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps"]

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_PLAIN = frozenset((str, int, bool, type(None)))


def _holds_float(value: Any) -> bool:
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is dict:
            extend(item.values())
        elif kind is list or kind is tuple:
            extend(item)
        elif isinstance(item, float):
            return True
        elif isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list | tuple):
            extend(item)
    return False


def _standard(value: Any, default: Callable[[Any], Any] | None) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=default).encode("utf-8")


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact UTF-8 JSON, byte for byte what the standard library writes (see the module)."""
    if _holds_float(value):
        return _standard(value, default)
    try:
        out: bytes = orjson.dumps(value, default=default, option=_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):
        return _standard(value, default)
    return out
